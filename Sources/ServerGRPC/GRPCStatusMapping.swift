import GRPCCore
import ServerCore
import ServerHTTP

/// The one place errors become gRPC statuses. A core error first takes its HTTP status and
/// message from ``APIError`` (so both protocols say the same thing), then the status maps to
/// the gRPC code a client of that protocol expects.
package enum GRPCStatusMapping {
    /// The status a call ends with for `error`.
    package static func rpcError(_ error: any Error) -> RPCError {
        switch error {
        case let error as RPCError:
            return error
        case let error as ModelServerError:
            let api = APIError(error)
            return RPCError(code: code(httpStatus: Int(api.status.code)), message: api.message, cause: error)
        case let error as APIError:
            return RPCError(code: code(httpStatus: Int(error.status.code)), message: error.message, cause: error)
        case is CancellationError:
            return RPCError(code: .cancelled, message: "the call was cancelled")
        default:
            return RPCError(code: .internalError, message: PathRedaction.redact("\(error)"), cause: error)
        }
    }

    /// The gRPC code of an HTTP status of docs/api.md's error table.
    package static func code(httpStatus: Int) -> RPCError.Code {
        switch httpStatus {
        case 400, 415: return .invalidArgument
        case 401: return .unauthenticated
        case 403: return .permissionDenied
        case 404: return .notFound
        case 409: return .failedPrecondition
        // 413: a request over max_request_size, as gRPC itself answers a message over its limit.
        case 413, 429, 507: return .resourceExhausted
        case 499: return .cancelled
        case 501: return .unimplemented
        case 503: return .unavailable
        case 504: return .deadlineExceeded
        default: return .internalError
        }
    }

    /// Runs `body`, turning what it throws into the call's status.
    package static func mapping<Result>(_ body: () async throws -> Result) async throws(RPCError) -> Result {
        do {
            return try await body()
        } catch {
            throw rpcError(error)
        }
    }
}
