/// The `handler:` section for `image_classifier`: image in, top-k class probabilities out.
public struct ImageClassifierSpec: Equatable, Sendable, Codable {
    /// The shorter side is resized to this many pixels first (aspect ratio kept).
    public var resizeShorter: Int
    /// Then the centre is cropped to this size.
    public var cropSize: ImageSize
    public var mean: [Double]
    public var std: [Double]
    /// How many classes a response lists (at most the model's class count, checked at registration).
    public var topk: Int
    /// A JSON file in the archive mapping class index to name.
    public var labels: String?

    public init(
        resizeShorter: Int = 256, cropSize: ImageSize = ImageSize(height: 224, width: 224),
        mean: [Double] = ImageNetNormalization.mean, std: [Double] = ImageNetNormalization.std,
        topk: Int = 5, labels: String? = nil
    ) {
        self.resizeShorter = resizeShorter
        self.cropSize = cropSize
        self.mean = mean
        self.std = std
        self.topk = topk
        self.labels = labels
    }

    static let keys: Set<String> = ["kind", "resizeShorter", "cropSize", "mean", "std", "topk", "labels"]

    init(_ fields: YAMLFields) {
        self.init()
        if let value = fields.int("resizeShorter", in: 1...YAMLFields.maxImageSide) { resizeShorter = value }
        if let value = fields.imageSize("cropSize") { cropSize = value }
        let (mean, std) = fields.normalization()
        if let mean { self.mean = mean }
        if let std { self.std = std }
        if let value = fields.int("topk", in: 1...1000) { topk = value }
        if let value = fields.fileName("labels") { labels = value }
        if let node = fields.node("cropSize"), cropSize.height > resizeShorter && cropSize.width > resizeShorter {
            fields.fail("cropSize", node, "is larger than resizeShorter (\(resizeShorter)) on both sides",
                        expected: "a crop that fits inside the resized image")
        }
    }
}
