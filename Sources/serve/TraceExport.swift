import Logging
import OTel
import ServiceLifecycle
import Tracing

/// Exports the spans of requests over OTLP/HTTP (protobuf) through swift-otel, when asked: by
/// `enable_tracing=true`, or by the standard environment (`OTEL_SDK_DISABLED=false`, or an
/// `OTEL_TRACES_EXPORTER`); `OTEL_SDK_DISABLED=true` turns it off whatever the config says.
/// Everything else (endpoint, headers, sampler, batching, service name) comes from the `OTEL_*`
/// variables as swift-otel reads them. Only tracing: logs and metrics keep their own backends.
enum TraceExport {
    /// The service name spans carry unless `OTEL_SERVICE_NAME` says otherwise.
    static let serviceName = "swift-model-server"

    /// Whether tracing is asked for by the config key and the environment.
    static func isRequested(configured: Bool, environment: [String: String]) -> Bool {
        switch environment["OTEL_SDK_DISABLED"]?.lowercased() {
        case "true": return false
        case "false": return true
        default:
            if let exporter = environment["OTEL_TRACES_EXPORTER"], !exporter.isEmpty { return exporter.lowercased() != "none" }
            return configured
        }
    }

    /// Bootstraps the process's tracer when tracing is asked for.
    /// - Returns: the exporter's background service (batching, export, flush on shutdown) to run
    ///   in the service group, or nil when tracing is off.
    static func bootstrap(configured: Bool, environment: [String: String], logger: Logger) throws -> (any Service)? {
        guard isRequested(configured: configured, environment: environment) else { return nil }
        var configuration = OTel.Configuration.default
        configuration.serviceName = serviceName
        configuration.traces.enabled = true
        configuration.metrics.enabled = false
        configuration.logs.enabled = false
        let backend: (factory: any Tracer, service: any Service)
        do {
            backend = try OTel.makeTracingBackend(configuration: configuration)
        } catch {
            throw TraceExportError(message: "cannot start OpenTelemetry tracing: \(error); check the OTEL_* environment variables or set enable_tracing=false")
        }
        InstrumentationSystem.bootstrap(backend.factory)
        logger.info("tracing on: spans exported over OTLP (OTEL_EXPORTER_OTLP_ENDPOINT, default http://localhost:4318)")
        return backend.service
    }
}

struct TraceExportError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
