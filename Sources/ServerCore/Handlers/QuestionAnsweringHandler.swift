import Foundation
import ModelArchive
import Torch

/// `question_answering`: a question and a context in, the span of the context that answers out, for
/// BERT-style extractive QA models (`forward(input_ids, attention_mask, token_type_ids)` returning
/// start and end logits `[N, L]`, as a tuple `(start, end)` or a dict with `start_logits` and
/// `end_logits`).
///
/// Input: `{"question": "…", "context": "…"}` (or `"text"` for the context), or a list of 1–64 of
/// those (``QuestionAnsweringInput``). Each pair is encoded in windows (``QuestionAnsweringEncoding``);
/// every window is a row of the batch, padded to `maxLength` (`[PAD]`, mask 0), so requests stack.
///
/// Output per pair (``QuestionAnsweringDecoder``): with `decoding: pipeline`, the `transformers`
/// pipeline's answer `{"answer": "…", "score": 0.93, "start": 11, "end": 15}` (offsets in the context's
/// Unicode scalars, score as float32's shortest decimal); with `decoding: argmax`, `{"answer": "…"}`.
/// A list answers a list, in order.
public struct QuestionAnsweringHandler: Handler {
    /// The most windows one request may fill (each is a row of `maxLength` tokens in the batch).
    public static let maxWindows = 128

    /// What postprocessing needs to remember about one request.
    struct RequestContext: Sendable {
        /// The request sent a list: answer with a list.
        var isList: Bool
        var encodings: [QuestionAnsweringEncoding]
    }

    let spec: QuestionAnsweringSpec
    let tokenizer: WordPieceTokenizer

    public init(spec: QuestionAnsweringSpec, tokenizer: WordPieceTokenizer) {
        self.spec = spec
        self.tokenizer = tokenizer
    }

    /// Loads the vocabulary from the file given, with the spec's lower-casing and accent stripping.
    public init(spec: QuestionAnsweringSpec, vocabulary: URL) throws(ModelServerError) {
        self.init(spec: spec, tokenizer: try WordPieceTokenizer(contentsOf: vocabulary, lowercase: spec.lowercase,
                                                                stripAccents: spec.stripAccents))
    }

    /// The handler an archive's `handler:` section declares, with its vocabulary file.
    public init(spec: QuestionAnsweringSpec, archive: OpenedArchive) throws(ModelServerError) {
        let vocabulary = archive.url(of: spec.vocab)
        guard FileManager.default.fileExists(atPath: vocabulary.path) else {
            throw .invalidModel("the archive has no vocabulary file \(spec.vocab), which its handler section names")
        }
        try self.init(spec: spec, vocabulary: vocabulary)
    }

    // MARK: Handler

    public func preprocess(_ request: InferenceRequest, stages: StageClock) throws(ModelServerError) -> PreparedInput {
        let (pairs, isList) = try QuestionAnsweringInput.pairs(of: request)
        stages.mark(.decode)
        var encodings: [QuestionAnsweringEncoding] = []
        var windows = 0
        for (index, pair) in pairs.enumerated() {
            let encoding: QuestionAnsweringEncoding
            do {
                encoding = try encode(pair)
            } catch .invalidInput(let message) where isList {
                throw .invalidInput("item \(index) of the list: \(message)")
            }
            windows += encoding.windows.count
            guard windows <= Self.maxWindows else {
                throw .invalidInput("the contexts need more than \(Self.maxWindows) windows of \(spec.maxLength) tokens "
                    + "(docStride \(spec.docStride)); send shorter contexts or fewer questions per request")
            }
            encodings.append(encoding)
        }
        let rows = encodings.flatMap { encoding in
            encoding.windows.indices.map { Row(ids: encoding.inputIDs(of: $0), contextStart: encoding.contextStart) }
        }
        let tensors: [Tensor]
        do {
            tensors = try inputs(rows)
        } catch {
            throw .modelFailure("cannot build the input tensors: \(error)")
        }
        return PreparedInput(tensors: tensors, rows: rows.count, context: RequestContext(isList: isList, encodings: encodings))
    }

    public func postprocess(_ output: ModuleOutput, for input: PreparedInput, stages: StageClock) throws(ModelServerError) -> InferenceResponse {
        guard let context = input.context as? RequestContext else {
            throw .modelFailure("question answering request lost its context")
        }
        let (start, end) = try logits(output, rows: input.rows)
        var row = 0
        var answers: [String] = []
        for encoding in context.encodings {
            let windows = encoding.windows.indices
            let starts = windows.map { start[((row + $0) * spec.maxLength)..<((row + $0 + 1) * spec.maxLength)] }
            let ends = windows.map { end[((row + $0) * spec.maxLength)..<((row + $0 + 1) * spec.maxLength)] }
            for window in windows {
                let length = encoding.length(of: window)
                guard starts[window].prefix(length).allSatisfy(\.isFinite), ends[window].prefix(length).allSatisfy(\.isFinite) else {
                    throw .modelFailure("the model returned logits that are not finite (NaN or infinity)")
                }
            }
            row += windows.count
            switch spec.decoding {
            case .pipeline:
                let answer = QuestionAnsweringDecoder.pipelineAnswer(encoding, start: starts, end: ends,
                                                                     maxAnswerLength: spec.maxAnswerLength)
                answers.append(answer.json)
            case .argmax:
                let text = QuestionAnsweringDecoder.argmaxAnswer(encoding, start: starts[0], end: ends[0], tokenizer: tokenizer)
                answers.append("{\"answer\":\(ClassProbabilities.jsonString(text))}")
            }
        }
        stages.mark(.postprocess)
        guard let first = answers.first else { throw .modelFailure("question answering request had no questions") }
        return .json(context.isList ? "[" + answers.joined(separator: ",") + "]" : first)
    }

    public func exampleInputs(batchSize: Int) throws -> [Tensor] {
        let encoding = try encode(QuestionAnsweringPair(
            question: "What does this example do?", context: "This example checks the model and warms it up before the first request."))
        return try inputs(Array(repeating: Row(ids: encoding.inputIDs(of: 0), contextStart: encoding.contextStart), count: batchSize))
    }

    // MARK: Steps

    func encode(_ pair: QuestionAnsweringPair) throws(ModelServerError) -> QuestionAnsweringEncoding {
        try QuestionAnsweringEncoding(question: pair.question, context: pair.context, tokenizer: tokenizer,
                                      maxLength: spec.maxLength, docStride: spec.decoding == .pipeline ? spec.docStride : nil)
    }

    /// One window's row: its ids, and where its second segment (the context) starts.
    struct Row {
        var ids: [Int64]
        var contextStart: Int
    }

    /// `[rows, maxLength]` ids, mask and token types (0 for `[CLS] question [SEP]`, 1 for the
    /// context and its `[SEP]`), padded to `maxLength`, in `modelInputs` order.
    func inputs(_ rows: [Row]) throws -> [Tensor] {
        let length = spec.maxLength
        var ids = [Int64](repeating: tokenizer.paddingID, count: rows.count * length)
        var mask = [Int64](repeating: 0, count: rows.count * length)
        var types = [Int64](repeating: 0, count: rows.count * length)
        for (row, content) in rows.enumerated() {
            for (column, id) in content.ids.prefix(length).enumerated() {
                ids[row * length + column] = id
                mask[row * length + column] = 1
                types[row * length + column] = column >= content.contextStart ? 1 : 0
            }
        }
        let shape = [rows.count, length]
        return try spec.modelInputs.map { input in
            switch input {
            case .inputIds: return try Tensor.copying(ids, shape: shape)
            case .attentionMask: return try Tensor.copying(mask, shape: shape)
            case .tokenTypeIds: return try Tensor.copying(types, shape: shape)
            }
        }
    }

    /// The start and end logits of every row, `[rows × maxLength]` each, row-major.
    func logits(_ output: ModuleOutput, rows: Int) throws(ModelServerError) -> (start: [Float], end: [Float]) {
        let pair: (Tensor, Tensor)?
        switch output {
        case .tuple(let items), .list(let items):
            if items.count >= 2, case .tensor(let start) = items[0], case .tensor(let end) = items[1] {
                pair = (start, end)
            } else {
                pair = nil
            }
        case .dict:
            pair = output.tensor(named: "start_logits").flatMap { start in output.tensor(named: "end_logits").map { (start, $0) } }
        case .tensor, .none, .other:
            pair = nil
        }
        guard let (start, end) = pair else {
            throw .modelFailure("question_answering expects the model to return (start_logits, end_logits) or a dict with "
                + "start_logits and end_logits, got \(output.kindDescription)")
        }
        for (name, tensor) in [("start", start), ("end", end)] where tensor.shape != [rows, spec.maxLength] {
            throw .modelFailure("question_answering expects \(name) logits of shape [\(rows), \(spec.maxLength)], got \(tensor.shape)")
        }
        do {
            return (try start.converted(to: .float32).toArray(of: Float.self), try end.converted(to: .float32).toArray(of: Float.self))
        } catch {
            throw .modelFailure("cannot read the model's logits: \(error)")
        }
    }
}
