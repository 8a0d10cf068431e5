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

    public init(body: [UInt8], contentType: String? = nil, accept: String? = nil, parameters: [String: String] = [:],
                timeout: Duration? = nil) {
        self.body = body
        self.timeout = timeout
        self.contentType = contentType
        self.accept = accept
        self.parameters = parameters
    }
}

/// A handler's answer to one request.
public struct InferenceResponse: Sendable, Equatable {
    public var body: [UInt8]
    public var contentType: String

    public init(body: [UInt8], contentType: String) {
        self.body = body
        self.contentType = contentType
    }

    /// A JSON response from already-encoded UTF-8 text.
    public static func json(_ text: String) -> InferenceResponse {
        InferenceResponse(body: Array(text.utf8), contentType: "application/json")
    }
}
