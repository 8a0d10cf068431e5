import Hummingbird
import ServerCore

/// SageMaker's container contract on the inference port: `POST /invocations` runs the model
/// the request or the configuration names (`GET /ping` is the inference API's), and
/// `POST /models/{m}/invoke` runs a named model, both as `/predictions` does, except that
/// `/invocations` also speaks MLflow's scoring protocol (``MLflowRequest``), as a model served by
/// `mlflow models serve` and deployed to SageMaker does.
struct SageMakerAPI<Context: RequestContext>: Sendable {
    let server: ModelServer
    let inference: InferenceAPI<Context>
    /// `invocations_model`: the model `/invocations` runs when the request names none.
    let invocationsModel: String?

    init(server: ModelServer, invocationsModel: String?) {
        self.server = server
        self.invocationsModel = invocationsModel
        inference = InferenceAPI(server: server, invocationsModel: invocationsModel)
    }

    var routes: [Route<Context>] {
        let errors = [400, 401, 403, 404, 413, 415, 429, 500, 503, 504, 507]
        return [
            Route(method: .post, path: "/invocations",
                  summary: "SageMaker: run the model named by X-Amzn-SageMaker-Target-Model, model_name, invocations_model, or the only one; MLflow's scoring protocol (dataframe_split, dataframe_records, instances, inputs, text/csv) answers {\"predictions\": [...]}.",
                  errors: errors) { request, context in try await invocations(request, context) },
            Route(method: .post, path: "/models/{model_name}/invoke", summary: "SageMaker: run a model as /predictions/{model_name} does.",
                  errors: errors) { request, context in
                      try await inference.predict(request, context, model: try context.parameters.require("model_name"), version: nil)
                  },
        ]
    }

    /// A body in MLflow's scoring protocol is scored row by row, and answered (errors included) in
    /// MLflow's form; any other body goes to the handler as on `/predictions`.
    func invocations(_ request: Request, _ context: Context) async throws -> Response {
        var request = request
        let body = try await inference.readBody(request)
        request.body = RequestBody(buffer: body)
        let rows: Result<MLflowRows, MLflowError>
        switch Result(catching: { () throws(MLflowError) in
            try MLflowRequest.rows(of: Array(buffer: body), contentType: request.headers[.contentType],
                                   maxRows: server.configuration.jobQueueSize)
        }) {
        case .success(nil):
            return try await inference.predict(request, context, model: try invocationsModel(of: request), version: nil)
        case .success(let found?): rows = .success(found)
        case .failure(let error): rows = .failure(error)
        }
        let model: String
        let timeout: Duration?
        do {
            model = try invocationsModel(of: request)
            timeout = try inference.headerTimeout(request)
        } catch {
            return MLflowError(error).response
        }
        let parameters = Dictionary(request.uri.queryParameters.map { (String($0.key), String($0.value)) }, uniquingKeysWith: { first, _ in first })
        return await MLflowScoring(server: server).score(
            rows, model: model, parameters: parameters, timeout: timeout,
            connection: await inference.clientConnection(context))
    }

    private func invocationsModel(of request: Request) throws(ModelServerError) -> String {
        try invocationsModel(targetModel: HeaderName.sageMakerTargetModel.flatMap { request.headers[$0] },
                             modelName: request.uri.queryParameters.get("model_name"))
    }

    /// The model `/invocations` runs: the `X-Amzn-SageMaker-Target-Model` header's last path
    /// part without `.tar.gz`/`.mar`, else the `model_name` query parameter, else the configured
    /// `invocations_model`, else the only registered model.
    /// - Throws: `.badRequest` when none of these names a model.
    func invocationsModel(targetModel: String?, modelName: String?) throws(ModelServerError) -> String {
        if let targetModel, !targetModel.isEmpty {
            var name = targetModel.split(separator: "/").last.map(String.init) ?? targetModel
            for suffix in [".tar.gz", ".mar"] where name.lowercased().hasSuffix(suffix) {
                name = String(name.dropLast(suffix.count))
            }
            return name
        }
        if let modelName, !modelName.isEmpty { return modelName }
        if let configured = invocationsModel { return configured }
        let loaded = server.listModels()
        guard loaded.count == 1 else {
            throw .badRequest(
                loaded.isEmpty
                    ? "no model is registered to answer /invocations"
                    : "\(loaded.count) models are registered (\(loaded.map(\.name).joined(separator: ", "))); name one with the X-Amzn-SageMaker-Target-Model header, the model_name query parameter or invocations_model in config.properties")
        }
        return loaded[0].name
    }
}
