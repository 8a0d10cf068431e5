import Hummingbird
import Logging
import ModelServer

/// Builds the Hummingbird applications of the server's ports.
public enum HTTPServer {
    /// The inference port's application, listening on `host:port`.
    public static func inferenceApplication(
        server: ModelServer, host: String, port: Int, logger: Logger
    ) -> some ApplicationProtocol {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: APIMiddleware(logger: logger))
        InferenceAPI<BasicRequestContext>(server: server).addRoutes(to: router)
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "swift-model-server"),
            logger: logger)
    }

    /// The management port's application, listening on `host:port`.
    public static func managementApplication(
        server: ModelServer, host: String, port: Int, logger: Logger
    ) -> some ApplicationProtocol {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: APIMiddleware(logger: logger))
        ManagementAPI<BasicRequestContext>(server: server).addRoutes(to: router)
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "swift-model-server"),
            logger: logger)
    }
}
