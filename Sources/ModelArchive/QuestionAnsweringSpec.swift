/// The `handler:` section for `question_answering`: a question and a context in, the answer span
/// of the context out, for BERT-style extractive QA models (SQuAD fine-tunes).
///
/// The pair is encoded `[CLS] question [SEP] context [SEP]` with WordPiece; a context longer than
/// `maxLength` allows is split into windows overlapping by `docStride` tokens, as the `transformers`
/// question-answering pipeline does, and the best span of all windows answers.
public struct QuestionAnsweringSpec: Equatable, Sendable, Codable {
    /// How the answer is chosen from the start and end logits.
    public enum Decoding: String, CaseIterable, Sendable, Codable {
        /// The `transformers` pipeline's: the best-scoring span (start ≤ end, inside the context, at
        /// most `maxAnswerLength` tokens) over all windows, as the original context's substring
        /// with its score and character offsets.
        case pipeline
        /// A common hand-written decoding (the MLflow write-up's): argmax of the start logits,
        /// argmax of the end logits, the word pieces between joined back; the first window only.
        case argmax
    }

    /// One argument of the model's `forward`, in order.
    public enum ModelInput: String, CaseIterable, Sendable, Codable {
        case inputIds = "input_ids"
        case attentionMask = "attention_mask"
        case tokenTypeIds = "token_type_ids"
    }

    /// The WordPiece vocabulary file in the archive (`vocab.txt`).
    public var vocab: String
    public var lowercase: Bool
    /// Whether accents are removed (`é` → `e`); defaults to `lowercase`, as in BERT.
    public var stripAccents: Bool
    /// Tokens per window, the three special tokens and the question included (the pipeline's
    /// `max_seq_len`).
    public var maxLength: Int
    /// Context tokens two neighbouring windows share (the pipeline's `doc_stride`).
    public var docStride: Int
    /// The longest answer, in tokens (the pipeline's `max_answer_len`).
    public var maxAnswerLength: Int
    public var decoding: Decoding
    /// What `forward()` takes, in order.
    public var modelInputs: [ModelInput]

    public init(
        vocab: String = "vocab.txt", lowercase: Bool = true, stripAccents: Bool? = nil, maxLength: Int = 384,
        docStride: Int = 128, maxAnswerLength: Int = 15, decoding: Decoding = .pipeline, modelInputs: [ModelInput]? = nil
    ) {
        self.vocab = vocab
        self.lowercase = lowercase
        self.stripAccents = stripAccents ?? lowercase
        self.maxLength = maxLength
        self.docStride = docStride
        self.maxAnswerLength = maxAnswerLength
        self.decoding = decoding
        self.modelInputs = modelInputs ?? ModelInput.allCases
    }

    /// `maxLength`'s range: room for the three special tokens and one more.
    public static let maxLengthRange = 4...8192

    static let keys: Set<String> = [
        "kind", "vocab", "lowercase", "stripAccents", "maxLength", "docStride", "maxAnswerLength", "decoding", "modelInputs",
    ]

    init(_ fields: YAMLFields) {
        self.init()
        if let value = fields.fileName("vocab") { vocab = value }
        if let value = fields.bool("lowercase") { lowercase = value }
        stripAccents = fields.bool("stripAccents") ?? lowercase
        if let value = fields.int("maxLength", in: Self.maxLengthRange) { maxLength = value }
        if let value = fields.int("docStride", in: 0...(Self.maxLengthRange.upperBound - 4)) {
            // Each window must hold more context tokens than it shares with the next, even for an
            // empty question: [CLS] [SEP] [SEP] and at least docStride + 1 context tokens.
            if value <= maxLength - 4 {
                docStride = value
            } else if let node = fields.node("docStride") {
                fields.fail("docStride", node, "is \(value), too large for maxLength \(maxLength)",
                            expected: "an integer from 0 to maxLength - 4 (\(maxLength - 4))")
            }
        }
        if let value = fields.int("maxAnswerLength", in: 1...Self.maxLengthRange.upperBound) { maxAnswerLength = value }
        if let value = fields.choice("decoding", as: Decoding.self) { decoding = value }
        if let value = Self.modelInputs(fields) { modelInputs = value }
    }

    private static func modelInputs(_ fields: YAMLFields) -> [ModelInput]? {
        let expected = "a list of " + ModelInput.allCases.map(\.rawValue).joined(separator: ", ")
            + " in forward()'s order, each once, with input_ids"
        guard let names = fields.strings("modelInputs", count: 1...ModelInput.allCases.count, expected: expected),
              let node = fields.node("modelInputs") else { return nil }
        var inputs: [ModelInput] = []
        for name in names {
            guard let input = ModelInput(rawValue: name), !inputs.contains(input) else {
                fields.fail("modelInputs", node, "has \"\(Excerpt.of(name))\"", expected: expected)
                return nil
            }
            inputs.append(input)
        }
        guard inputs.contains(.inputIds) else {
            fields.fail("modelInputs", node, "lacks input_ids", expected: expected)
            return nil
        }
        return inputs
    }
}
