import Logging
import ServerCore
import ServerHTTP

/// TorchServe's two gRPC listeners: inference (`grpc_inference_address`, `grpc_inference_port`,
/// 7070) and management (`grpc_management_address`, `grpc_management_port`, 7071).
package enum TorchServeGRPC {
    /// The inference listener: `Ping` (no key needed) and `Predictions` (the inference key).
    /// - Parameter authorization: checks the inference key; nil when token authorization is off.
    package static func inferenceListener(
        server: ModelServer, address: GRPCConfiguration.Address, authorization: TokenAuthorization?, logger: Logger
    ) -> GRPCListener {
        GRPCListener(
            name: "TorchServe gRPC inference", configKey: "grpc_inference_port", address: address,
            services: [TorchServeGRPCInference(server: server)], authorization: authorization, tokenKind: .inference,
            healthMethods: TorchServeGRPCInference.healthMethods, maxRequestSize: server.configuration.maxRequestSize,
            logger: logger)
    }

    /// The management listener; every call needs the management key.
    /// - Parameter authorization: checks the management key; nil when token authorization is off.
    package static func managementListener(
        server: ModelServer, address: GRPCConfiguration.Address, authorization: TokenAuthorization?, logger: Logger
    ) -> GRPCListener {
        GRPCListener(
            name: "TorchServe gRPC management", configKey: "grpc_management_port", address: address,
            services: [TorchServeGRPCManagement(server: server)], authorization: authorization, tokenKind: .management,
            healthMethods: [], maxRequestSize: server.configuration.maxRequestSize, logger: logger)
    }
}
