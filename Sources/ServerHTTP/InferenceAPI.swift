import Foundation
import Hummingbird
import Metrics
import ServerCore

/// The inference port: health and predictions.
public struct InferenceAPI<Context: RequestContext>: Sendable {
    let server: ModelServer
    /// `invocations_model`, for SageMaker's `/invocations`.
    let invocationsModel: String?

    public init(server: ModelServer, invocationsModel: String? = nil) {
        self.server = server
        self.invocationsModel = invocationsModel
    }

    /// The routes of the port: what is served and what `OPTIONS /` describes.
    var routes: [Route<Context>] {
        let errors = [400, 401, 403, 404, 413, 415, 429, 500, 503, 504, 507]
        var table: [Route<Context>] = [
            Route(method: .get, path: "/ping", summary: "Health: 200 when every start-up model can answer, else 503 with a reason.",
                  errors: [503]) { _, _ in ping() },
        ]
        for path in ["/predictions/{model_name}", "/predictions/{model_name}/{model_version}"] {
            for method in [HTTPRequest.Method.post, .put] {
                table.append(Route(method: method, path: path, summary: "Run the model on the body (raw, multipart part data/file, or an image by URL: {\"url\": …} or part url).",
                                   errors: errors) { request, context in try await predict(request, context) })
            }
        }
        return table + KServeAPI(server: server).routes + KServeV1API(server: server).routes + SageMakerAPI(server: server, invocationsModel: invocationsModel).routes
    }

    /// Adds this port's routes to `router`.
    public func addRoutes(to router: Router<Context>) {
        router.add(routes, title: "Inference API")
    }

    /// ts_inference_responses_total by model, serving version and status code.
    func countResponse(model: String, version: String?, status: HTTPResponse.Status) {
        server.countResponse(model: model, version: version, code: status.code)
    }

    func ping() -> Response {
        let health = HealthStatus(server: server)
        return jsonResponse(health.json, status: health.reason == nil ? .ok : .serviceUnavailable)
    }

    func predict(_ request: Request, _ context: Context) async throws -> Response {
        try await predict(request, context, model: try context.parameters.require("model_name"), version: context.parameters.get("model_version"))
    }

    /// The state of the request's connection, when the context can tell (the inference port's can).
    func clientConnection(_ context: Context) async -> ClientConnection? {
        await (context as? ConnectionRequestContext)?.clientConnection
    }

    /// The body, up to `max_request_size` (413 beyond).
    func readBody(_ request: Request) async throws -> ByteBuffer {
        var request = request
        do {
            return try await request.collectBody(upTo: server.configuration.maxRequestSize)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw APIError(.contentTooLarge, type: "RequestTooLargeException",
                           message: "Request body is larger than max_request_size (\(server.configuration.maxRequestSize) bytes)")
        }
    }

    /// The deadline the `X-Request-Timeout-Ms` header asks for, if any.
    func headerTimeout(_ request: Request) throws -> Duration? {
        guard let name = HeaderName.requestTimeout, let text = request.headers[name] else { return nil }
        guard let milliseconds = Int(text), milliseconds > 0 else {
            throw ModelServerError.badRequest("X-Request-Timeout-Ms must be a positive integer of milliseconds, got '\(text)'")
        }
        return .milliseconds(milliseconds)
    }

    /// Runs `model`'s handler on the body, as `/predictions/{model}[/{version}]`.
    func predict(_ request: Request, _ context: Context, model: String, version: String?) async throws -> Response {
        let body = try await readBody(request)
        var payload = Array(buffer: body)
        var contentType = request.headers[.contentType]
        if let boundary = MultipartPayload.boundary(of: contentType) {
            (payload, contentType) = try MultipartPayload.extract(from: body, boundary: boundary)
        }
        let timeout = try headerTimeout(request)
        var input = InferenceRequest(
            body: payload,
            contentType: contentType,
            accept: request.headers[.accept],
            parameters: Dictionary(request.uri.queryParameters.map { (String($0.key), String($0.value)) }, uniquingKeysWith: { first, _ in first }),
            timeout: timeout)
        input.connection = await clientConnection(context)
        let output: InferenceResponse
        do {
            output = try await server.predict(model: model, version: version, request: input)
        } catch let error as ModelServerError {
            countResponse(model: model, version: version, status: APIError(error).status)
            throw error
        }
        countResponse(model: model, version: output.version, status: .ok)
        return Response(status: .ok, headers: [.contentType: output.contentType],
                        body: .init(byteBuffer: ByteBuffer(bytes: output.body)))
    }
}
