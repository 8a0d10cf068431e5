import GRPCCore
import Logging

/// Logs each call as the HTTP ports log each request: method, status and time.
struct GRPCAccessLog: ServerInterceptor {
    let logger: Logger

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let started = ContinuousClock.now
        func log(_ status: String) {
            let elapsed = ContinuousClock.now - started
            let microseconds = elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000
            logger.info("gRPC \(context.descriptor.fullyQualifiedMethod) \(status) \(microseconds)us peer=\(context.remotePeer)")
        }
        do {
            let response = try await next(request, context)
            switch response.accepted {
            case .success: log("OK")
            case .failure(let error): log("\(error.code)")
            }
            return response
        } catch let error as RPCError {
            log("\(error.code)")
            throw error
        } catch {
            log("UNKNOWN")
            throw error
        }
    }
}
