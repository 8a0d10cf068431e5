import Foundation
import Hummingbird
import ModelArchive
import ServerCore

/// MLflow's scoring protocol on the core: each row of a request is a handler request of its own,
/// all submitted at once so that they batch in the model's queue, answered as
/// `{"predictions": [...]}` in row order. Every answer, errors included, is in MLflow's form.
struct MLflowScoring: Sendable {
    let server: ModelServer

    /// Runs every row on `model`'s default version.
    /// - Parameters:
    ///   - rows: the request's rows, or the error that refused its body.
    ///   - parameters: the query parameters, passed to the handler as `/predictions` does.
    ///   - timeout: each row's deadline (`X-Request-Timeout-Ms`), capped by the model's response timeout.
    func score(_ rows: Result<MLflowRows, MLflowError>, model: String, parameters: [String: String],
               timeout: Duration?, connection: ClientConnection?) async -> Response {
        var version: String?
        do {
            guard let description = try server.describe(model: model).first else { throw ModelServerError.modelNotFound(model: model) }
            version = description.modelVersion
            guard let handler = HandlerKind(rawValue: description.handler) else {
                throw ModelServerError.modelFailure("model \(model) has a handler this server does not know (\(description.handler))")
            }
            let columns = MLflowColumns(handler: handler, model: model)
            let requests = try columns.requests(try rows.get())
            let answer = try await run(requests, columns: columns, model: model, version: description.modelVersion,
                                       parameters: parameters, timeout: timeout, connection: connection)
            server.countResponse(model: model, version: answer.version, code: HTTPResponse.Status.ok.code)
            return jsonResponse("{\"predictions\":[\(answer.predictions.joined(separator: ","))]}")
        } catch {
            let failure = MLflowError(error)
            server.countResponse(model: model, version: version, code: failure.status.code)
            return failure.response
        }
    }

    /// The predictions in row order, and the version that answered the first row.
    private func run(_ requests: [MLflowColumns.RowRequest], columns: MLflowColumns, model: String, version: String,
                     parameters: [String: String], timeout: Duration?,
                     connection: ClientConnection?) async throws -> (version: String, predictions: [String]) {
        let answers = try await inIndexOrder(requests.count) { [server] index in
            let row = requests[index]
            var request = InferenceRequest(body: row.body, contentType: row.contentType, parameters: parameters, timeout: timeout)
            request.connection = connection
            do {
                let answer = try await server.predict(model: model, version: version, request: request)
                return (version: answer.version, prediction: columns.prediction(answer))
            } catch let error as ModelServerError {
                var failure = MLflowError(APIError(error))
                failure.message = "row \(index): \(failure.message)"
                throw failure
            }
        }
        return (answers.first?.version ?? version, answers.map(\.prediction))
    }
}
