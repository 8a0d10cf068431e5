/// Why the image a request named by URL could not be fetched. The reason decides the status
/// (the HTTP layer maps it) and the `result` label of `ts_image_fetches_total`; the message names
/// the URL's host and nothing about the server's network beyond it.
public struct ImageFetchFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, one case per failure a client can act on.
    public enum Reason: String, Sendable, CaseIterable {
        /// No `allowed_urls` pattern admits the URL, or it is not `http` or `https`.
        case urlNotAllowed = "url_not_allowed"
        /// The host resolves to a loopback, private, link-local or other special-use address
        /// that `allowed_fetch_addresses` does not list.
        case addressNotAllowed = "address_not_allowed"
        /// The URL has no host, carries credentials, or cannot be parsed.
        case badURL = "bad_url"
        /// The host name did not resolve.
        case unresolved
        /// No connection could be made: refused, unreachable, or the connect timeout passed.
        case unreachable
        /// The connection failed after it was made: a TLS failure, a malformed or cut-short answer.
        case badResponse = "bad_response"
        /// The answer was a redirect, which is not followed.
        case redirect
        /// The answer's status was not 2xx.
        case status
        /// The image is larger than `max_request_size`.
        case tooLarge = "too_large"
        /// The bytes are not a PNG or JPEG image.
        case notImage = "not_image"
        /// The request's deadline passed during the fetch.
        case deadline
    }

    public var reason: Reason
    /// For the client: what failed, naming the host and the setting or action that helps.
    public var message: String

    public init(_ reason: Reason, _ message: String) {
        self.reason = reason
        self.message = message
    }

    public var description: String { message }
}
