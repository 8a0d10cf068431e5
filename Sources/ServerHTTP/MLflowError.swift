import Foundation
import Hummingbird
import ServerCore

/// An error as MLflow's scoring server renders it: `{"error_code": "BAD_REQUEST", "message": "…"}`
/// (the fields every MLflow since 1.x sends and its clients read), or for a content type it does
/// not take, a 415 with a plain-text message.
///
/// Routes return it as a response rather than throwing it: the port's middleware renders thrown
/// errors in TorchServe's form.
struct MLflowError: Error, Sendable, Equatable {
    /// MLflow's error codes (`mlflow.protos.databricks_pb2`) that this server answers with.
    enum Code: String, Sendable {
        /// A body MLflow cannot read (not JSON, no or several input fields, a malformed frame).
        case badRequest = "BAD_REQUEST"
        /// Readable, but not what the model takes: missing columns, a value of the wrong type
        /// (MLflow's schema enforcement answers with this code).
        case invalidParameterValue = "INVALID_PARAMETER_VALUE"
        case unauthenticated = "UNAUTHENTICATED"
        case permissionDenied = "PERMISSION_DENIED"
        case resourceDoesNotExist = "RESOURCE_DOES_NOT_EXIST"
        case resourceExhausted = "RESOURCE_EXHAUSTED"
        case cancelled = "CANCELLED"
        case temporarilyUnavailable = "TEMPORARILY_UNAVAILABLE"
        case deadlineExceeded = "DEADLINE_EXCEEDED"
        case internalError = "INTERNAL_ERROR"
    }

    var status: HTTPResponse.Status
    /// nil for the plain-text 415 MLflow answers for a content type it does not take.
    var code: Code?
    var message: String
    var headers: HTTPFields = [:]

    /// A 400 for a body MLflow cannot read; the message starts `Invalid input.` as MLflow's do.
    static func badRequest(_ message: String) -> MLflowError {
        MLflowError(status: .badRequest, code: .badRequest, message: "Invalid input. \(message)")
    }

    /// A 400 for a readable body the model cannot take (columns, value types).
    static func invalidValue(_ message: String) -> MLflowError {
        MLflowError(status: .badRequest, code: .invalidParameterValue, message: "Invalid input. \(message)")
    }

    /// MLflow's plain-text 415.
    static func unsupportedMediaType(_ message: String) -> MLflowError {
        MLflowError(status: .unsupportedMediaType, code: nil, message: message)
    }

    /// An error of the server in MLflow's form: the closest of MLflow's codes, the same message,
    /// the same status except that a row the handler refuses (415 on `/predictions`, not an image)
    /// is a 400 `BAD_REQUEST`, as MLflow answers a model that fails on its input.
    init(_ error: APIError) {
        message = error.message
        headers = error.headers
        status = error.status.code == 415 ? .badRequest : error.status
        code = switch status.code {
        case 400, 413: .badRequest
        case 401: .unauthenticated
        case 403: .permissionDenied
        case 404: .resourceDoesNotExist
        case 429, 507: .resourceExhausted
        case 499: .cancelled
        case 503: .temporarilyUnavailable
        case 504: .deadlineExceeded
        default: .internalError
        }
    }

    init(status: HTTPResponse.Status, code: Code?, message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    /// Any error a scoring request can meet, in MLflow's form.
    init(_ error: any Error) {
        switch error {
        case let error as MLflowError: self = error
        case let error as APIError: self.init(error)
        case let error as ModelServerError: self.init(APIError(error))
        default: self.init(APIError(.internalServerError, type: "InternalServerException", message: "\(error)"))
        }
    }

    var response: Response {
        var fields = headers
        guard let code else {
            fields[.contentType] = "text/plain; charset=utf-8"
            return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(string: message)))
        }
        fields[.contentType] = "application/json"
        let body = "{\"error_code\":\(jsonString(code.rawValue)),\"message\":\(jsonString(message))}"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}
