/// The `handler:` section for `image_segmenter`: image in, per-pixel class mask out.
public struct ImageSegmenterSpec: Equatable, Sendable, Codable {
    /// The response format when the request does not ask for one.
    public enum Output: String, CaseIterable, Sendable, Codable {
        /// `{"base64_prediction": ...}`, the mask's bytes in base64.
        case base64
        /// An 8-bit grey PNG whose values are class ids.
        case png
        /// The input image blended with a colour per class, as PNG.
        case overlay
    }

    /// The size the model expects; `nil` feeds each image at its decoded size.
    public var inputSize: ImageSize?
    public var resize: ResizeMode
    public var mean: [Double]
    public var std: [Double]
    /// The number of classes (at most 256, the mask is 8-bit); `nil` takes it from the model's output.
    public var numClasses: Int?
    /// A JSON file in the archive mapping class index to name.
    public var labels: String?
    public var output: Output

    public init(
        inputSize: ImageSize? = nil, resize: ResizeMode = .bilinear,
        mean: [Double] = ImageNetNormalization.mean, std: [Double] = ImageNetNormalization.std,
        numClasses: Int? = nil, labels: String? = nil, output: Output = .base64
    ) {
        self.inputSize = inputSize
        self.resize = resize
        self.mean = mean
        self.std = std
        self.numClasses = numClasses
        self.labels = labels
        self.output = output
    }

    static let keys: Set<String> = ["kind", "inputSize", "resize", "mean", "std", "numClasses", "labels", "output"]

    init(_ fields: YAMLFields) {
        self.init()
        if let value = fields.imageSize("inputSize") { inputSize = value }
        if let value = fields.choice("resize", as: ResizeMode.self) { resize = value }
        let (mean, std) = fields.normalization()
        if let mean { self.mean = mean }
        if let std { self.std = std }
        if let value = fields.int("numClasses", in: 1...256) { numClasses = value }
        if let value = fields.fileName("labels") { labels = value }
        if let value = fields.choice("output", as: Output.self) { output = value }
    }
}
