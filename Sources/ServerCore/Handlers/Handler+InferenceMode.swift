import Torch

/// The steps a request takes, by its mode, so that every mode shares the queue, batching and
/// worker threads of the model version:
/// - `.handler`: the handler's own `preprocess` and `postprocess`, untouched;
/// - `.handlerOutputs`: the handler's `preprocess`, then its tensor outputs (a mask, or
///   probabilities and labels) instead of its response;
/// - `.forward`: no handler; the request's tensors go straight to `forward` and the model's
///   outputs come back as tensors.
///
/// The worker calls `prepare` and `answer` where it would call `preprocess` and `postprocess`.
extension Handler {
    /// The first step of one request, as its mode asks.
    func prepare(_ request: InferenceRequest, stages: StageClock) throws(ModelServerError) -> PreparedInput {
        switch request.mode {
        case .handler:
            return try preprocess(request, stages: stages)
        case .handlerOutputs:
            guard self is any TensorOutputHandler else {
                throw .badRequest("this model's handler cannot answer with tensors; send numeric inputs for its forward pass")
            }
            var prepared = try preprocess(request, stages: stages)
            prepared.context = HandlerOutputsContext(inner: prepared.context)
            return prepared
        case .forward(let inputs):
            guard inputForm == .batched else {
                throw .badRequest("this model takes a list of images at their own sizes, which numeric inputs cannot express; send an image to /predictions/{model} or /v1/models/{model}:predict")
            }
            guard !inputs.isEmpty else { throw .invalidInput("the request has no inputs; forward needs at least one tensor") }
            var tensors: [Tensor] = []
            for (index, input) in inputs.enumerated() {
                do {
                    tensors.append(try input.torchTensor())
                } catch .invalidInput(let message) {
                    throw .invalidInput("input \(index): \(message)")
                }
            }
            // Joined with other requests only when every input has the same leading (batch) dimension.
            let leading = tensors.map { $0.shape.first }
            let rows = leading[0] ?? 0
            let joins = rows > 0 && leading.allSatisfy { $0 == rows }
            return PreparedInput(tensors: tensors, rows: joins ? rows : 1, context: ForwardContext(), joinsOthers: joins)
        }
    }

    /// The last step of one request: its share of the model output as the handler's response,
    /// or as tensors when its mode asks for them.
    func answer(_ output: ModuleOutput, for input: PreparedInput, stages: StageClock) throws(ModelServerError) -> InferenceResponse {
        switch input.context {
        case is ForwardContext:
            return InferenceResponse(body: [], contentType: "", outputs: try OutputTensor.outputs(of: output))
        case let wanted as HandlerOutputsContext:
            guard let handler = self as? any TensorOutputHandler else {
                throw .modelFailure("the handler lost its tensor outputs")
            }
            var inner = input
            inner.context = wanted.inner
            return InferenceResponse(body: [], contentType: "", outputs: try handler.tensorOutputs(output, for: inner))
        default:
            return try postprocess(output, for: input, stages: stages)
        }
    }
}

/// Marks a request whose tensors skipped the handler.
private struct ForwardContext: Sendable {}

/// Marks a handler request that wants tensors back; `inner` is the handler's own context.
private struct HandlerOutputsContext: Sendable {
    var inner: (any Sendable)?
}
