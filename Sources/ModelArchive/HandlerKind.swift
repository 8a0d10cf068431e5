/// The built-in handlers; an archive's manifest names one of them.
public enum HandlerKind: String, CaseIterable, Sendable, Codable, CustomStringConvertible {
    /// Image in, per-pixel class mask out.
    case imageSegmenter = "image_segmenter"
    /// Text in, class probabilities out.
    case textClassifier = "text_classifier"
    /// Image in, top-k class probabilities out.
    case imageClassifier = "image_classifier"
    /// Image in, boxes with class names and scores out (torchvision's detection models).
    case objectDetector = "object_detector"
    /// A question and a context in, the answer span of the context out (BERT-style extractive QA).
    case questionAnswering = "question_answering"

    /// The handler a manifest or `--handler` names.
    ///
    /// - Throws: ``ArchiveError/pythonHandler(_:)`` for `x.py` or `module:function` (Python is never run),
    ///   ``ArchiveError/unknownHandler(_:)`` for any other unknown name.
    public init(handlerName name: String) throws {
        if let kind = HandlerKind(rawValue: name) {
            self = kind
        } else if Self.isPythonHandler(name) {
            throw ArchiveError.pythonHandler(name)
        } else {
            throw ArchiveError.unknownHandler(name)
        }
    }

    /// Whether `name` points at Python code: a `.py` file or a `module:function` entry point.
    public static func isPythonHandler(_ name: String) -> Bool {
        name.hasSuffix(".py") || name.contains(":")
    }

    public var description: String { rawValue }

    /// `image_segmenter, text_classifier, image_classifier, object_detector, question_answering`, for messages.
    public static var builtInList: String {
        allCases.map(\.rawValue).joined(separator: ", ")
    }
}
