import Foundation
import ImageCodec
import ModelArchive
import Torch

/// `image_classifier`: a PNG or JPEG in, the top-k classes with their softmax probabilities out.
///
/// Pre-processing is torchvision's ImageNet evaluation transform: `Resize(s)` of the shorter
/// side (PIL bilinear, antialiased), `CenterCrop`, `ToTensor()`, `Normalize(mean, std)`.
public struct ImageClassificationHandler: Handler {
    let spec: ImageClassifierSpec
    let decoder: ImageDecoder
    let mean: [Float]
    let std: [Float]
    let probabilities: ClassProbabilities
    public let classLabels: ClassLabels?

    public init(spec: ImageClassifierSpec, labels: ClassLabels, pixelLimit: Int = ImageDecoder.defaultPixelLimit) throws(ModelServerError) {
        guard spec.mean.count == 3, spec.std.count == 3 else {
            throw .invalidModel("image_classifier needs 3 mean and 3 std values, got \(spec.mean.count) and \(spec.std.count)")
        }
        self.spec = spec
        decoder = ImageDecoder(pixelLimit: pixelLimit)
        mean = spec.mean.map { Float($0) }
        std = spec.std.map { Float($0) }
        probabilities = ClassProbabilities(labels: labels)
        classLabels = labels
    }

    public func preprocess(_ request: InferenceRequest, stages: StageClock) throws(ModelServerError) -> PreparedInput {
        let image = try decoder.decodeRequestImage(request, handler: "image_classifier")
        stages.mark(.decode)
        let crop = spec.cropSize
        do {
            let prepared = try image.resized(shorterSide: spec.resizeShorter).centerCropped(width: crop.width, height: crop.height)
            let tensor = try Tensor.empty(shape: [1, 3, crop.height, crop.width], dtype: .float32)
            try tensor.withUnsafeMutableBufferPointer(as: Float.self) { buffer in
                try prepared.writeNormalizedCHW(into: buffer, mean: mean, std: std)
            }
            return PreparedInput(tensors: [tensor])
        } catch {
            throw .invalidInput("cannot resize and crop the image: \(error)")
        }
    }

    public func postprocess(_ output: ModuleOutput, for input: PreparedInput, stages: StageClock) throws(ModelServerError) -> InferenceResponse {
        guard let logits = output.firstTensor else {
            throw .modelFailure("image_classifier expects the model to return (N, C) logits, got \(output.kindDescription)")
        }
        guard logits.shape.count == 2, logits.shape[0] == 1 else {
            throw .modelFailure("image_classifier expects (N, C) logits, got shape \(logits.shape)")
        }
        let values: [Float]
        do {
            values = try logits.softmax(dim: 1).toArray(of: Float.self)
        } catch {
            throw .modelFailure("softmax of the model output failed: \(error)")
        }
        stages.mark(.postprocess)
        return .json(probabilities.jsonObject(values, top: min(spec.topk, values.count)))
    }

    public func exampleInputs(batchSize: Int) throws -> [Tensor] {
        let crop = spec.cropSize
        let count = batchSize * 3 * crop.height * crop.width
        let values = (0..<count).map { Float(sin(Double($0) * 0.001)) }
        return [try Tensor.copying(values, shape: [batchSize, 3, crop.height, crop.width])]
    }
}
