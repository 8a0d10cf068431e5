import Foundation
import GRPCCore
import ServerCore
import ServerHTTP
import SwiftProtobuf

package typealias TorchServeInferenceAPIs = Org_Pytorch_Serve_Grpc_Inference_InferenceAPIsService
package typealias PredictionsRequest = Org_Pytorch_Serve_Grpc_Inference_PredictionsRequest
package typealias PredictionResponse = Org_Pytorch_Serve_Grpc_Inference_PredictionResponse

/// TorchServe's gRPC inference service (`org.pytorch.serve.grpc.inference.InferenceAPIsService`,
/// port 7070): `Ping` and `Predictions` answer what `GET /ping` and `POST /predictions` answer,
/// through the same core calls.
package struct TorchServeGRPCInference: TorchServeInferenceAPIs.ServiceProtocol {
    let server: ModelServer

    package init(server: ModelServer) {
        self.server = server
    }

    /// The calls a probe makes without a key, as `GET /ping` needs none.
    package static var healthMethods: Set<MethodDescriptor> { [TorchServeInferenceAPIs.Method.Ping.descriptor] }

    /// The JSON text of `GET /ping`, always with status OK, as TorchServe answers it.
    package func ping(
        request: ServerRequest<Google_Protobuf_Empty>, context: ServerContext
    ) async throws -> ServerResponse<Org_Pytorch_Serve_Grpc_Inference_TorchServeHealthResponse> {
        var answer = Org_Pytorch_Serve_Grpc_Inference_TorchServeHealthResponse()
        answer.health = HealthStatus(server: server).json
        return ServerResponse(message: answer)
    }

    package func predictions(
        request: ServerRequest<PredictionsRequest>, context: ServerContext
    ) async throws -> ServerResponse<PredictionResponse> {
        ServerResponse(message: try await predict(request.message, metadata: request.metadata))
    }

    /// One message: the built-in handlers answer whole, as TorchServe's stream does for a handler
    /// that sends no intermediate answers.
    package func streamPredictions(
        request: ServerRequest<PredictionsRequest>, context: ServerContext
    ) async throws -> StreamingServerResponse<PredictionResponse> {
        let answer = try await predict(request.message, metadata: request.metadata)
        return StreamingServerResponse { writer in
            try await writer.write(answer)
            return [:]
        }
    }

    package func streamPredictions2(
        request: StreamingServerRequest<PredictionsRequest>, context: ServerContext
    ) async throws -> StreamingServerResponse<PredictionResponse> {
        throw RPCError(
            code: .unimplemented,
            message: "StreamPredictions2 (TorchServe's sequence batching) is not served: the built-in handlers keep no state between requests; call Predictions for each input")
    }

    /// Runs the request as `POST /predictions/{model_name}[/{model_version}]` with the same body.
    func predict(_ message: PredictionsRequest, metadata: Metadata) async throws -> PredictionResponse {
        guard !message.modelName.isEmpty else {
            throw RPCError(code: .invalidArgument, message: "model_name is required: the name of a registered model")
        }
        let model = message.modelName
        let version = message.modelVersion.isEmpty ? nil : message.modelVersion
        var input = try PredictionInput.request(from: message.input)
        input.timeout = GRPCDeadline.timeout(in: metadata)
        // A client that cancels, or whose deadline passes, leaves before the answer: the core
        // drops its request before any compute, as it does for a closed HTTP connection.
        let connection = ClientConnection()
        input.connection = connection
        let output = try await GRPCStatusMapping.mapping {
            do {
                return try await withRPCCancellationHandler {
                    try await server.predict(model: model, version: version, request: input)
                } onCancelRPC: {
                    connection.close()
                }
            } catch let error as ModelServerError {
                server.countResponse(model: model, version: version, code: Int(APIError(error).status.code))
                throw error
            }
        }
        server.countResponse(model: model, version: output.version, code: 200)
        var answer = PredictionResponse()
        answer.prediction = Data(output.body)
        return answer
    }
}
