import Foundation
import GRPCCore
import ServerCore
import ServerHTTP

/// KServe v2 (Open Inference Protocol) over gRPC: `inference.GRPCInferenceService`. Each call
/// goes to the core exactly as the HTTP `/v2` routes go (``KServeInference``), so the queue,
/// batching, deadlines, admission and metrics are the same; only the wire form differs.
struct KServeGRPCService: Inference_GRPCInferenceService.ServiceProtocol {
    let server: ModelServer

    /// The health methods, which need no token.
    static let healthMethods: Set<MethodDescriptor> = [
        Inference_GRPCInferenceService.Method.ServerLive.descriptor,
        Inference_GRPCInferenceService.Method.ServerReady.descriptor,
    ]

    func serverLive(
        request: ServerRequest<Inference_ServerLiveRequest>, context: ServerContext
    ) async throws -> ServerResponse<Inference_ServerLiveResponse> {
        ServerResponse(message: .with { $0.live = true })
    }

    func serverReady(
        request: ServerRequest<Inference_ServerReadyRequest>, context: ServerContext
    ) async throws -> ServerResponse<Inference_ServerReadyResponse> {
        ServerResponse(message: .with { $0.ready = server.unreadyReason == nil })
    }

    func modelReady(
        request: ServerRequest<Inference_ModelReadyRequest>, context: ServerContext
    ) async throws -> ServerResponse<Inference_ModelReadyResponse> {
        try await GRPCStatusMapping.mapping {
            let ready = try server.isReady(model: request.message.name, version: Self.version(request.message.version))
            return ServerResponse(message: .with { $0.ready = ready })
        }
    }

    func serverMetadata(
        request: ServerRequest<Inference_ServerMetadataRequest>, context: ServerContext
    ) async throws -> ServerResponse<Inference_ServerMetadataResponse> {
        // The HTTP metadata's `binary_tensor_data` is an HTTP extension; gRPC has raw contents.
        ServerResponse(message: .with {
            $0.name = KServeServerInfo.name
            $0.version = KServeServerInfo.version
        })
    }

    func modelMetadata(
        request: ServerRequest<Inference_ModelMetadataRequest>, context: ServerContext
    ) async throws -> ServerResponse<Inference_ModelMetadataResponse> {
        try await GRPCStatusMapping.mapping {
            let model = request.message.name
            let signature = try server.signature(model: model, version: Self.version(request.message.version))
            let versions = try server.describe(model: model, version: "all").map(\.modelVersion)
            func tensors(_ specs: [ModelSignature.TensorSpec], prefix: String) -> [Inference_ModelMetadataResponse.TensorMetadata] {
                specs.map { spec in
                    .with {
                        $0.name = spec.kserveName(prefix: prefix)
                        $0.datatype = spec.kserveDatatype
                        $0.shape = spec.shape.map { Int64($0) }
                    }
                }
            }
            return ServerResponse(message: .with {
                $0.name = model
                $0.versions = versions
                $0.platform = "pytorch_libtorch"
                $0.inputs = tensors(signature.inputs, prefix: "input")
                $0.outputs = tensors(signature.outputs, prefix: "output")
            })
        }
    }

    func modelInfer(
        request: ServerRequest<Inference_ModelInferRequest>, context: ServerContext
    ) async throws -> ServerResponse<Inference_ModelInferResponse> {
        try await GRPCStatusMapping.mapping {
            let message = request.message
            let model = message.modelName
            let version = Self.version(message.modelVersion)
            let inputs = try KServeGRPCTensorCoding.inputs(of: message)
            var timeout = GRPCDeadline.timeout(in: request.metadata)
            if let parameter = message.parameters["timeout"] {
                guard let microseconds = parameter.intValue, microseconds > 0 else {
                    throw ModelServerError.badRequest("parameters.timeout must be a positive integer of microseconds")
                }
                timeout = min(timeout ?? .microseconds(microseconds), .microseconds(microseconds))
            }
            // A call cancelled by its client (or its deadline) closes the "connection", so its
            // requests still queued are dropped before compute, as for a closed HTTP connection.
            let connection = ClientConnection()
            let result: (version: String, outputs: [KServeTensor])
            do {
                result = try await withRPCCancellationHandler {
                    try await KServeInference(server: server).infer(
                        model: model, version: version, inputs: inputs,
                        outputs: message.outputs.isEmpty ? nil : message.outputs.map(\.name),
                        timeout: timeout, connection: connection)
                } onCancelRPC: {
                    connection.close()
                }
            } catch let error as ModelServerError {
                server.countResponse(model: model, version: version, code: Int(APIError(error).status.code))
                throw error
            }
            server.countResponse(model: model, version: result.version, code: 200)
            var response = Inference_ModelInferResponse()
            response.modelName = model
            response.modelVersion = result.version
            response.id = message.id
            // Triton answers raw contents; `binary_data_output: false` asks for typed ones.
            let typed = message.parameters["binary_data_output"]?.boolValue == false
            KServeGRPCTensorCoding.encode(result.outputs, typed: typed, into: &response)
            return ServerResponse(message: response)
        }
    }

    /// The protocol's empty version means the default one.
    private static func version(_ text: String) -> String? {
        text.isEmpty ? nil : text
    }
}
