/// The `handler:` section for `text_classifier`: text in, class probabilities out.
public struct TextClassifierSpec: Equatable, Sendable, Codable {
    /// How text becomes token ids.
    public enum Tokenizer: String, CaseIterable, Sendable, Codable {
        /// BERT's WordPiece over a `vocab.txt` (one token per line).
        case wordpiece
        /// Whitespace words looked up in a JSON object `{"token": id}`, for EmbeddingBag models.
        case wordVocab = "word_vocab"
    }

    /// One argument of the model's `forward`, in order.
    public enum ModelInput: String, CaseIterable, Sendable, Codable {
        case inputIds = "input_ids"
        case attentionMask = "attention_mask"
        case tokenTypeIds = "token_type_ids"
        /// word_vocab: the flat token ids of the batch.
        case tokens
        /// word_vocab: where each text starts in `tokens`.
        case offsets
    }

    public var tokenizer: Tokenizer
    /// The vocabulary file in the archive.
    public var vocab: String
    /// Token sequences are truncated to this length (special tokens included).
    public var maxLength: Int
    public var lowercase: Bool
    /// Whether accents are removed (`é` → `e`); defaults to `lowercase`, as in BERT.
    public var stripAccents: Bool
    /// What `forward()` takes, in order.
    public var modelInputs: [ModelInput]
    /// A JSON file in the archive mapping class index to name.
    public var labels: String?

    public init(
        tokenizer: Tokenizer = .wordpiece, vocab: String? = nil, maxLength: Int = 128,
        lowercase: Bool = true, stripAccents: Bool? = nil, modelInputs: [ModelInput]? = nil, labels: String? = nil
    ) {
        self.tokenizer = tokenizer
        self.vocab = vocab ?? Self.defaultVocab(for: tokenizer)
        self.maxLength = maxLength
        self.lowercase = lowercase
        self.stripAccents = stripAccents ?? lowercase
        self.modelInputs = modelInputs ?? Self.defaultInputs(for: tokenizer)
        self.labels = labels
    }

    public static func defaultVocab(for tokenizer: Tokenizer) -> String {
        tokenizer == .wordpiece ? "vocab.txt" : "vocab.json"
    }

    public static func defaultInputs(for tokenizer: Tokenizer) -> [ModelInput] {
        tokenizer == .wordpiece ? [.inputIds, .attentionMask] : [.tokens, .offsets]
    }

    static let keys: Set<String> = [
        "kind", "tokenizer", "vocab", "maxLength", "lowercase", "stripAccents", "modelInputs", "labels",
    ]

    init(_ fields: YAMLFields) {
        let tokenizer = fields.choice("tokenizer", as: Tokenizer.self) ?? .wordpiece
        let lowercase = fields.bool("lowercase") ?? true
        self.init(
            tokenizer: tokenizer,
            vocab: fields.fileName("vocab"),
            maxLength: fields.int("maxLength", in: 2...8192) ?? 128,
            lowercase: lowercase,
            stripAccents: fields.bool("stripAccents"),
            modelInputs: Self.modelInputs(fields, tokenizer: tokenizer),
            labels: fields.fileName("labels")
        )
    }

    private static func modelInputs(_ fields: YAMLFields, tokenizer: Tokenizer) -> [ModelInput]? {
        let allowed: [ModelInput] = tokenizer == .wordpiece ? [.inputIds, .attentionMask, .tokenTypeIds] : [.tokens, .offsets]
        let required: ModelInput = tokenizer == .wordpiece ? .inputIds : .tokens
        let expected = "for \(tokenizer.rawValue), a list of "
            + allowed.map(\.rawValue).joined(separator: ", ")
            + " in forward()'s order, each once, with \(required.rawValue)"
        guard let names = fields.strings("modelInputs", count: 1...allowed.count, expected: expected),
              let node = fields.node("modelInputs") else { return nil }
        var inputs: [ModelInput] = []
        for name in names {
            guard let input = ModelInput(rawValue: name), allowed.contains(input), !inputs.contains(input) else {
                fields.fail("modelInputs", node, "has \"\(Excerpt.of(name))\"", expected: expected)
                return nil
            }
            inputs.append(input)
        }
        guard inputs.contains(required) else {
            fields.fail("modelInputs", node, "lacks \(required.rawValue)", expected: expected)
            return nil
        }
        return inputs
    }
}
