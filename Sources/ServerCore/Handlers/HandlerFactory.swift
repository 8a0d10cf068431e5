import ModelArchive

/// Builds the built-in handler an archive declares.
enum HandlerFactory {
    /// The archive's handler.
    static func make(_ archive: OpenedArchive, pixelLimit: Int) throws(ModelServerError) -> any Handler {
        switch archive.handlerSpec {
        case .imageSegmenter(let spec):
            let labels = try ClassLabels.of(archive, named: spec.labels)
            return try SegmentationHandler(spec: spec, labels: labels == .indices ? nil : labels, pixelLimit: pixelLimit)
        case .textClassifier(let spec):
            return try TextClassificationHandler(spec: spec, archive: archive)
        case .imageClassifier(let spec):
            return try ImageClassificationHandler(spec: spec, labels: ClassLabels.of(archive, named: spec.labels), pixelLimit: pixelLimit)
        case .objectDetector(let spec):
            return ObjectDetectionHandler(spec: spec, labels: try ClassLabels.of(archive, named: spec.labels), pixelLimit: pixelLimit)
        case .questionAnswering(let spec):
            return try QuestionAnsweringHandler(spec: spec, archive: archive)
        }
    }
}
