import Torch

/// A built-in handler: TorchServe's four steps with the model call left to the worker.
///
/// The worker sequences them: `preprocess` each request of a batch, stack the inputs of
/// requests whose shapes agree, one `forward`, split the output by rows, `postprocess` each.
/// Handlers know tensors and bytes, not HTTP. They run on worker threads, never on an event loop.
///
/// The worker times each step; a handler splits it by marking `stages`: `mark(.decode)` once the
/// body is decoded (the rest of `preprocess` is preprocessing), `mark(.postprocess)` once the
/// answer is computed (the rest of `postprocess` is encoding it).
public protocol Handler: Sendable {
    /// Decodes one request into model inputs.
    func preprocess(_ request: InferenceRequest, stages: StageClock) throws(ModelServerError) -> PreparedInput

    /// Turns one request's rows of the model output into its response.
    func postprocess(_ output: ModuleOutput, for input: PreparedInput, stages: StageClock) throws(ModelServerError) -> InferenceResponse

    /// Inputs of a synthetic batch of `batchSize` requests, to check an optimised module and warm it up.
    func exampleInputs(batchSize: Int) throws -> [Tensor]

    /// How the inputs of a batch reach `forward`; `.batched` unless the handler says otherwise.
    var inputForm: ModelInputForm { get }

    /// The class names the handler answers with, when it has a labels file (describe shows them).
    var classLabels: ClassLabels? { get }
}

/// How a batch of requests' inputs reach the model's `forward`.
public enum ModelInputForm: Sendable, Equatable {
    /// Every input has the batch as its first dimension: requests whose inputs agree beyond it
    /// are concatenated along it, and the output is split by rows.
    case batched
    /// One `List[Tensor]` argument, one tensor per request, each at its own size (torchvision's
    /// detection models): every request of a batch joins, and the output's per-image list is
    /// split by position.
    case imageList
}

extension Handler {
    public var inputForm: ModelInputForm { .batched }

    public var classLabels: ClassLabels? { nil }

    /// `preprocess` outside a worker, untimed.
    public func preprocess(_ request: InferenceRequest) throws(ModelServerError) -> PreparedInput {
        try preprocess(request, stages: StageClock())
    }

    /// `postprocess` outside a worker, untimed.
    public func postprocess(_ output: ModuleOutput, for input: PreparedInput) throws(ModelServerError) -> InferenceResponse {
        try postprocess(output, for: input, stages: StageClock())
    }
}

/// One request's inputs to `forward`, ready to be stacked with other requests'.
///
/// Every tensor has the request's rows as its first dimension (1 for an image; one per text
/// when a request carries several), so a batch is their concatenation along dimension 0.
public struct PreparedInput: @unchecked Sendable {
    /// The inputs of `forward`, in order.
    public var tensors: [Tensor]
    /// Rows this request contributes to the batch.
    public var rows: Int
    /// What postprocessing needs to remember about the request (original image, output format).
    public var context: (any Sendable)?
    /// Whether the first dimension of every tensor is this request's rows, so it may be joined
    /// with other requests; false runs it alone.
    public var joinsOthers: Bool

    public init(tensors: [Tensor], rows: Int = 1, context: (any Sendable)? = nil, joinsOthers: Bool = true) {
        self.tensors = tensors
        self.rows = rows
        self.context = context
        self.joinsOthers = joinsOthers
    }

    /// Requests can be stacked only when all their inputs agree beyond the first dimension, in
    /// element type too; nil when this request runs alone.
    var stackingKey: [[Int]]? {
        guard joinsOthers else { return nil }
        return tensors.map { Array($0.shape.dropFirst()) + [$0.dtype.code] }
    }
}

extension ModuleOutput {
    /// The rows `start..<start+count` of every tensor in the output whose first dimension is the batch.
    func rows(_ start: Int, count: Int, batch: Int) throws(TorchError) -> ModuleOutput {
        switch self {
        case .tensor(let tensor):
            guard tensor.shape.first == batch else { return self }
            return .tensor(try tensor.narrow(dim: 0, start: start, length: count))
        case .tuple(let items):
            var sliced: [ModuleOutput] = []
            for item in items { sliced.append(try item.rows(start, count: count, batch: batch)) }
            return .tuple(sliced)
        case .list(let items):
            var sliced: [ModuleOutput] = []
            for item in items { sliced.append(try item.rows(start, count: count, batch: batch)) }
            return .list(sliced)
        case .dict(let entries):
            var sliced: [(key: String, value: ModuleOutput)] = []
            for entry in entries { sliced.append((entry.key, try entry.value.rows(start, count: count, batch: batch))) }
            return .dict(sliced)
        case .none, .other:
            return self
        }
    }

    /// The elements `start..<start+count` of every list in the output that holds one element per
    /// image of the batch (an `.imageList` model's per-image detections); the rest as it is.
    func images(_ start: Int, count: Int, batch: Int) -> ModuleOutput {
        switch self {
        case .list(let items) where items.count == batch:
            return .list(Array(items[start..<(start + count)]))
        case .tuple(let items):
            return .tuple(items.map { $0.images(start, count: count, batch: batch) })
        case .tensor, .list, .dict, .none, .other:
            return self
        }
    }
}
