import ImageCodec

extension ImageDecoder {
    /// A request body decoded as the image a built-in image handler takes, by its deadline.
    /// - Parameter handler: the handler's name, for messages (`image_segmenter`).
    /// - Throws: `invalidInput` for an empty, damaged, oversized or too complex image;
    ///   `unsupportedMediaType` for bytes that are neither PNG nor JPEG; `deadlineExceeded`
    ///   (model and timeout filled in by the worker) when decoding would run past the deadline.
    func decodeRequestImage(_ request: InferenceRequest, handler: String) throws(ModelServerError) -> Image {
        let body = request.body
        guard !body.isEmpty else { throw .invalidInput("empty body: send a PNG or JPEG image") }
        guard ImageFormat.sniff(body) != nil else {
            throw .unsupportedMediaType("\(handler) takes a PNG or JPEG image; the body is neither")
        }
        do {
            return try decode(body, deadline: request.deadline)
        } catch ImageError.deadlineExceeded {
            throw .deadlineExceeded(model: handler, timeoutMilliseconds: 0)
        } catch {
            throw .invalidInput("cannot decode the image: \(error)")
        }
    }
}
