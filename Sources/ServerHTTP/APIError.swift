import Foundation
import Hummingbird
import ServerCore

/// An error as every port renders it: `{"code": 404, "type": "ModelNotFoundException", "message": "…"}`.
public struct APIError: Error, HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    /// TorchServe's exception name for the status (docs/api.md's error table).
    public var type: String
    public var message: String
    public var headers: HTTPFields = [:]

    /// - Parameter message: shown to the client with server-side paths removed (``PathRedaction``).
    public init(_ status: HTTPResponse.Status, type: String, message: String) {
        self.status = status
        self.type = type
        self.message = PathRedaction.redact(message)
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        var body = "{\"code\":\(status.code),\"type\":\(jsonString(type)),\"message\":\(jsonString(message))"
        // KServe clients (v1, and Open Inference Protocol on v2) read `error`.
        if ["/v1", "/v2"].contains(where: { request.uri.path == $0 || request.uri.path.hasPrefix($0 + "/") }) {
            body += ",\"error\":\(jsonString(message))"
        }
        body += "}"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

extension APIError {
    /// The one place core errors become statuses.
    package init(_ error: ModelServerError) {
        let message = error.description
        switch error {
        case .modelNotFound: self.init(.notFound, type: "ModelNotFoundException", message: message)
        case .archiveNotFound: self.init(.notFound, type: "ModelNotFoundException", message: message)
        case .versionNotFound: self.init(.notFound, type: "ModelVersionNotFoundException", message: message)
        case .badRequest: self.init(.badRequest, type: "BadRequestException", message: message)
        case .invalidInput: self.init(.badRequest, type: "InvalidInputException", message: message)
        case .invalidModel: self.init(.badRequest, type: "InvalidModelException", message: message)
        case .unsupportedMediaType: self.init(.unsupportedMediaType, type: "UnsupportedMediaTypeException", message: message)
        case .archiveURLNotAllowed: self.init(.forbidden, type: "InvalidArchiveURLException", message: message)
        case .modelAPIDisabled: self.init(.forbidden, type: "ModelApiDisabledException", message: message)
        case .invalidVersionOperation: self.init(.forbidden, type: "InvalidModelVersionException", message: message)
        case .conflict: self.init(.conflict, type: "ConflictStatusException", message: message)
        case .downloadFailed: self.init(.badRequest, type: "DownloadArchiveException", message: message)
        case .queueFull:
            self.init(.tooManyRequests, type: "QueueFullException", message: message)
            headers[.retryAfter] = "1"
        case .unavailable: self.init(.serviceUnavailable, type: "ServiceUnavailableException", message: message)
        case .deadlineExceeded: self.init(.gatewayTimeout, type: "DeadlineExceededException", message: message)
        // nginx's "client closed request": nobody reads it, but logs and response metrics do.
        case .clientDisconnected: self.init(.init(code: 499, reasonPhrase: "Client Closed Request"), type: "ClientDisconnectedException", message: message)
        case .modelFailure: self.init(.internalServerError, type: "InternalServerException", message: message)
        case .outOfMemory: self.init(.init(code: 507, reasonPhrase: "Insufficient Storage"), type: "OutOfMemoryException", message: message)
        case .notPersisted: self.init(.init(code: 507, reasonPhrase: "Insufficient Storage"), type: "InsufficientStorageException", message: message)
        case .imageFetchFailed(let failure):
            switch failure.reason {
            case .urlNotAllowed, .addressNotAllowed: self.init(.forbidden, type: "ImageURLNotAllowedException", message: message)
            case .tooLarge: self.init(.contentTooLarge, type: "RequestTooLargeException", message: message)
            case .deadline: self.init(.gatewayTimeout, type: "DeadlineExceededException", message: message)
            case .badURL, .unresolved, .unreachable, .badResponse, .redirect, .status, .notImage:
                self.init(.badRequest, type: "ImageFetchException", message: message)
            }
        }
    }

    /// Errors Hummingbird raises itself (no route, body too large, ...), in the same JSON shape.
    init(_ error: HTTPError, request: Request) {
        switch error.status {
        case .notFound:
            self.init(.notFound, type: "ResourceNotFoundException", message: "Requested resource is not found: \(request.method) \(request.uri.path)")
        case .methodNotAllowed:
            self.init(.methodNotAllowed, type: "MethodNotAllowedException", message: "Method \(request.method) is not allowed on \(request.uri.path)")
        case .contentTooLarge:
            self.init(.contentTooLarge, type: "RequestTooLargeException", message: error.body ?? "Request body is larger than max_request_size")
        case .badRequest:
            self.init(.badRequest, type: "BadRequestException", message: error.body ?? "Bad request")
        default:
            self.init(error.status, type: "InternalServerException", message: error.body ?? error.status.reasonPhrase)
        }
        headers = error.headers
    }

    /// 405 with `Allow` listing the methods the path serves.
    static func methodNotAllowed(_ request: Request, allowed: [HTTPRequest.Method] = []) -> APIError {
        var error = APIError(.methodNotAllowed, type: "MethodNotAllowedException", message: "Method \(request.method) is not allowed on \(request.uri.path)")
        if !allowed.isEmpty { error.headers[.allow] = allowed.map(\.rawValue).sorted().joined(separator: ", ") }
        return error
    }
}

/// A JSON string literal for `text`.
func jsonString(_ text: String) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .withoutEscapingSlashes
    guard let data = try? encoder.encode(text), let encoded = String(data: data, encoding: .utf8) else {
        return "\"\""
    }
    return encoded
}

/// A JSON response from encoded text.
func jsonResponse(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
    Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
}
