import Foundation
import Hummingbird
import Metrics
import ModelServer

/// The inference port: health and predictions.
public struct InferenceAPI<Context: RequestContext>: Sendable {
    let server: ModelServer

    public init(server: ModelServer) {
        self.server = server
    }

    /// Adds this port's routes to `router`.
    public func addRoutes(to router: Router<Context>) {
        router.get("/ping") { _, _ in ping() }
        for path in ["/predictions/:model", "/predictions/:model/:version"] {
            router.post(RouterPath(path)) { request, context in try await predict(request, context) }
            router.put(RouterPath(path)) { request, context in try await predict(request, context) }
            router.get(RouterPath(path)) { request, _ -> Response in throw APIError.methodNotAllowed(request) }
            router.delete(RouterPath(path)) { request, _ -> Response in throw APIError.methodNotAllowed(request) }
        }
    }

    /// ts_inference_responses_total by model, serving version and status code.
    func countResponse(model: String, version: String?, status: HTTPResponse.Status) {
        guard let served = version ?? server.defaultVersion(of: model) else { return }
        Counter(label: MetricName.inferenceResponses,
                dimensions: [("model_name", model), ("model_version", served), ("code", String(status.code))],
                factory: server.metricsFactory).increment()
    }

    func ping() -> Response {
        if let reason = server.unreadyReason {
            return jsonResponse("{\"status\":\"Unhealthy\",\"reason\":\(jsonString(reason))}", status: .serviceUnavailable)
        }
        return jsonResponse("{\"status\":\"Healthy\"}")
    }

    func predict(_ request: Request, _ context: Context) async throws -> Response {
        let model = try context.parameters.require("model")
        let version = context.parameters.get("version")
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: server.configuration.maxRequestSize)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw APIError(.contentTooLarge, type: "RequestTooLargeException",
                           message: "Request body is larger than max_request_size (\(server.configuration.maxRequestSize) bytes)")
        }
        let input = InferenceRequest(
            body: Array(buffer: body),
            contentType: request.headers[.contentType],
            accept: request.headers[.accept],
            parameters: Dictionary(request.uri.queryParameters.map { (String($0.key), String($0.value)) }, uniquingKeysWith: { first, _ in first }))
        let output: InferenceResponse
        do {
            output = try await server.predict(model: model, version: version, request: input)
        } catch let error as ModelServerError {
            countResponse(model: model, version: version, status: APIError(error).status)
            throw error
        }
        countResponse(model: model, version: version, status: .ok)
        return Response(status: .ok, headers: [.contentType: output.contentType],
                        body: .init(byteBuffer: ByteBuffer(bytes: output.body)))
    }
}
