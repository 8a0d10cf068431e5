import Hummingbird
import struct HummingbirdCore.HTTPServerBuilder
import Logging
import ServerCore
import Prometheus
import Tracing

/// Builds the Hummingbird applications of the server's ports.
public enum HTTPServer {
    /// The inference port's application.
    /// - Parameters:
    ///   - authorization: checks the inference key; nil when token authorization is off.
    ///   - edge: the network limits, shared by the server's listeners; nil: the default limits.
    ///   - invocationsModel: the model SageMaker's `/invocations` runs when the request names none.
    public static func inferenceApplication(
        server: ModelServer, host: String, port: Int, authorization: TokenAuthorization? = nil, edge: NetworkEdge? = nil,
        invocationsModel: String? = nil, logger: Logger
    ) -> some ApplicationProtocol {
        let edge = edge ?? NetworkEdge(maxRequestSize: server.configuration.maxRequestSize, logger: logger)
        let router = Router(context: ConnectionRequestContext.self)
        // Outermost, so the server span sees the status the error mapping answers with.
        let tracer = InstrumentationSystem.tracer
        if !(tracer is NoOpTracer) { router.add(middleware: RequestTracingMiddleware(tracer: tracer, untracedPaths: healthPaths)) }
        router.add(middleware: APIMiddleware(logger: logger, metricsFactory: server.metricsFactory))
        router.add(middleware: EdgeErrorMiddleware())
        // Before the token check: the page is public; the calls it makes carry the key.
        router.add(middleware: TryPageMiddleware(server: server, authorization: authorization))
        if let authorization { router.add(middleware: TokenMiddleware(authorization: authorization, kind: .inference)) }
        InferenceAPI<ConnectionRequestContext>(server: server, invocationsModel: invocationsModel).addRoutes(to: router)
        // Each connection gets a watcher, so requests of a client that has gone are dropped before compute.
        return Application(
            router: router,
            server: edge.http1(listener: "inference", healthPaths: healthPaths, additionalChannelHandlers: [ClientConnectionWatcher()]),
            configuration: .init(address: .hostname(host, port: port), serverName: serverName),
            logger: logger)
    }

    /// The management port's application.
    /// - Parameters:
    ///   - authorization: checks the management key; nil when token authorization is off.
    ///   - edge: the network limits, shared by the server's listeners; nil: the default limits.
    public static func managementApplication(
        server: ModelServer, host: String, port: Int, authorization: TokenAuthorization? = nil, edge: NetworkEdge? = nil,
        logger: Logger
    ) -> some ApplicationProtocol {
        let edge = edge ?? NetworkEdge(maxRequestSize: server.configuration.maxRequestSize, logger: logger)
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: APIMiddleware(logger: logger, metricsFactory: server.metricsFactory))
        router.add(middleware: EdgeErrorMiddleware())
        if let authorization { router.add(middleware: TokenMiddleware(authorization: authorization, kind: .management)) }
        ManagementAPI<BasicRequestContext>(server: server, authorization: authorization).addRoutes(to: router)
        return application(router, server: edge.http1(listener: "management", healthPaths: []), host: host, port: port, logger: logger)
    }

    /// The metrics port's application; `registry` must be the one behind the server's metrics factory.
    /// - Parameter edge: the network limits, shared by the server's listeners; nil: the default limits.
    public static func metricsApplication(
        server: ModelServer, registry: PrometheusCollectorRegistry, host: String, port: Int, edge: NetworkEdge? = nil,
        logger: Logger
    ) -> some ApplicationProtocol {
        let edge = edge ?? NetworkEdge(maxRequestSize: server.configuration.maxRequestSize, logger: logger)
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: APIMiddleware(logger: logger, metricsFactory: server.metricsFactory, countsRequests: false))
        router.add(middleware: EdgeErrorMiddleware())
        MetricsAPI<BasicRequestContext>(server: server, registry: registry).addRoutes(to: router)
        return application(router, server: edge.http1(listener: "metrics", healthPaths: []), host: host, port: port, logger: logger)
    }

    /// A metrics factory over `registry` with the server's histogram buckets.
    public static func metricsFactory(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = MetricName.durationBuckets
        factory.valueHistogramBuckets[MetricName.batchSize] = MetricName.batchBuckets
        return factory
    }

    static let serverName = "swift-model-server"

    /// What a health probe asks: a connection over `max_connections` may still ask these (`GET`).
    static let healthPaths: Set<String> = ["/ping", "/v2/health/live", "/v2/health/ready"]

    private static func application(
        _ router: Router<BasicRequestContext>, server: HTTPServerBuilder, host: String, port: Int, logger: Logger
    ) -> some ApplicationProtocol {
        Application(
            router: router,
            server: server,
            configuration: .init(address: .hostname(host, port: port), serverName: serverName),
            logger: logger)
    }
}
