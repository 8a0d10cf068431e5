import Foundation
import ModelArchive
import Torch

/// `text_classifier`: UTF-8 text in, every label's softmax probability out.
///
/// Input: the raw body, or JSON `{"text": "…"}`, or `{"inputs": ["…", …]}` (1–64 texts). The body
/// is JSON when `Content-Type` says so, or when it parses as a JSON object with one of those keys.
/// Output per text: `{"label": probability, …}`, all classes, highest first (ties: lower index
/// first), probabilities as Swift's `Float.description`; `inputs` gives an array of those, in order.
///
/// Model inputs, in the spec's `modelInputs` order:
/// - `wordpiece`: `input_ids`, `attention_mask` (and `token_type_ids`, zeros), int64 `[texts, maxLength]`.
///   Every request is padded (with `[PAD]`, id 0 in BERT vocabularies; mask 0) to the spec's
///   `maxLength`, not to its longest text, so requests always stack into one batch.
/// - `word_vocab`: `tokens` int64 `[total]` (each text's first `maxLength` words) and `offsets` int64
///   `[texts]` (where each text starts), as `EmbeddingBag(tokens, offsets)` takes them. Offsets of two
///   requests cannot be joined by concatenation, so these models run with batch size 1:
///   `exampleInputs(batchSize:)` refuses more, which fails loading with that reason.
public struct TextClassificationHandler: Handler {
    public static let maxTexts = 64

    enum Tokenizer: Sendable {
        case wordPiece(WordPieceTokenizer)
        case wordVocabulary(WordVocabularyTokenizer)
    }

    /// What postprocessing needs to remember about one request.
    struct RequestContext: Sendable {
        /// The request used `{"inputs": […]}`: answer with an array.
        var isList: Bool
    }

    let spec: TextClassifierSpec
    let tokenizer: Tokenizer
    let labels: ClassLabels

    public var classLabels: ClassLabels? { labels }

    public init(spec: TextClassifierSpec, wordPiece: WordPieceTokenizer, labels: ClassLabels = .indices) throws(ModelServerError) {
        guard spec.tokenizer == .wordpiece else {
            throw .invalidModel("the spec's tokenizer is \(spec.tokenizer.rawValue), but a WordPiece tokenizer was given")
        }
        self.spec = spec
        self.tokenizer = .wordPiece(wordPiece)
        self.labels = labels
    }

    public init(spec: TextClassifierSpec, wordVocabulary: WordVocabularyTokenizer, labels: ClassLabels = .indices) throws(ModelServerError) {
        guard spec.tokenizer == .wordVocab else {
            throw .invalidModel("the spec's tokenizer is \(spec.tokenizer.rawValue), but a word vocabulary was given")
        }
        self.spec = spec
        self.tokenizer = .wordVocabulary(wordVocabulary)
        self.labels = labels
    }

    /// Loads the vocabulary and labels the spec names from the files given.
    public init(spec: TextClassifierSpec, vocabulary: URL, labels: URL?) throws(ModelServerError) {
        let classLabels = try labels.map { (url) throws(ModelServerError) in try ClassLabels(contentsOf: url) } ?? .indices
        try self.init(spec: spec, vocabulary: vocabulary, classLabels: classLabels)
    }

    /// Loads the vocabulary from the file given.
    init(spec: TextClassifierSpec, vocabulary: URL, classLabels: ClassLabels) throws(ModelServerError) {
        switch spec.tokenizer {
        case .wordpiece:
            let wordPiece = try WordPieceTokenizer(contentsOf: vocabulary, lowercase: spec.lowercase, stripAccents: spec.stripAccents)
            try self.init(spec: spec, wordPiece: wordPiece, labels: classLabels)
        case .wordVocab:
            try self.init(spec: spec, wordVocabulary: try WordVocabularyTokenizer(contentsOf: vocabulary), labels: classLabels)
        }
    }

    /// The handler an archive's `handler:` section declares, with its vocabulary and labels files.
    public init(spec: TextClassifierSpec, archive: OpenedArchive) throws(ModelServerError) {
        if spec.tokenizer == .wordVocab, let batchSize = archive.config.settings.batchSize, batchSize > 1 {
            throw .invalidModel(Self.batchSizeMessage(batchSize))
        }
        let vocabulary = archive.url(of: spec.vocab)
        guard FileManager.default.fileExists(atPath: vocabulary.path) else {
            throw .invalidModel("the archive has no vocabulary file \(spec.vocab), which its handler section names")
        }
        try self.init(spec: spec, vocabulary: vocabulary, classLabels: ClassLabels.of(archive, named: spec.labels))
    }

    static func batchSizeMessage(_ batchSize: Int) -> String {
        "text_classifier with tokenizer word_vocab runs with batch size 1 (an EmbeddingBag's offsets of several "
            + "requests cannot be joined), but batch size \(batchSize) was asked for; set batchSize: 1"
    }

    // MARK: Handler

    public func preprocess(_ request: InferenceRequest, stages: StageClock) throws(ModelServerError) -> PreparedInput {
        let (texts, isList) = try Self.texts(of: request)
        stages.mark(.decode)
        let tensors: [Tensor]
        do {
            switch tokenizer {
            case .wordPiece(let wordPiece):
                tensors = try wordPieceInputs(texts.map { wordPiece.encode($0, maxLength: spec.maxLength) }, padding: wordPiece.paddingID)
            case .wordVocabulary(let words):
                tensors = try bagInputs(texts.map { words.encode($0, maxLength: spec.maxLength) })
            }
        } catch let error as ModelServerError {
            throw error
        } catch {
            throw .modelFailure("cannot build the input tensors: \(error)")
        }
        return PreparedInput(tensors: tensors, rows: texts.count, context: RequestContext(isList: isList))
    }

    public func postprocess(_ output: ModuleOutput, for input: PreparedInput, stages: StageClock) throws(ModelServerError) -> InferenceResponse {
        guard let context = input.context as? RequestContext else {
            throw .modelFailure("text classification request lost its context")
        }
        guard let logits = output.tensor(named: "logits") ?? output.firstTensor else {
            throw .modelFailure("text_classifier expects the model to return (N, classes) logits, got \(output.kindDescription)")
        }
        let shape = logits.shape
        guard shape.count == 2, shape[0] == input.rows, shape[1] >= 1 else {
            throw .modelFailure("text_classifier expects (\(input.rows), classes) logits, got shape \(shape)")
        }
        let probabilities: [Float]
        do {
            probabilities = try logits.converted(to: .float32).softmax(dim: 1).toArray(of: Float.self)
        } catch {
            throw .modelFailure("softmax of the model output failed: \(error)")
        }
        guard probabilities.allSatisfy(\.isFinite) else {
            throw .modelFailure("the model returned logits that are not finite (NaN or infinity)")
        }
        stages.mark(.postprocess)
        let classes = shape[1]
        let objects = (0..<input.rows).map { row in
            labelObject(Array(probabilities[(row * classes)..<((row + 1) * classes)]))
        }
        if context.isList {
            return .json("[" + objects.joined(separator: ",") + "]")
        }
        return .json(objects[0])
    }

    public func exampleInputs(batchSize: Int) throws -> [Tensor] {
        switch tokenizer {
        case .wordPiece(let wordPiece):
            let texts = (0..<batchSize).map { "An example text, number \($0 + 1), to check and warm up the model." }
            return try wordPieceInputs(texts.map { wordPiece.encode($0, maxLength: spec.maxLength) }, padding: wordPiece.paddingID)
        case .wordVocabulary(let words):
            guard batchSize <= 1 else { throw ModelServerError.invalidModel(Self.batchSizeMessage(batchSize)) }
            return try bagInputs([words.encode("an example text to check and warm up the model", maxLength: spec.maxLength)])
        }
    }

    // MARK: Tensors

    /// `[rows, maxLength]` ids, mask and token types, padded to `maxLength`, in `modelInputs` order.
    func wordPieceInputs(_ sequences: [[Int64]], padding: Int64) throws -> [Tensor] {
        let length = spec.maxLength
        var ids = [Int64](repeating: padding, count: sequences.count * length)
        var mask = [Int64](repeating: 0, count: sequences.count * length)
        for (row, sequence) in sequences.enumerated() {
            for (column, id) in sequence.prefix(length).enumerated() {
                ids[row * length + column] = id
                mask[row * length + column] = 1
            }
        }
        let shape = [sequences.count, length]
        return try spec.modelInputs.map { input in
            switch input {
            case .inputIds: return try Tensor.copying(ids, shape: shape)
            case .attentionMask: return try Tensor.copying(mask, shape: shape)
            case .tokenTypeIds: return try Tensor.copying([Int64](repeating: 0, count: ids.count), shape: shape)
            case .tokens, .offsets:
                throw ModelServerError.invalidModel("model input \(input.rawValue) is for word_vocab, not wordpiece")
            }
        }
    }

    /// Flat `tokens` and per-text `offsets`, in `modelInputs` order.
    func bagInputs(_ sequences: [[Int64]]) throws -> [Tensor] {
        var tokens: [Int64] = []
        var offsets: [Int64] = []
        for sequence in sequences {
            offsets.append(Int64(tokens.count))
            tokens += sequence
        }
        if !spec.modelInputs.contains(.offsets), sequences.count > 1 {
            throw ModelServerError.badRequest("this model takes one text per request (its inputs have no offsets); got \(sequences.count)")
        }
        return try spec.modelInputs.map { input in
            switch input {
            case .tokens: return try Tensor.copying(tokens, shape: [tokens.count])
            case .offsets: return try Tensor.copying(offsets, shape: [offsets.count])
            case .inputIds, .attentionMask, .tokenTypeIds:
                throw ModelServerError.invalidModel("model input \(input.rawValue) is for wordpiece, not word_vocab")
            }
        }
    }

    // MARK: Output

    /// `{"label": probability, …}`: all classes, highest first, ties lower index first.
    func labelObject(_ probabilities: [Float]) -> String {
        ClassProbabilities(labels: labels).jsonObject(probabilities)
    }

    // MARK: Input

    /// The texts of a request, and whether it used the `inputs` list form.
    static func texts(of request: InferenceRequest) throws(ModelServerError) -> (texts: [String], isList: Bool) {
        guard !request.body.isEmpty else {
            throw .invalidInput("empty body: send UTF-8 text, {\"text\": \"…\"} or {\"inputs\": [\"…\", …]}")
        }
        guard let body = String(validating: request.body, as: UTF8.self) else {
            throw .invalidInput("the body is not valid UTF-8 text")
        }
        let object: [String: Any]
        if isJSON(request.contentType) {
            guard let parsed = jsonObject(request.body) else {
                throw .badRequest("the body is not a JSON object; send {\"text\": \"…\"} or {\"inputs\": [\"…\", …]}")
            }
            object = parsed
        } else if body.utf8.first(where: { !isJSONSpace($0) }) == UInt8(ascii: "{"),
                  let parsed = jsonObject(request.body), parsed["text"] != nil || parsed["inputs"] != nil {
            object = parsed
        } else {
            try checkNotEmpty(body, at: nil)
            return ([body], false)
        }
        switch (object["text"], object["inputs"]) {
        case (let text?, nil):
            guard let text = text as? String else { throw .badRequest("\"text\" must be a string") }
            try checkNotEmpty(text, at: nil)
            return ([text], false)
        case (nil, let inputs?):
            guard let list = inputs as? [Any], let texts = list as? [String], texts.count == list.count else {
                throw .badRequest("\"inputs\" must be an array of strings")
            }
            guard (1...maxTexts).contains(texts.count) else {
                throw .badRequest("\"inputs\" must hold 1 to \(maxTexts) texts, got \(texts.count)")
            }
            for (index, text) in texts.enumerated() { try checkNotEmpty(text, at: index) }
            return (texts, true)
        case (nil, nil):
            throw .badRequest("the JSON body has neither \"text\" nor \"inputs\"")
        case (_?, _?):
            throw .badRequest("the JSON body has both \"text\" and \"inputs\"; send one")
        }
    }

    private static func checkNotEmpty(_ text: String, at index: Int?) throws(ModelServerError) {
        if text.unicodeScalars.allSatisfy(\.properties.isWhitespace) {
            throw .invalidInput(index.map { "text \($0) of \"inputs\" is empty" } ?? "the text is empty")
        }
    }

    /// `application/json` or any `+json` media type, parameters ignored.
    static func isJSON(_ contentType: String?) -> Bool {
        guard let contentType else { return false }
        let mediaType = contentType.split(separator: ";", maxSplits: 1).first.map {
            $0.trimmingCharacters(in: .whitespaces).lowercased()
        } ?? ""
        return mediaType == "application/json" || (mediaType.hasPrefix("application/") && mediaType.hasSuffix("+json"))
    }

    private static func isJSONSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }

    private static func jsonObject(_ bytes: [UInt8]) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any]
    }
}
