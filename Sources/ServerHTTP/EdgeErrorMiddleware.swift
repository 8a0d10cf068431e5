import Hummingbird
import NIOCore
import NIOHTTP1

/// Turns what goes wrong while a route reads a request body — malformed HTTP framing from the
/// decoder, or a body the network edge cut — into the error the client sees, in place of a 500.
struct EdgeErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPParserError {
            throw APIError.malformed(error)
        } catch let error as EdgeRequestError {
            throw error.apiError
        }
    }
}

/// Why the network edge cut a request whose head already reached a route; the route reading
/// the body gets it in place of the rest of the body.
struct EdgeRequestError: Error, CustomStringConvertible {
    let apiError: APIError

    var description: String { apiError.message }
}

extension APIError {
    /// 400 for a request the HTTP/1.1 decoder rejects.
    static func malformed(_ error: HTTPParserError) -> APIError {
        let detail = error.debugDescription
        let message = switch error {
        case .invalidChunkSize, .invalidConstant:
            "Malformed chunked encoding (\(detail)): each chunk must be its size in hex, CRLF, the data, CRLF, ending with a 0-size chunk"
        case .invalidEOFState:
            "The connection ended before the request was complete (\(detail))"
        case .headerOverflow:
            "The request head is too large (\(detail)): send fewer or shorter headers"
        default:
            "Malformed HTTP/1.1 request (\(detail)): the request does not follow HTTP/1.1 message syntax (RFC 9112)"
        }
        return APIError(.badRequest, type: "BadRequestException", message: message)
    }

    /// 408 for a request head that did not arrive in time.
    static func headTimeout(_ limit: Duration) -> APIError {
        APIError(.requestTimeout, type: "RequestTimeoutException", message: """
            The request head was not complete within request_read_timeout (\(seconds(limit))) of its first byte: \
            send the request line and headers without pausing
            """)
    }

    /// 408 for a body that stopped arriving.
    static func bodyStalled(_ limit: Duration) -> APIError {
        APIError(.requestTimeout, type: "RequestTimeoutException", message: """
            No bytes of the request body arrived for request_read_timeout (\(seconds(limit))); the connection is closed: \
            send the body without pausing
            """)
    }

    /// 408 for a body arriving slower than the minimum rate.
    static func bodyTooSlow(bytes: Int, elapsed: Duration, minimum: Int) -> APIError {
        let rate = Int(Double(bytes) / max(elapsed / .seconds(1), 0.001))
        return APIError(.requestTimeout, type: "RequestTimeoutException", message: """
            The request body arrived at \(rate) bytes/s, under min_request_body_rate (\(minimum) bytes/s); \
            the connection is closed: send the body faster
            """)
    }

    /// 413 for a `Content-Length` over `max_request_size`, answered before the body is read.
    static func declaredTooLarge(_ length: Int, limit: Int) -> APIError {
        APIError(.contentTooLarge, type: "RequestTooLargeException", message: """
            Request body of \(length) bytes is larger than max_request_size (\(limit) bytes)
            """)
    }

    /// 503 for a body that does not fit the bound on bodies in flight.
    static func bodiesInFlight(limit: Int, declared: Int?) -> APIError {
        let what = declared.map { "this request's \($0)-byte body" } ?? "this chunked request body"
        var error = APIError(.serviceUnavailable, type: "ServiceUnavailableException", message: """
            The server is holding as many request body bytes as max_inflight_body_bytes (\(limit)) allows, \
            and \(what) would pass it: retry shortly
            """)
        error.headers[.retryAfter] = "1"
        return error
    }

    /// 503 for a request other than a health check on a connection over `max_connections`.
    static func tooManyConnections(limit: Int) -> APIError {
        var error = APIError(.serviceUnavailable, type: "ServiceUnavailableException", message: """
            The server has too many open connections (max_connections=\(limit) on this port): only health checks \
            are answered on new connections until others close: retry shortly, or reuse fewer connections
            """)
        error.headers[.retryAfter] = "1"
        return error
    }

    /// The JSON body `response(from:context:)` renders, for answers written below the router.
    func body(path: String?) -> ByteBuffer {
        var text = "{\"code\":\(status.code),\"type\":\(jsonString(type)),\"message\":\(jsonString(message))"
        if let path, path == "/v2" || path.hasPrefix("/v2/") { text += ",\"error\":\(jsonString(message))" }
        text += "}"
        return ByteBuffer(string: text)
    }
}

/// `30 s`, `0.5 s`.
private func seconds(_ duration: Duration) -> String {
    let value = duration / .seconds(1)
    return value == value.rounded() ? "\(Int(value)) s" : "\(value) s"
}
