import Foundation
import Hummingbird
import ServerCore

/// KServe v1 (TensorFlow Serving's REST form, as KServe's model servers and TorchServe's KServe
/// integration speak it) on the inference port: the model list, model readiness, and
/// `:predict` on `{"instances": [...]}` with one prediction per instance.
struct KServeV1API<Context: RequestContext>: Sendable {
    let server: ModelServer
    let inference: InferenceAPI<Context>

    init(server: ModelServer) {
        self.server = server
        inference = InferenceAPI(server: server)
    }

    // `{model_name}:predict` is one path component: Hummingbird matches it as a capture with a
    // fixed suffix, ahead of the plain `{model_name}` capture of the readiness route.
    var routes: [Route<Context>] {
        [
            Route(method: .get, path: "/v1/models", summary: "KServe v1: the names of the registered models.",
                  errors: []) { _, _ in models() },
            Route(method: .get, path: "/v1/models/{model_name}", summary: "KServe v1 model readiness: 200 when it has a READY worker, else 503.",
                  errors: [404, 503]) { _, context in try modelReady(context) },
            Route(method: .post, path: "/v1/models/{model_name}:predict",
                  summary: "KServe v1 prediction: {\"instances\": [...]} in, one prediction per instance out, in order.",
                  errors: [400, 401, 403, 404, 413, 415, 429, 500, 503, 504, 507]) { request, context in
                      try await predict(request, context)
                  },
            Route(method: .post, path: "/v1/models/{model_name}:explain", summary: "KServe v1 explanation: 501, no model here has an explainer.",
                  errors: [404, 501]) { _, context in try explain(context) },
        ]
    }

    func models() -> Response {
        jsonResponse("{\"models\":[\(server.listModels().map { jsonString($0.name) }.joined(separator: ","))]}")
    }

    func modelReady(_ context: Context) throws -> Response {
        let model = try context.parameters.require("model_name")
        guard try server.isReady(model: model) else {
            // KServe answers 503 with `error`; its client reads the 503 as "not ready".
            let reason = "Model \(model) is not ready: it has no READY worker"
            return jsonResponse("{\"name\":\(jsonString(model)),\"ready\":false,\"error\":\(jsonString(reason))}", status: .serviceUnavailable)
        }
        return jsonResponse("{\"name\":\(jsonString(model)),\"ready\":true}")
    }

    func explain(_ context: Context) throws -> Response {
        let model = try context.parameters.require("model_name")
        // As KServe, an unknown model is a 404 before the missing explainer is.
        guard server.defaultVersion(of: model) != nil else { throw ModelServerError.modelNotFound(model: model) }
        throw APIError(.notImplemented, type: "NotImplementedException",
                       message: "Model \(model) has no explainer: this server answers :predict, not :explain")
    }

    func predict(_ request: Request, _ context: Context) async throws -> Response {
        let model = try context.parameters.require("model_name")
        let body = try await inference.readBody(request)
        let timeout = try inference.headerTimeout(request)
        let signature: ModelSignature
        do {
            signature = try server.signature(model: model)
        } catch {
            inference.countResponse(model: model, version: nil, status: APIError(error).status)
            throw error
        }
        let instances = try KServeV1Request.decode(Array(buffer: body), signature: signature,
                                                   limit: server.configuration.jobQueueSize).instances
        let parameters = Dictionary(request.uri.queryParameters.map { (String($0.key), String($0.value)) },
                                    uniquingKeysWith: { first, _ in first })
        let result: (version: String, predictions: [String])
        do {
            result = try await KServeV1Inference(server: server).predict(
                instances, model: model, signature: signature, parameters: parameters, timeout: timeout,
                connection: await inference.clientConnection(context))
        } catch let error as APIError {
            inference.countResponse(model: model, version: signature.version, status: error.status)
            throw error
        } catch let error as ModelServerError {
            inference.countResponse(model: model, version: signature.version, status: APIError(error).status)
            throw error
        }
        inference.countResponse(model: model, version: result.version, status: .ok)
        return jsonResponse("{\"predictions\":[\(result.predictions.joined(separator: ","))]}")
    }
}
