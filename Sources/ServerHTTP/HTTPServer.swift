import Hummingbird
import Logging
import ModelServer
import Prometheus

/// Builds the Hummingbird applications of the server's ports.
public enum HTTPServer {
    /// The inference port's application.
    /// - Parameter authorization: checks the inference key; nil when token authorization is off.
    public static func inferenceApplication(
        server: ModelServer, host: String, port: Int, authorization: TokenAuthorization? = nil, logger: Logger
    ) -> some ApplicationProtocol {
        let router = Router(context: ConnectionRequestContext.self)
        router.add(middleware: APIMiddleware(logger: logger, metricsFactory: server.metricsFactory))
        if let authorization { router.add(middleware: TokenMiddleware(authorization: authorization, kind: .inference)) }
        InferenceAPI<ConnectionRequestContext>(server: server).addRoutes(to: router)
        // Each connection gets a watcher, so requests of a client that has gone are dropped before compute.
        return Application(
            router: router,
            server: .http1(configuration: .init(additionalChannelHandlers: [ClientConnectionWatcher()])),
            configuration: .init(address: .hostname(host, port: port), serverName: serverName),
            logger: logger)
    }

    /// The management port's application.
    /// - Parameter authorization: checks the management key; nil when token authorization is off.
    public static func managementApplication(
        server: ModelServer, host: String, port: Int, authorization: TokenAuthorization? = nil, logger: Logger
    ) -> some ApplicationProtocol {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: APIMiddleware(logger: logger, metricsFactory: server.metricsFactory))
        if let authorization { router.add(middleware: TokenMiddleware(authorization: authorization, kind: .management)) }
        ManagementAPI<BasicRequestContext>(server: server, authorization: authorization).addRoutes(to: router)
        return application(router, host: host, port: port, logger: logger)
    }

    /// The metrics port's application; `registry` must be the one behind the server's metrics factory.
    public static func metricsApplication(
        server: ModelServer, registry: PrometheusCollectorRegistry, host: String, port: Int, logger: Logger
    ) -> some ApplicationProtocol {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: APIMiddleware(logger: logger, metricsFactory: server.metricsFactory, countsRequests: false))
        MetricsAPI<BasicRequestContext>(server: server, registry: registry).addRoutes(to: router)
        return application(router, host: host, port: port, logger: logger)
    }

    /// A metrics factory over `registry` with the server's histogram buckets.
    public static func metricsFactory(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = MetricName.durationBuckets
        factory.valueHistogramBuckets[MetricName.batchSize] = MetricName.batchBuckets
        return factory
    }

    static let serverName = "swift-model-server"

    private static func application(_ router: Router<BasicRequestContext>, host: String, port: Int, logger: Logger) -> some ApplicationProtocol {
        Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: serverName),
            logger: logger)
    }
}
