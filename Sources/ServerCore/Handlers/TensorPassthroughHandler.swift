import Torch

/// Wraps a built-in handler so that requests asking for tensors (KServe v2) take the same queue,
/// batching and worker threads as `/predictions`:
/// - `.forward` requests skip the handler: their tensors go straight to `forward`, and the
///   outputs come back as tensors;
/// - `.handlerTensors` requests are pre-processed by the handler, and the model output comes
///   back as the handler's tensors (a mask, or probabilities and labels).
struct TensorPassthroughHandler: Handler {
    let base: any Handler

    /// Marks a request whose tensors skipped the handler.
    private struct ForwardContext: Sendable {}

    /// Marks a handler request that wants tensors back; `inner` is the handler's own context.
    private struct HandlerTensorsContext: Sendable {
        var inner: (any Sendable)?
    }

    func preprocess(_ request: InferenceRequest, stages: StageClock) throws(ModelServerError) -> PreparedInput {
        switch request.mode {
        case .handler:
            return try base.preprocess(request, stages: stages)
        case .handlerTensors:
            guard base is any TensorResultHandler else {
                throw .badRequest("this model's handler cannot answer with tensors; send numeric inputs for its forward pass")
            }
            var prepared = try base.preprocess(request, stages: stages)
            prepared.context = HandlerTensorsContext(inner: prepared.context)
            return prepared
        case .forward(let inputs):
            guard !inputs.isEmpty else { throw .invalidInput("the request has no inputs; forward needs at least one tensor") }
            var tensors: [Tensor] = []
            for input in inputs { tensors.append(try input.torchTensor()) }
            // Joined with other requests only when every input has the same leading (batch) dimension.
            let leading = tensors.map { $0.shape.first }
            let rows = leading[0] ?? 0
            let joins = rows > 0 && leading.allSatisfy { $0 == rows }
            return PreparedInput(tensors: tensors, rows: joins ? rows : 1, context: ForwardContext(), joinsOthers: joins)
        }
    }

    func postprocess(_ output: ModuleOutput, for input: PreparedInput, stages: StageClock) throws(ModelServerError) -> InferenceResponse {
        switch input.context {
        case is ForwardContext:
            return InferenceResponse(body: [], contentType: "", tensors: try HostTensor.outputs(of: output))
        case let wanted as HandlerTensorsContext:
            guard let base = base as? any TensorResultHandler else {
                throw .modelFailure("the handler lost its tensor outputs")
            }
            var inner = input
            inner.context = wanted.inner
            return InferenceResponse(body: [], contentType: "", tensors: try base.tensorOutputs(output, for: inner))
        default:
            return try base.postprocess(output, for: input, stages: stages)
        }
    }

    func exampleInputs(batchSize: Int) throws -> [Tensor] {
        try base.exampleInputs(batchSize: batchSize)
    }
}

/// A handler that can give its result as tensors rather than as a response body.
protocol TensorResultHandler: Handler {
    /// One request's rows of the model output as named tensors, first dimension = rows.
    func tensorOutputs(_ output: ModuleOutput, for input: PreparedInput) throws(ModelServerError) -> [HostTensor]
}

extension SegmentationHandler: TensorResultHandler {
    /// `mask`: UINT8 `[rows, H, W]`, the argmax over classes at the model's output size.
    func tensorOutputs(_ output: ModuleOutput, for input: PreparedInput) throws(ModelServerError) -> [HostTensor] {
        guard let logits = output.tensor(named: "out") ?? output.firstTensor, logits.shape.count == 4 else {
            throw .modelFailure("image_segmenter expects (N, C, H, W) logits, got \(output.kindDescription)")
        }
        guard logits.shape[1] <= 256 else {
            throw .modelFailure("the model returns \(logits.shape[1]) classes; a uint8 mask holds at most 256")
        }
        do {
            return [try HostTensor(name: "mask", tensor: try logits.classMap())]
        } catch let error as ModelServerError {
            throw error
        } catch {
            throw .modelFailure("argmax of the model output failed: \(error)")
        }
    }
}

extension ImageClassificationHandler: TensorResultHandler {
    /// `probabilities` FP32 `[rows, C]` and `label` BYTES `[rows]`.
    func tensorOutputs(_ output: ModuleOutput, for input: PreparedInput) throws(ModelServerError) -> [HostTensor] {
        try classificationTensors(output.firstTensor, output: output, labels: probabilities.labels)
    }
}

extension TextClassificationHandler: TensorResultHandler {
    /// `probabilities` FP32 `[rows, C]` and `label` BYTES `[rows]`.
    func tensorOutputs(_ output: ModuleOutput, for input: PreparedInput) throws(ModelServerError) -> [HostTensor] {
        try classificationTensors(output.tensor(named: "logits") ?? output.firstTensor, output: output, labels: labels)
    }
}

/// Softmax probabilities of `(N, C)` logits and the most probable class's name per row (ties: lower index).
private func classificationTensors(_ logits: Tensor?, output: ModuleOutput, labels: ClassLabels) throws(ModelServerError) -> [HostTensor] {
    guard let logits, logits.shape.count == 2, logits.shape[1] >= 1 else {
        throw .modelFailure("a classifier's model must return (N, classes) logits, got \(output.kindDescription)")
    }
    let (rows, classes) = (logits.shape[0], logits.shape[1])
    let values: [Float]
    do {
        values = try logits.converted(to: .float32).softmax(dim: 1).toArray(of: Float.self)
    } catch {
        throw .modelFailure("softmax of the model output failed: \(error)")
    }
    let names: [[UInt8]] = (0..<rows).map { row in
        let slice = values[(row * classes)..<((row + 1) * classes)]
        var best = slice.startIndex
        for index in slice.indices where slice[index] > slice[best] { best = index }
        return Array(labels.name(ofClass: best - slice.startIndex).utf8)
    }
    let bytes = values.withUnsafeBytes { Array($0) }
    return [
        try HostTensor(name: "probabilities", datatype: .fp32, shape: [rows, classes], contents: .numeric(bytes)),
        try HostTensor(name: "label", datatype: .bytes, shape: [rows], contents: .strings(names)),
    ]
}
