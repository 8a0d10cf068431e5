import Foundation
import ImageCodec
import ModelArchive
import Torch

/// `object_detector`: a PNG or JPEG in, boxes with class names and scores out, for torchvision's
/// detection models in TorchScript (Faster R-CNN, RetinaNet, SSD, SSDlite, FCOS, Mask R-CNN).
///
/// The image goes in at its own size as a 0…1 float `[3, H, W]` tensor: these models resize and
/// normalise inside, and take a batch as one list of images of different sizes. They return
/// `(losses, detections)`, one dict of `boxes` `[K, 4]`, `labels` `[K]` and `scores` `[K]` per
/// image (Mask R-CNN's `masks` are not part of the answer), boxes in the input image's pixels.
/// The answer is TorchServe's: per image, `[{"person": [x1, y1, x2, y2], "score": 0.98}, …]`,
/// highest score first; `?output=overlay` (or `Accept: image/png`) gives the image with each box
/// and its label drawn, as PNG.
public struct ObjectDetectionHandler: Handler {
    /// What postprocessing needs to remember about one request.
    struct RequestContext: Sendable {
        /// The decoded input when the client asked for the overlay.
        var overlayOn: Image?
    }

    let spec: ObjectDetectorSpec
    let labels: ClassLabels
    let decoder: ImageDecoder

    public init(spec: ObjectDetectorSpec, labels: ClassLabels = .indices, pixelLimit: Int = ImageDecoder.defaultPixelLimit) {
        self.spec = spec
        self.labels = labels
        decoder = ImageDecoder(pixelLimit: pixelLimit)
    }

    public var inputForm: ModelInputForm { .imageList }

    public var classLabels: ClassLabels? { labels }

    public func preprocess(_ request: InferenceRequest, stages: StageClock) throws(ModelServerError) -> PreparedInput {
        let overlay = try Self.wantsOverlay(request)
        let image = try decoder.decodeRequestImage(request, handler: "object_detector")
        stages.mark(.decode)
        let tensor: Tensor
        do {
            tensor = try Tensor.empty(shape: [3, image.height, image.width], dtype: .float32)
            try tensor.withUnsafeMutableBufferPointer(as: Float.self) { buffer in
                try image.writeNormalizedCHW(into: buffer, mean: [0, 0, 0], std: [1, 1, 1])
            }
        } catch {
            throw .modelFailure("cannot build the input tensor: \(error)")
        }
        return PreparedInput(tensors: [tensor], rows: 1, context: RequestContext(overlayOn: overlay ? image : nil))
    }

    public func postprocess(_ output: ModuleOutput, for input: PreparedInput, stages: StageClock) throws(ModelServerError) -> InferenceResponse {
        guard let context = input.context as? RequestContext else {
            throw .modelFailure("detection request lost its context")
        }
        let detections = try Self.detections(in: output, threshold: Float(spec.threshold), limit: spec.maxDetections)
        stages.mark(.postprocess)
        if let image = context.overlayOn {
            do {
                return InferenceResponse(body: try DetectionOverlay(detections: detections, labels: labels).drawn(on: image).encodedPNG(),
                                         contentType: "image/png")
            } catch {
                throw .modelFailure("drawing the overlay failed: \(error)")
            }
        }
        let members = detections.map { detection in
            let box = detection.box.map(\.description).joined(separator: ", ")
            return "{\(ClassProbabilities.jsonString(labels.name(ofClass: detection.label))): [\(box)], \"score\": \(detection.score.description)}"
        }
        return .json("[" + members.joined(separator: ", ") + "]")
    }

    public func exampleInputs(batchSize: Int) throws -> [Tensor] {
        // A smooth 0…1 pattern at the sample scenes' size, one image per request of the batch.
        let (height, width) = (96, 128)
        let values = (0..<(3 * height * width)).map { Float(0.5 + 0.5 * sin(Double($0) * 0.001)) }
        return try (0..<batchSize).map { _ in try Tensor.copying(values, shape: [3, height, width]) }
    }

    /// `output=overlay` or `Accept: image/png` asks for the overlay; `output=json` or nothing for boxes.
    static func wantsOverlay(_ request: InferenceRequest) throws(ModelServerError) -> Bool {
        if let output = request.parameters["output"] {
            switch output.lowercased() {
            case "json": return false
            case "overlay", "png": return true
            default: throw .badRequest("output must be json or overlay for object_detector; got '\(output)'")
            }
        }
        return request.accept?.lowercased().contains("image/png") ?? false
    }

    /// One image's detections scoring at least `threshold`, highest first, at most `limit`.
    /// - Throws: `.modelFailure` naming what the output holds when it is not torchvision's form.
    static func detections(in output: ModuleOutput, threshold: Float, limit: Int) throws(ModelServerError) -> [Detection] {
        guard let perImage = detectionList(in: output), let first = perImage.first else {
            throw .modelFailure(
                "object_detector expects the model to return (losses, detections) or detections: a list of dicts with boxes, labels and scores, got \(output.kindDescription)")
        }
        guard perImage.count == 1 else {
            throw .modelFailure("object_detector got detections for \(perImage.count) images for one image")
        }
        guard let boxesTensor = first.tensor(named: "boxes"), let labelsTensor = first.tensor(named: "labels"),
              let scoresTensor = first.tensor(named: "scores")
        else {
            throw .modelFailure("object_detector expects each image's detections to have boxes, labels and scores, got \(first.kindDescription)")
        }
        let boxes: [Float], classes: [Int64], scores: [Float]
        do {
            boxes = try boxesTensor.converted(to: .float32).contiguousOnCPU().toArray(of: Float.self)
            classes = try labelsTensor.converted(to: .int64).contiguousOnCPU().toArray(of: Int64.self)
            scores = try scoresTensor.converted(to: .float32).contiguousOnCPU().toArray(of: Float.self)
        } catch {
            throw .modelFailure("reading the detections failed: \(error)")
        }
        guard boxes.count == 4 * scores.count, classes.count == scores.count else {
            throw .modelFailure("object_detector got \(boxes.count / 4) boxes, \(classes.count) labels and \(scores.count) scores; expected one of each per detection")
        }
        // A box that is not finite cannot be drawn or written as JSON: such detections are left out.
        let kept = scores.indices.filter { scores[$0] >= threshold && boxes[(4 * $0)..<(4 * $0 + 4)].allSatisfy(\.isFinite) }
            .sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
            .prefix(limit)
        return kept.map { index in
            Detection(label: Int(classes[index]), box: Array(boxes[(4 * index)..<(4 * index + 4)]), score: scores[index])
        }
    }

    /// The per-image list of dicts: the output itself, or the first such list inside a tuple.
    private static func detectionList(in output: ModuleOutput) -> [ModuleOutput]? {
        switch output {
        case .list(let items) where items.allSatisfy({ if case .dict = $0 { true } else { false } }):
            return items
        case .tuple(let items):
            return items.lazy.compactMap { detectionList(in: $0) }.first
        default:
            return nil
        }
    }
}

/// One detected object: its class index, box `[x1, y1, x2, y2]` in input pixels, and score.
struct Detection: Sendable, Equatable {
    var label: Int
    var box: [Float]
    var score: Float
}
