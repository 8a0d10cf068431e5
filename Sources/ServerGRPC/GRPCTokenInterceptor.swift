import GRPCCore
import ServerHTTP

/// Token authorization on gRPC: every call but the health methods needs the port's key as
/// `authorization: Bearer <key>` metadata, as the HTTP ports need the `Authorization` header.
struct GRPCTokenInterceptor: ServerInterceptor {
    let authorization: TokenAuthorization
    let kind: TokenAuthorization.Kind
    let exemptMethods: Set<MethodDescriptor>

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        if !exemptMethods.contains(context.descriptor) {
            let header = request.metadata[stringValues: "authorization"].first { _ in true }
            guard authorization.accepts(header, as: kind) else {
                throw RPCError(
                    code: .unauthenticated,
                    message: "Token authorization failed: send 'authorization: Bearer <\(kind.rawValue) key from key_file.json>' metadata")
            }
        }
        return try await next(request, context)
    }
}
