/// The `handler:` section for `object_detector`: image in, boxes with class names and scores out.
///
/// For torchvision's detection models in TorchScript, which take a list of 0…1 images at their own
/// sizes and resize and normalise inside, so the spec has no pre-processing keys.
public struct ObjectDetectorSpec: Equatable, Sendable, Codable {
    /// Detections scoring below this are left out (TorchServe's default, 0.5).
    public var threshold: Double
    /// At most this many detections per image, the highest scores first.
    public var maxDetections: Int
    /// A JSON file in the archive mapping class index to name (torchvision's index 0 is the background).
    public var labels: String?

    public init(threshold: Double = 0.5, maxDetections: Int = 100, labels: String? = nil) {
        self.threshold = threshold
        self.maxDetections = maxDetections
        self.labels = labels
    }

    static let keys: Set<String> = ["kind", "threshold", "maxDetections", "labels"]

    init(_ fields: YAMLFields) {
        self.init()
        if let value = fields.double("threshold", in: 0...1) { threshold = value }
        if let value = fields.int("maxDetections", in: 1...10_000) { maxDetections = value }
        if let value = fields.fileName("labels") { labels = value }
    }
}
