import Synchronization

/// One prediction request as the core sees it: bytes and the few headers handlers read.
public struct InferenceRequest: Sendable {
    /// The payload: the raw body, or the `data`/`file` part of a multipart form.
    public var body: [UInt8]
    /// The payload's `Content-Type`, if any (handlers sniff images from bytes, not from this).
    public var contentType: String?
    /// The `Accept` header, if any.
    public var accept: String?
    /// Query parameters (e.g. `output=png`, `size=original`).
    public var parameters: [String: String]
    /// The client's deadline (`X-Request-Timeout-Ms`); capped by the model's response timeout.
    public var timeout: Duration?
    /// When the request must be answered: set as it is queued (the arrival plus its timeout).
    /// Handlers stop long work (decoding an image) at this instant.
    public var deadline: ContinuousClock.Instant?
    /// Whether the handler answers, or tensors come back.
    public var mode: InferenceMode = .handler
    /// The connection the request came on, if the caller can tell when it closes: a request whose
    /// client has gone is dropped before any compute.
    public var connection: ClientConnection?

    public init(body: [UInt8], contentType: String? = nil, accept: String? = nil, parameters: [String: String] = [:],
                timeout: Duration? = nil) {
        self.body = body
        self.timeout = timeout
        self.contentType = contentType
        self.accept = accept
        self.parameters = parameters
    }
}

/// Whether the client that sent a request is still there to read the answer. The HTTP layer
/// closes it when the connection's input ends or the connection drops.
public final class ClientConnection: Sendable {
    private let open = Atomic<Bool>(true)

    public init() {}

    public var isOpen: Bool {
        open.load(ordering: .acquiring)
    }

    /// The client has gone: requests from it still queued are dropped.
    public func close() {
        open.store(false, ordering: .releasing)
    }
}

/// A handler's answer to one request.
public struct InferenceResponse: Sendable, Equatable {
    public var body: [UInt8]
    public var contentType: String
    /// The output tensors, for requests whose mode asks for tensors (then `body` is empty).
    public var outputs: [OutputTensor]
    /// The model version that answered (set by the server; a request to the default version
    /// served across a swap names the version that really ran it).
    public var version: String = ""

    public init(body: [UInt8], contentType: String, outputs: [OutputTensor] = []) {
        self.body = body
        self.contentType = contentType
        self.outputs = outputs
    }

    /// A JSON response from already-encoded UTF-8 text.
    public static func json(_ text: String) -> InferenceResponse {
        InferenceResponse(body: Array(text.utf8), contentType: "application/json")
    }
}

/// What a request asks of a model version.
public enum InferenceMode: Sendable {
    /// The handler's response (its body and content type).
    case handler
    /// The handler's pre-processing, then the model output as the handler's tensors (a mask, or
    /// probabilities and labels) instead of its response body.
    case handlerOutputs
    /// These tensors go straight to `forward`, in order, with no handler; the model's outputs
    /// come back as tensors.
    case forward([TensorData])
}
