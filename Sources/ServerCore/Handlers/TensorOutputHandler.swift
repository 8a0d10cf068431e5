import Torch

/// A handler that can give its result as tensors rather than as a response body.
protocol TensorOutputHandler: Handler {
    /// One request's rows of the model output as named tensors, first dimension = rows.
    func tensorOutputs(_ output: ModuleOutput, for input: PreparedInput) throws(ModelServerError) -> [OutputTensor]
}

extension SegmentationHandler: TensorOutputHandler {
    /// `mask`: uint8 `[rows, H, W]`, the argmax over classes at the model's output size.
    func tensorOutputs(_ output: ModuleOutput, for input: PreparedInput) throws(ModelServerError) -> [OutputTensor] {
        guard let logits = output.tensor(named: "out") ?? output.firstTensor, logits.shape.count == 4 else {
            throw .modelFailure("image_segmenter expects (N, C, H, W) logits, got \(output.kindDescription)")
        }
        guard logits.shape[1] <= 256 else {
            throw .modelFailure("the model returns \(logits.shape[1]) classes; a uint8 mask holds at most 256")
        }
        let mask: Tensor
        do {
            mask = try logits.classMap()
        } catch {
            throw .modelFailure("argmax of the model output failed: \(error)")
        }
        return [OutputTensor(key: .name("mask"), data: try TensorData(mask))]
    }
}

extension ImageClassificationHandler: TensorOutputHandler {
    /// `probabilities` float32 `[rows, C]` and `label` strings `[rows]`.
    func tensorOutputs(_ output: ModuleOutput, for input: PreparedInput) throws(ModelServerError) -> [OutputTensor] {
        try classificationTensors(output.firstTensor, output: output, labels: probabilities.labels)
    }
}

extension TextClassificationHandler: TensorOutputHandler {
    /// `probabilities` float32 `[rows, C]` and `label` strings `[rows]`.
    func tensorOutputs(_ output: ModuleOutput, for input: PreparedInput) throws(ModelServerError) -> [OutputTensor] {
        try classificationTensors(output.tensor(named: "logits") ?? output.firstTensor, output: output, labels: labels)
    }
}

/// Softmax probabilities of `(N, C)` logits and the most probable class's name per row (ties: lower index).
private func classificationTensors(_ logits: Tensor?, output: ModuleOutput, labels: ClassLabels) throws(ModelServerError) -> [OutputTensor] {
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
        OutputTensor(key: .name("probabilities"), data: try TensorData(shape: [rows, classes], elements: .numeric(.float32, bytes))),
        OutputTensor(key: .name("label"), data: try TensorData(shape: [rows], elements: .strings(names))),
    ]
}
