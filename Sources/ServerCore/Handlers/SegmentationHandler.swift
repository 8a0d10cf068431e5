import Foundation
import ImageCodec
import ModelArchive
import Torch

/// `image_segmenter`: a PNG or JPEG in, the per-pixel argmax class mask out.
///
/// Pre-processing is the reference deployment's: decode → RGB → `Resize((H, W))` (PIL bilinear,
/// antialiased) → `ToTensor()` → `Normalize(mean, std)`, written straight into the input tensor.
/// The model output may be `(N, C, H, W)` logits, a dict with key `out`, or a tuple whose first
/// element is the logits.
public struct SegmentationHandler: Handler {
    /// What the client asked to get back.
    enum OutputFormat: Sendable, Equatable {
        case base64JSON, png, overlay
    }

    /// What postprocessing needs to remember about one request.
    struct RequestContext: Sendable {
        var format: OutputFormat
        var originalSize: Bool
        /// The decoded input, kept only for overlays and original-size masks.
        var image: Image?
    }

    let spec: ImageSegmenterSpec
    let decoder: ImageDecoder
    let mean: [Float]
    let std: [Float]
    /// The classes' names, for describe; the mask itself holds class indices.
    public let classLabels: ClassLabels?

    public init(spec: ImageSegmenterSpec, labels: ClassLabels? = nil, pixelLimit: Int = ImageDecoder.defaultPixelLimit) throws(ModelServerError) {
        guard spec.mean.count == 3, spec.std.count == 3 else {
            throw .invalidModel("image_segmenter needs 3 mean and 3 std values, got \(spec.mean.count) and \(spec.std.count)")
        }
        guard spec.resize == .bilinear else {
            throw .invalidModel("image_segmenter supports resize: bilinear only (PIL's antialiased bilinear, as torchvision's Resize)")
        }
        self.spec = spec
        classLabels = labels
        decoder = ImageDecoder(pixelLimit: pixelLimit)
        mean = spec.mean.map { Float($0) }
        std = spec.std.map { Float($0) }
    }

    public func preprocess(_ request: InferenceRequest, stages: StageClock) throws(ModelServerError) -> PreparedInput {
        let (format, originalSize) = try Self.outputFormat(for: request, default: spec.output)
        let image = try decoder.decodeRequestImage(request, handler: "image_segmenter")
        stages.mark(.decode)
        let resized: Image
        do {
            if let size = spec.inputSize, size.width != image.width || size.height != image.height {
                resized = try image.resized(width: size.width, height: size.height)
            } else {
                resized = image
            }
        } catch {
            throw .invalidInput("cannot resize the image: \(error)")
        }
        let tensor: Tensor
        do {
            tensor = try Tensor.empty(shape: [1, 3, resized.height, resized.width], dtype: .float32)
            try tensor.withUnsafeMutableBufferPointer(as: Float.self) { buffer in
                try resized.writeNormalizedCHW(into: buffer, mean: mean, std: std)
            }
        } catch {
            throw .modelFailure("cannot build the input tensor: \(error)")
        }
        let keepImage = format == .overlay || originalSize
        return PreparedInput(
            tensors: [tensor], rows: 1,
            context: RequestContext(format: format, originalSize: originalSize, image: keepImage ? image : nil))
    }

    public func postprocess(_ output: ModuleOutput, for input: PreparedInput, stages: StageClock) throws(ModelServerError) -> InferenceResponse {
        guard let context = input.context as? RequestContext else {
            throw .modelFailure("segmentation request lost its context")
        }
        guard let logits = output.tensor(named: "out") ?? output.firstTensor else {
            throw .modelFailure("image_segmenter expects the model to return (N, C, H, W) logits, got \(output.kindDescription)")
        }
        let shape = logits.shape
        guard shape.count == 4, shape[0] == 1 else {
            throw .modelFailure("image_segmenter expects (N, C, H, W) logits, got shape \(shape)")
        }
        guard shape[1] <= 256 else {
            throw .modelFailure("the model returns \(shape[1]) classes; a uint8 mask holds at most 256")
        }
        var mask: SegmentationMask
        do {
            let classes = try logits.classMap().contiguousOnCPU()
            mask = SegmentationMask(width: shape[3], height: shape[2], classes: try classes.toArray(of: UInt8.self))
        } catch {
            throw .modelFailure("argmax of the model output failed: \(error)")
        }
        if let image = context.image, context.originalSize || context.format == .overlay {
            mask = mask.resizedNearest(width: image.width, height: image.height)
        }
        stages.mark(.postprocess)
        do {
            switch context.format {
            case .base64JSON:
                return .json("{\"base64_prediction\":\"\(Data(mask.classes).base64EncodedString())\"}")
            case .png:
                let png = try Image(width: mask.width, height: mask.height, format: .gray8, pixels: mask.classes).encodedPNG()
                return InferenceResponse(body: png, contentType: "image/png")
            case .overlay:
                guard let image = context.image else { throw ModelServerError.modelFailure("overlay lost its input image") }
                return InferenceResponse(body: try mask.overlay(on: image).encodedPNG(), contentType: "image/png")
            }
        } catch let error as ModelServerError {
            throw error
        } catch {
            throw .modelFailure("encoding the mask failed: \(error)")
        }
    }

    public func exampleInputs(batchSize: Int) throws -> [Tensor] {
        let size = spec.inputSize ?? ImageSize(height: 96, width: 128)
        let count = batchSize * 3 * size.height * size.width
        // A smooth pattern rather than zeros, so optimised and plain modules are compared on real work.
        let values = (0..<count).map { Float(sin(Double($0) * 0.001)) }
        return [try Tensor.copying(values, shape: [batchSize, 3, size.height, size.width])]
    }

    /// `output` beats `Accept`; `size=original` returns the mask at the input's size.
    static func outputFormat(for request: InferenceRequest, default preferred: ImageSegmenterSpec.Output)
        throws(ModelServerError) -> (OutputFormat, originalSize: Bool)
    {
        let originalSize: Bool
        switch request.parameters["size"]?.lowercased() {
        case nil, "model": originalSize = false
        case "original": originalSize = true
        case let other?: throw .badRequest("size must be 'original' or 'model', got '\(other)'")
        }
        if let output = request.parameters["output"] {
            switch output.lowercased() {
            case "json", "base64": return (.base64JSON, originalSize)
            case "png": return (.png, originalSize)
            case "overlay": return (.overlay, originalSize)
            default: throw .badRequest("output must be one of json, png, overlay; got '\(output)'")
            }
        }
        if let accept = request.accept?.lowercased() {
            if accept.contains("image/png") { return (.png, originalSize) }
            if accept.contains("application/json") { return (.base64JSON, originalSize) }
        }
        switch preferred {
        case .base64: return (.base64JSON, originalSize)
        case .png: return (.png, originalSize)
        case .overlay: return (.overlay, originalSize)
        }
    }
}
