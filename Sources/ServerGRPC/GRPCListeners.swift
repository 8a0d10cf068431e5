import Logging
import ServerCore
import ServerHTTP

/// The gRPC listeners the configuration asks for.
package enum GRPCListeners {
    /// KServe v2 (`grpc_kserve_address`, unless off) and TorchServe's inference and management
    /// services; none with `enable_grpc=false`.
    /// - Parameter authorization: checks the inference and management keys; nil when token
    ///   authorization is off.
    package static func configured(
        _ configuration: GRPCConfiguration, server: ModelServer, authorization: TokenAuthorization?, logger: Logger
    ) -> [GRPCListener] {
        guard configuration.enabled else { return [] }
        var listeners: [GRPCListener] = []
        if let address = configuration.kserveAddress {
            listeners.append(KServeGRPC.listener(server: server, address: address, authorization: authorization, logger: logger))
        }
        listeners.append(TorchServeGRPC.inferenceListener(
            server: server, address: configuration.inferenceAddress, authorization: authorization, logger: logger))
        listeners.append(TorchServeGRPC.managementListener(
            server: server, address: configuration.managementAddress, authorization: authorization, logger: logger))
        return listeners
    }
}
