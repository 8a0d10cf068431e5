import ImageCodec
import ModelArchive
import Torch

/// What one model version's forward pass takes and gives, as its handler declares it, and what
/// raw input its handler takes.
public struct ModelSignature: Sendable, Equatable {
    /// One tensor: its key, element type and shape, −1 for a dimension of any size.
    public struct TensorSpec: Sendable, Equatable {
        /// The position among the inputs or outputs, or the name `forward` gives it.
        public var key: TensorKey
        /// The element type.
        public var dtype: TensorData.ElementType
        /// The size of each dimension; −1 for any.
        public var shape: [Int]
    }

    /// The raw input a handler takes.
    public enum HandlerInput: Sendable, Equatable {
        /// An encoded image (PNG or JPEG).
        case image
        /// UTF-8 text (for `question_answering`, a JSON object of question and context).
        case text

        /// What a handler of `kind` takes. Decides, among other things, which models fetch an
        /// image a request names by URL (`{"url": …}`): those whose handler takes images.
        public init(_ kind: HandlerKind) {
            switch kind {
            case .imageSegmenter, .imageClassifier, .objectDetector: self = .image
            case .textClassifier, .questionAnswering: self = .text
            }
        }

        /// Whether `bytes` start as an image a handler decodes does (PNG or JPEG).
        public static func isEncodedImage(_ bytes: [UInt8]) -> Bool {
            ImageFormat.sniff(bytes) != nil
        }
    }

    /// The version described (the default one when none was asked for).
    public var version: String
    /// What the version's handler takes.
    public var handlerInput: HandlerInput
    /// What `forward` takes, in order.
    public var inputs: [TensorSpec]
    /// What `forward` returns; a model returning a dict keys its outputs by name instead.
    public var outputs: [TensorSpec]
}

/// The output tensors of one request, and the model version that ran it.
public struct TensorResult: Sendable, Equatable {
    /// The version that answered.
    public var version: String
    /// The outputs, in the model's (or handler's) order.
    public var outputs: [OutputTensor]
}

extension ModelServer {
    /// Runs a model's forward pass on numeric tensors, in order, with no handler, through the
    /// version's queue and worker threads (so concurrent requests batch).
    /// - Parameters:
    ///   - inputs: the arguments of `forward`, in order.
    ///   - timeout: the caller's deadline, capped by the model's response timeout.
    ///   - connection: the client's connection; requests still queued when it closes are dropped.
    /// - Returns: the outputs keyed as the model returns them: by position for a tensor, tuple or
    ///   list, by key for a dict.
    /// - Throws: `ModelServerError`; `.invalidInput` for tensors the model rejects.
    public func forward(model: String, version: String? = nil, inputs: [TensorData], timeout: Duration? = nil,
                        connection: ClientConnection? = nil) async throws -> TensorResult {
        var request = InferenceRequest(body: [], timeout: timeout)
        request.mode = .forward(inputs)
        request.connection = connection
        let response = try await predict(model: model, version: version, request: request)
        return TensorResult(version: response.version, outputs: response.outputs)
    }

    /// Runs a model's handler pre-processing on one raw input (an encoded image, a text) and
    /// gives the handler's tensors (a `mask`, or `probabilities` and `label`) for it, with a
    /// first dimension of the input's rows, instead of the handler's response body.
    /// - Parameters:
    ///   - input: the raw input, as a `/predictions` body.
    ///   - contentType: the input's content type, if any.
    ///   - timeout: the caller's deadline, capped by the model's response timeout.
    ///   - connection: the client's connection; requests still queued when it closes are dropped.
    /// - Throws: `ModelServerError`; `.badRequest` when the model's handler gives no tensors.
    public func handlerOutputs(model: String, version: String? = nil, input: [UInt8], contentType: String? = nil,
                               timeout: Duration? = nil, connection: ClientConnection? = nil) async throws -> TensorResult {
        var request = InferenceRequest(body: input, contentType: contentType, timeout: timeout)
        request.mode = .handlerOutputs
        request.connection = connection
        let response = try await predict(model: model, version: version, request: request)
        return TensorResult(version: response.version, outputs: response.outputs)
    }

    /// The tensors a model version's `forward` takes and returns, from its handler spec.
    public func signature(model: String, version: String? = nil) throws(ModelServerError) -> ModelSignature {
        let target = try resolve(model: model, version: version)
        let (inputs, outputs) = Self.signature(of: target.archive.handlerSpec)
        return ModelSignature(version: target.version, handlerInput: ModelSignature.HandlerInput(target.archive.handler),
                              inputs: inputs, outputs: outputs)
    }

    static func signature(of spec: HandlerSpec) -> (inputs: [ModelSignature.TensorSpec], outputs: [ModelSignature.TensorSpec]) {
        typealias Spec = ModelSignature.TensorSpec
        switch spec {
        case .imageSegmenter(let spec):
            let height = spec.inputSize?.height ?? -1
            let width = spec.inputSize?.width ?? -1
            return ([Spec(key: .index(0), dtype: .float32, shape: [-1, 3, height, width])],
                    [Spec(key: .index(0), dtype: .float32, shape: [-1, spec.numClasses ?? -1, -1, -1])])
        case .imageClassifier(let spec):
            return ([Spec(key: .index(0), dtype: .float32, shape: [-1, 3, spec.cropSize.height, spec.cropSize.width])],
                    [Spec(key: .index(0), dtype: .float32, shape: [-1, -1])])
        case .textClassifier(let spec):
            let inputs = spec.modelInputs.map { input in
                switch input {
                case .inputIds, .attentionMask, .tokenTypeIds: return Spec(key: .name(input.rawValue), dtype: .int64, shape: [-1, spec.maxLength])
                case .tokens, .offsets: return Spec(key: .name(input.rawValue), dtype: .int64, shape: [-1])
                }
            }
            return (inputs, [Spec(key: .index(0), dtype: .float32, shape: [-1, -1])])
        case .objectDetector:
            // One image [3, H, W] per request; the model takes them as a list and returns a dict per image.
            return ([Spec(key: .index(0), dtype: .float32, shape: [3, -1, -1])],
                    [Spec(key: .name("boxes"), dtype: .float32, shape: [-1, 4]), Spec(key: .name("labels"), dtype: .int64, shape: [-1]),
                     Spec(key: .name("scores"), dtype: .float32, shape: [-1])])
        case .questionAnswering(let spec):
            // One row per window of a question's context.
            let inputs = spec.modelInputs.map { Spec(key: .name($0.rawValue), dtype: .int64, shape: [-1, spec.maxLength]) }
            return (inputs, [Spec(key: .index(0), dtype: .float32, shape: [-1, spec.maxLength]),
                             Spec(key: .index(1), dtype: .float32, shape: [-1, spec.maxLength])])
        }
    }

    /// Whether a model version can answer now: it has a READY worker.
    public func isReady(model: String, version: String? = nil) throws(ModelServerError) -> Bool {
        try resolve(model: model, version: version).readyWorkerCount > 0
    }
}
