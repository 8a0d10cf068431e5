import ModelArchive

/// Builds the built-in handler an archive declares.
enum HandlerFactory {
    static func make(_ archive: OpenedArchive, pixelLimit: Int) throws(ModelServerError) -> any Handler {
        switch archive.handlerSpec {
        case .imageSegmenter(let spec):
            return try SegmentationHandler(spec: spec, pixelLimit: pixelLimit)
        case .textClassifier(let spec):
            return try TextClassificationHandler(spec: spec, archive: archive)
        case .imageClassifier:
            throw .invalidModel("handler \(archive.handler.rawValue) is declared but not available in this build yet; image_segmenter is")
        }
    }
}
