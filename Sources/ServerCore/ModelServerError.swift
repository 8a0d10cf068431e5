import ModelArchive

/// Everything the core can refuse or fail with. Each case carries what a user needs to act;
/// the HTTP layer maps cases to status codes in one place.
public enum ModelServerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No model of that name is registered.
    case modelNotFound(model: String)
    /// The model exists but not in that version.
    case versionNotFound(model: String, version: String)
    /// A request parameter or body field is malformed or out of range.
    case badRequest(String)
    /// The input cannot be used: empty body, undecodable or oversized image, bad text.
    case invalidInput(String)
    /// The body is of a kind the handler does not take (e.g. not PNG/JPEG for an image model).
    case unsupportedMediaType(String)
    /// An archive, model config or handler is unusable.
    case invalidModel(String)
    /// The archive named at registration is not in the model store.
    case archiveNotFound(String)
    /// The registration URL is not allowed: `file://`, outside the model store, or no `allowed_urls` match.
    case archiveURLNotAllowed(String)
    /// Fetching an allowed `http(s)` registration URL failed or passed the size limit.
    case downloadFailed(String)
    /// Register, unregister and swap are off (`enable_model_api=false`).
    case modelAPIDisabled
    /// The version cannot be changed that way (deleting the default while others exist).
    case invalidVersionOperation(String)
    /// The name and version are registered already.
    case conflict(String)
    /// The model's queue is full; retry later.
    case queueFull(model: String, capacity: Int)
    /// The model has no live worker, or is being unregistered, or the server is draining.
    case unavailable(String)
    /// The request's deadline passed before it could be answered.
    case deadlineExceeded(model: String, timeoutMilliseconds: Int)
    /// The client closed its connection before the request ran; nobody reads this answer.
    case clientDisconnected(model: String)
    /// The model failed: forward threw, a worker died, output of an unexpected shape.
    case modelFailure(String)
    /// Host or device memory ran out.
    case outOfMemory(String)
    /// A management change could not be written to the snapshot (disk full, log folder read-only
    /// or gone) and was undone.
    case notPersisted(String)
    /// The image a request named by URL (`{"url": …}`) could not be fetched, or was refused.
    case imageFetchFailed(ImageFetchFailure)

    public var description: String {
        switch self {
        case .modelNotFound(let model): return "Model not found: \(Excerpt.of(model))"
        case .versionNotFound(let model, let version): return "Model version not found: \(Excerpt.of(model)) version \(Excerpt.of(version))"
        case .badRequest(let message), .invalidInput(let message), .unsupportedMediaType(let message),
             .invalidModel(let message), .archiveNotFound(let message), .archiveURLNotAllowed(let message), .conflict(let message), .downloadFailed(let message),
             .unavailable(let message), .modelFailure(let message), .outOfMemory(let message), .notPersisted(let message):
            return message
        case .modelAPIDisabled:
            return "Model API is disabled; start the server with --enable-model-api or enable_model_api=true to register or unregister models"
        case .invalidVersionOperation(let message):
            return message
        case .queueFull(let model, let capacity):
            return "Model \(model) has \(capacity) requests queued, its limit (job_queue_size); retry later"
        case .clientDisconnected(let model):
            return "The client of a request to model \(model) disconnected before it ran; it was dropped"
        case .deadlineExceeded(let model, let timeout):
            return "Request to model \(model) passed its deadline of \(timeout) ms"
        case .imageFetchFailed(let failure):
            return failure.message
        }
    }
}
