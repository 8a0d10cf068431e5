import HTTPTypes
import Hummingbird
import Tracing

/// Runs each request of a port inside a server span, continuing the client's trace when the
/// request carries W3C `traceparent`/`tracestate` (read by the tracer's propagator), and makes
/// that span the current context, so that the core's spans of the request (decode, queue,
/// preprocess, postprocess, encode) are its children.
///
/// Installed only when a tracer is bootstrapped (`HTTPServer.inferenceApplication` checks), so a server
/// without tracing pays nothing for it.
struct RequestTracingMiddleware<Context: RequestContext>: RouterMiddleware {
    let tracer: any Tracer
    /// Paths whose `GET` is not traced: health probes, which would bury the requests' traces.
    let untracedPaths: Set<String>

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.method == .get && untracedPaths.contains(request.uri.path) { return try await next(request, context) }
        var parent = ServiceContext.topLevel
        tracer.extract(request.headers, into: &parent, using: HTTPFieldsExtractor())
        let method = request.method.rawValue
        let span = tracer.startSpan("\(method) \(request.uri.path)", context: parent, ofKind: .server)
        span.updateAttributes { attributes in
            attributes["http.request.method"] = method
            attributes["url.path"] = request.uri.path
            attributes["url.scheme"] = "http"
        }
        do {
            let response = try await ServiceContext.$current.withValue(span.context) {
                try await next(request, context)
            }
            // The answer is encoded by now; writing it to the socket is left out of the span.
            finish(span, method: method, route: context.endpointPath, status: Int(response.status.code))
            span.end()
            return response
        } catch {
            finish(span, method: method, route: context.endpointPath, status: (error as? any HTTPResponseError).map { Int($0.status.code) } ?? 500)
            span.recordError(error)
            span.end()
            throw error
        }
    }

    /// Names the span after the route that matched (`POST /predictions/{model_name}`) and records the status.
    private func finish(_ span: any Span, method: String, route: String?, status: Int) {
        if let route { span.operationName = "\(method) \(route)" }
        span.updateAttributes { attributes in
            attributes["http.route"] = route
            attributes["http.response.status_code"] = status
        }
        if status >= 500 { span.setStatus(SpanStatus(code: .error)) }
    }
}

/// Reads a propagation header (`traceparent`, `tracestate`) from a request's fields.
struct HTTPFieldsExtractor: Extractor {
    func extract(key name: String, from fields: HTTPFields) -> String? {
        guard let field = HTTPField.Name(name) else { return nil }
        return fields[field]
    }
}
