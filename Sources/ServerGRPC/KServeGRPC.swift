import Logging
import ServerCore
import ServerHTTP

/// The KServe v2 gRPC listener (`grpc_kserve_address`).
package enum KServeGRPC {
    /// A listener serving `inference.GRPCInferenceService` for `server` on `address`.
    /// - Parameter authorization: checks the inference key; nil when token authorization is off.
    package static func listener(
        server: ModelServer, address: GRPCConfiguration.Address, authorization: TokenAuthorization?, logger: Logger
    ) -> GRPCListener {
        GRPCListener(
            name: "KServe v2 gRPC", configKey: "grpc_kserve_address", address: address,
            services: [KServeGRPCService(server: server)], authorization: authorization, tokenKind: .inference,
            healthMethods: KServeGRPCService.healthMethods, maxRequestSize: server.configuration.maxRequestSize,
            logger: logger)
    }
}
