import Foundation
import ImageCodec
import ModelArchive

/// A model's tensor interface as KServe v2's metadata shows it.
public struct ModelMetadata: Sendable, Equatable {
    /// One tensor: name, element type and shape, −1 for a dimension of any size.
    public struct TensorSpec: Sendable, Equatable {
        public var name: String
        public var datatype: TensorDatatype
        public var shape: [Int]
    }

    public var name: String
    /// Every registered version of the model.
    public var versions: [String]
    public var platform: String
    /// What `forward` takes, in order.
    public var inputs: [TensorSpec]
    /// What `forward` returns; a model returning a dict names its outputs by its keys instead.
    public var outputs: [TensorSpec]
}

/// The result of a tensor inference.
public struct TensorInference: Sendable, Equatable {
    public var model: String
    /// The version that answered.
    public var version: String
    public var outputs: [HostTensor]
}

extension ModelServer {
    /// Runs a model on tensors (KServe v2), through the version's queue and worker threads.
    ///
    /// Numeric inputs go straight to `forward`, in order, with no handler. One BYTES input `[N]`
    /// (encoded images or UTF-8 texts) runs the handler once per element: the outputs are `mask`
    /// UINT8 `[N, H, W]` (image_segmenter), or `probabilities` FP32 `[N, C]` and `label` BYTES `[N]`.
    /// - Parameters:
    ///   - outputs: output names to return, in this order; nil: all, in the model's order.
    ///   - timeout: the client's deadline, capped by the model's response timeout.
    ///   - connection: the client's connection; requests still queued when it closes are dropped.
    /// - Throws: `ModelServerError`; `.badRequest` for an output name the model does not give.
    public func infer(model: String, version: String? = nil, inputs: [HostTensor], outputs requested: [String]? = nil,
                      timeout: Duration? = nil, connection: ClientConnection? = nil) async throws -> TensorInference {
        let target = try resolve(model: model, version: version)
        let byteInputs = inputs.filter { $0.datatype == .bytes }
        let results: [HostTensor]
        if byteInputs.isEmpty {
            var request = InferenceRequest(body: [], timeout: timeout)
            request.mode = .forward(inputs)
            request.connection = connection
            results = try await predict(model: model, version: target.version, request: request).tensors
        } else {
            guard inputs.count == 1 else {
                throw ModelServerError.badRequest(
                    "a BYTES input runs the model's handler and must be the only input; got \(inputs.count) inputs (\(inputs.map { "\($0.name): \($0.datatype.rawValue)" }.joined(separator: ", ")))")
            }
            results = try await runHandler(on: inputs[0], model: model, version: target, timeout: timeout, connection: connection)
        }
        return TensorInference(model: model, version: target.version, outputs: try Self.select(requested, from: results))
    }

    /// One handler request per element of a BYTES tensor, run concurrently (so they batch), joined in order.
    private func runHandler(on input: HostTensor, model: String, version: ModelVersion, timeout: Duration?,
                            connection: ClientConnection?) async throws -> [HostTensor] {
        let elements = input.strings
        guard !elements.isEmpty else { throw ModelServerError.invalidInput("BYTES input \(input.name) has no elements") }
        let kind = version.archive.handler
        let answers = try await withThrowingTaskGroup(of: (Int, [HostTensor]).self) { group in
            for (index, element) in elements.enumerated() {
                var request = InferenceRequest(
                    body: Self.handlerBody(element, kind: kind),
                    contentType: kind == .textClassifier ? "text/plain; charset=utf-8" : nil, timeout: timeout)
                request.mode = .handlerTensors
                request.connection = connection
                let job = request
                group.addTask {
                    (index, try await self.predict(model: model, version: version.version, request: job).tensors)
                }
            }
            var answers = [[HostTensor]](repeating: [], count: elements.count)
            for try await (index, tensors) in group { answers[index] = tensors }
            return answers
        }
        return try answers[0].indices.map { (position) throws(ModelServerError) -> HostTensor in
            let name = answers[0][position].name
            return try HostTensor.concatenated(answers.map { $0[position] }, name: name)
        }
    }

    /// An image element as its bytes: raw PNG/JPEG as they are, anything else read as base64.
    static func handlerBody(_ element: [UInt8], kind: HandlerKind) -> [UInt8] {
        guard kind != .textClassifier, ImageFormat.sniff(element) == nil else { return element }
        let text = String(decoding: element, as: UTF8.self)
        guard let decoded = Data(base64Encoded: text, options: .ignoreUnknownCharacters), !decoded.isEmpty else {
            return element
        }
        return [UInt8](decoded)
    }

    /// The requested outputs in the requested order, or all of them.
    static func select(_ requested: [String]?, from outputs: [HostTensor]) throws(ModelServerError) -> [HostTensor] {
        guard let requested else { return outputs }
        var chosen: [HostTensor] = []
        for name in requested {
            guard let found = outputs.first(where: { $0.name == name }) else {
                throw .badRequest("unknown output '\(name)'; the model gives \(outputs.map(\.name))")
            }
            chosen.append(found)
        }
        return chosen
    }

    /// The tensors `forward` takes and returns, from the model's handler spec.
    public func metadata(model: String, version: String? = nil) throws(ModelServerError) -> ModelMetadata {
        let target = try resolve(model: model, version: version)
        let versions = try describe(model: model, version: "all").map(\.modelVersion)
        let (inputs, outputs) = Self.signature(of: target.archive.handlerSpec)
        return ModelMetadata(name: model, versions: versions, platform: "pytorch_libtorch", inputs: inputs, outputs: outputs)
    }

    static func signature(of spec: HandlerSpec) -> (inputs: [ModelMetadata.TensorSpec], outputs: [ModelMetadata.TensorSpec]) {
        typealias Spec = ModelMetadata.TensorSpec
        switch spec {
        case .imageSegmenter(let spec):
            let height = spec.inputSize?.height ?? -1
            let width = spec.inputSize?.width ?? -1
            return ([Spec(name: "input__0", datatype: .fp32, shape: [-1, 3, height, width])],
                    [Spec(name: "output__0", datatype: .fp32, shape: [-1, spec.numClasses ?? -1, -1, -1])])
        case .imageClassifier(let spec):
            return ([Spec(name: "input__0", datatype: .fp32, shape: [-1, 3, spec.cropSize.height, spec.cropSize.width])],
                    [Spec(name: "output__0", datatype: .fp32, shape: [-1, -1])])
        case .textClassifier(let spec):
            let inputs = spec.modelInputs.map { input in
                switch input {
                case .inputIds, .attentionMask, .tokenTypeIds: return Spec(name: input.rawValue, datatype: .int64, shape: [-1, spec.maxLength])
                case .tokens, .offsets: return Spec(name: input.rawValue, datatype: .int64, shape: [-1])
                }
            }
            return (inputs, [Spec(name: "output__0", datatype: .fp32, shape: [-1, -1])])
        }
    }

    /// Whether a model version can answer now: it has a READY worker.
    public func isReady(model: String, version: String? = nil) throws(ModelServerError) -> Bool {
        try resolve(model: model, version: version).readyWorkerCount > 0
    }

    // MARK: SageMaker

    /// The model SageMaker's `/invocations` runs: the `X-Amzn-SageMaker-Target-Model` header's
    /// last path part without `.tar.gz`/`.mar`, else the `model_name` query parameter, else the
    /// configured `invocations_model`, else the only registered model.
    /// - Throws: `.badRequest` when none of these names a model.
    public func invocationsModel(targetModel: String?, modelName: String?) throws(ModelServerError) -> String {
        if let targetModel, !targetModel.isEmpty {
            var name = targetModel.split(separator: "/").last.map(String.init) ?? targetModel
            for suffix in [".tar.gz", ".mar"] where name.lowercased().hasSuffix(suffix) {
                name = String(name.dropLast(suffix.count))
            }
            return name
        }
        if let modelName, !modelName.isEmpty { return modelName }
        if let configured = configuration.invocationsModel { return configured }
        let loaded = listModels()
        guard loaded.count == 1 else {
            throw .badRequest(
                loaded.isEmpty
                    ? "no model is registered to answer /invocations"
                    : "\(loaded.count) models are registered (\(loaded.map(\.name).joined(separator: ", "))); name one with the X-Amzn-SageMaker-Target-Model header, the model_name query parameter or invocations_model in config.properties")
        }
        return loaded[0].name
    }
}
