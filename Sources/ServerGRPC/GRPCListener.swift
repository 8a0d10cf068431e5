import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import ServerCore
import ServerHTTP
import ServiceLifecycle

/// One gRPC listener: a grpc-swift server with the HTTP/2 transport on a host and port, run as
/// a ServiceLifecycle service (it serves until graceful shutdown, then finishes the calls under
/// way). Every listener of the process is made here, so all of them share the message size
/// limit, tracing, token authorization and the access log.
package struct GRPCListener: Service {
    /// What the listener serves, for logs and errors (`KServe v2 gRPC`).
    package let name: String
    /// The `config.properties` key that sets its address, named when it cannot listen.
    package let configKey: String
    package let address: GRPCConfiguration.Address
    private let server: GRPCServer<HTTP2ServerTransport.Posix>
    private let logger: Logger

    /// - Parameters:
    ///   - services: the gRPC services to serve.
    ///   - authorization: checks the `authorization: Bearer <key>` metadata of every call but
    ///     `healthMethods`; nil when token authorization is off.
    ///   - tokenKind: which key the calls need (`.inference`, `.management`).
    ///   - healthMethods: the methods that need no key (liveness and readiness probes).
    ///   - maxRequestSize: the largest request message in bytes (`max_request_size`); larger
    ///     ones get RESOURCE_EXHAUSTED before they are decoded.
    package init(
        name: String, configKey: String, address: GRPCConfiguration.Address, services: [any RegistrableRPCService],
        authorization: TokenAuthorization?, tokenKind: TokenAuthorization.Kind, healthMethods: Set<MethodDescriptor>,
        maxRequestSize: Int, logger: Logger
    ) {
        self.name = name
        self.configKey = configKey
        self.address = address
        self.logger = logger
        // Tracing outermost, so the access log and a refused token are inside the call's span.
        var interceptors: [any ServerInterceptor] = [GRPCTracing(), GRPCAccessLog(logger: logger)]
        if let authorization {
            interceptors.append(GRPCTokenInterceptor(authorization: authorization, kind: tokenKind, exemptMethods: healthMethods))
        }
        let host = address.host == "localhost" ? "127.0.0.1" : address.host
        let socket: GRPCNIOTransportCore.SocketAddress =
            host.contains(":") ? .ipv6(host: host, port: address.port) : .ipv4(host: host, port: address.port)
        let transport = HTTP2ServerTransport.Posix(
            address: socket, transportSecurity: .plaintext,
            config: .defaults { $0.rpc.maxRequestPayloadSize = maxRequestSize })
        server = GRPCServer(transport: transport, services: services, interceptors: interceptors)
    }

    /// The port the listener is bound to, once it listens (the chosen one for port 0).
    /// - Throws: when it could not bind, or has stopped.
    package var listeningPort: Int {
        get async throws {
            let bound = try await server.listeningAddress
            guard let port = bound?.ipv4?.port ?? bound?.ipv6?.port else {
                throw GRPCListenerError(name: name, configKey: configKey, address: address, reason: "it has no IP address bound")
            }
            return port
        }
    }

    /// Serves until graceful shutdown (or cancellation), then lets the calls under way finish.
    /// - Throws: ``GRPCListenerError`` when the address cannot be bound (in use, not local).
    package func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                do {
                    try await withGracefulShutdownHandler {
                        try await server.serve()
                    } onGracefulShutdown: {
                        server.beginGracefulShutdown()
                    }
                } catch {
                    throw GRPCListenerError(name: name, configKey: configKey, address: address, reason: Self.rootCause(of: error))
                }
            }
            if let port = try? await listeningPort {
                logger.info("\(name) listening on \(GRPCConfiguration.Address(host: address.host, port: port))")
            }
        }
    }

    /// The innermost cause of a transport error: the system's reason (`Address already in use`).
    static func rootCause(of error: any Error) -> String {
        var current: any Error = error
        while let wrapped = (current as? RuntimeError)?.cause ?? (current as? RPCError)?.cause {
            current = wrapped
        }
        return "\(current)"
    }
}

/// A gRPC listener that could not start.
package struct GRPCListenerError: Error, CustomStringConvertible {
    var name: String
    var configKey: String
    var address: GRPCConfiguration.Address
    var reason: String

    package var description: String {
        "cannot listen for \(name) on \(address): \(reason). Free the port, or set \(configKey) in config.properties (enable_grpc=false turns gRPC off)"
    }
}
