import Foundation

/// BERT's WordPiece tokenizer over a `vocab.txt`, giving the ids of HuggingFace `tokenizers`'
/// `BertWordPieceTokenizer(vocab, lowercase: …)` with truncation to `maxLength`:
///
/// - the special tokens `[CLS]`, `[SEP]`, `[UNK]`, `[PAD]`, `[MASK]` written in the raw text (case
///   and all) are recognised as those tokens, as HuggingFace does;
/// - the rest goes through `BasicTokenizer`, then each word is split greedily, longest match first,
///   into vocabulary pieces, pieces after the first prefixed with `##`; a word longer than 100
///   scalars, or one with a part no piece matches, becomes `[UNK]`;
/// - the result is `[CLS] pieces… [SEP]`, pieces cut so the whole is at most `maxLength` long.
///
/// `tokens(in:)` gives each token with the stretch of the original text it covers and its word, as
/// HuggingFace's offsets mapping and word ids do; `decode(_:)` joins pieces back as its WordPiece
/// decoder does. Vocabulary entries are compared byte for byte (UTF-8), not by Swift's canonical
/// string equality.
public struct WordPieceTokenizer: Sendable {
    public static let maxCharactersPerWord = 100
    public static let continuationPrefix = "##"

    public let basic: BasicTokenizer
    /// Token (UTF-8 bytes) → id.
    private let vocabulary: [[UInt8]: Int64]
    /// Id → token: the vocabulary in id order.
    private let tokenStrings: [String]
    public let vocabularySize: Int
    public let unknownID: Int64
    public let classifierID: Int64
    public let separatorID: Int64
    /// `[PAD]`'s id, 0 when the vocabulary has none.
    public let paddingID: Int64
    /// The special tokens of the vocabulary, as scalars, with their ids.
    private let specialTokens: [(scalars: [Unicode.Scalar], id: Int64)]

    /// - Parameter tokens: the vocabulary in id order (line `i` of `vocab.txt` has id `i`).
    public init(tokens: [String], lowercase: Bool = true, stripAccents: Bool? = nil) throws(ModelServerError) {
        var vocabulary: [[UInt8]: Int64] = [:]
        vocabulary.reserveCapacity(tokens.count)
        for (index, token) in tokens.enumerated() {
            // A later duplicate wins, as in HuggingFace's vocabulary reader.
            vocabulary[Array(token.utf8)] = Int64(index)
        }
        func id(_ token: String) -> Int64? { vocabulary[Array(token.utf8)] }
        guard let unknown = id("[UNK]"), let classifier = id("[CLS]"), let separator = id("[SEP]") else {
            throw .invalidModel("the WordPiece vocabulary lacks one of [UNK], [CLS], [SEP]")
        }
        self.vocabulary = vocabulary
        self.tokenStrings = tokens
        self.vocabularySize = tokens.count
        self.basic = BasicTokenizer(lowercase: lowercase, stripAccents: stripAccents)
        self.unknownID = unknown
        self.classifierID = classifier
        self.separatorID = separator
        self.paddingID = id("[PAD]") ?? 0
        self.specialTokens = ["[UNK]", "[SEP]", "[CLS]", "[PAD]", "[MASK]"].compactMap { token in
            id(token).map { (Array(token.unicodeScalars), $0) }
        }
    }

    /// Reads a `vocab.txt`: one token per line, trailing whitespace removed, id = line number.
    public init(contentsOf url: URL, lowercase: Bool = true, stripAccents: Bool? = nil) throws(ModelServerError) {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw .invalidModel("cannot read the vocabulary \(url.lastPathComponent): \(error.localizedDescription)")
        }
        guard let text = String(validating: data, as: UTF8.self) else {
            throw .invalidModel("the vocabulary \(url.lastPathComponent) is not UTF-8")
        }
        // Split on scalars: as a Character, "\r\n" is one grapheme and would not split on "\n".
        var lines = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        let tokens = lines.map { line in
            var scalars = Array(line)
            while let last = scalars.last, last.properties.isWhitespace { scalars.removeLast() }
            var token = String()
            token.unicodeScalars.append(contentsOf: scalars)
            return token
        }
        guard !tokens.isEmpty else { throw .invalidModel("the vocabulary \(url.lastPathComponent) is empty") }
        try self.init(tokens: tokens, lowercase: lowercase, stripAccents: stripAccents)
    }

    /// `[CLS] pieces… [SEP]`, at most `maxLength` ids (at least 2 are always kept).
    public func encode(_ text: String, maxLength: Int) -> [Int64] {
        let budget = max(maxLength, 2) - 2
        var ids: [Int64] = [classifierID]
        ids.reserveCapacity(min(budget, 512) + 2)
        forEachToken(in: text) { token in
            guard ids.count - 1 < budget else { return false }
            ids.append(token.id)
            return true
        }
        ids.append(separatorID)
        return ids
    }

    /// The piece ids of `text`, without `[CLS]`, `[SEP]` or truncation.
    public func pieceIDs(_ text: String) -> [Int64] {
        var ids: [Int64] = []
        forEachToken(in: text) { ids.append($0.id); return true }
        return ids
    }

    /// The tokens of `text` with their offsets and words, without `[CLS]`, `[SEP]` or truncation.
    public func tokens(in text: String) -> [WordPieceToken] {
        var tokens: [WordPieceToken] = []
        forEachToken(in: text) { tokens.append($0); return true }
        return tokens
    }

    /// The vocabulary's token of `id` (line `id` of `vocab.txt`), or nil outside the vocabulary.
    public func token(of id: Int64) -> String? {
        tokenStrings.indices.contains(Int(id)) ? tokenStrings[Int(id)] : nil
    }

    /// The text of `ids` as HuggingFace's WordPiece decoder gives it (`convert_tokens_to_string` of a
    /// fast BERT tokenizer): each token after the first loses its `##` or gains a leading space, and
    /// then a space before `.`, `?`, `!` or `,` alone is dropped (its clean-up works token by token).
    /// Special tokens are kept; ids outside the vocabulary are left out.
    public func decode(_ ids: [Int64]) -> String {
        var text = ""
        for (index, id) in ids.enumerated() {
            guard var token = token(of: id) else { continue }
            if index > 0 {
                if token.hasPrefix(Self.continuationPrefix) {
                    token.removeFirst(Self.continuationPrefix.count)
                } else {
                    token = " " + token
                }
            }
            if token == " ." || token == " ?" || token == " !" || token == " ," { token.removeFirst() }
            text += token
        }
        return text
    }

    /// Calls `body` with each token in order until it returns false. Words are numbered from 0 in
    /// order; a special token written in the text is a word of its own.
    private func forEachToken(in text: String, _ body: (WordPieceToken) -> Bool) {
        let scalars = Array(text.unicodeScalars)
        var segmentStart = 0
        var index = 0
        var word = 0
        while index < scalars.count {
            if scalars[index] == "[", let special = specialToken(in: scalars, at: index) {
                guard tokens(of: scalars[segmentStart..<index], word: &word, body) else { return }
                guard body(WordPieceToken(id: special.id, start: index, end: index + special.length, word: word)) else { return }
                word += 1
                index += special.length
                segmentStart = index
            } else {
                index += 1
            }
        }
        _ = tokens(of: scalars[segmentStart...], word: &word, body)
    }

    /// Tokenizes one stretch of text without special tokens; false when `body` asked to stop.
    private func tokens(of segment: ArraySlice<Unicode.Scalar>, word: inout Int, _ body: (WordPieceToken) -> Bool) -> Bool {
        guard !segment.isEmpty else { return true }
        let normalized = basic.normalizedWithOrigins(segment)
        let origins = normalized.origins
        for piecesOfWord in basic.split(normalized.scalars) {
            let first = piecesOfWord.startIndex
            for piece in wordPieces(piecesOfWord) {
                let token = WordPieceToken(id: piece.id, start: origins[first + piece.scalars.lowerBound],
                                           end: origins[first + piece.scalars.upperBound - 1] + 1, word: word)
                guard body(token) else { return false }
            }
            word += 1
        }
        return true
    }

    private func specialToken(in scalars: [Unicode.Scalar], at index: Int) -> (id: Int64, length: Int)? {
        for token in specialTokens where scalars.count - index >= token.scalars.count {
            if scalars[index..<(index + token.scalars.count)].elementsEqual(token.scalars) {
                return (token.id, token.scalars.count)
            }
        }
        return nil
    }

    /// Greedy longest-match-first WordPiece of one word: each piece's id and the scalars of the word
    /// it covers; `[UNK]` covers the whole word.
    func wordPieces(_ word: ArraySlice<Unicode.Scalar>) -> [(id: Int64, scalars: Range<Int>)] {
        let count = word.count
        guard count <= Self.maxCharactersPerWord else { return [(unknownID, 0..<count)] }
        // UTF-8 offset of each scalar boundary.
        var bytes: [UInt8] = []
        var offsets: [Int] = [0]
        for scalar in word {
            UTF8.encode(scalar) { bytes.append($0) }
            offsets.append(bytes.count)
        }
        let prefix = Array(Self.continuationPrefix.utf8)
        var pieces: [(id: Int64, scalars: Range<Int>)] = []
        var start = 0
        while start < count {
            var end = count
            var found: Int64?
            while start < end {
                var key = start > 0 ? prefix : []
                key.append(contentsOf: bytes[offsets[start]..<offsets[end]])
                if let id = vocabulary[key] {
                    found = id
                    break
                }
                end -= 1
            }
            guard let id = found else { return [(unknownID, 0..<count)] }
            pieces.append((id, start..<end))
            start = end
        }
        return pieces
    }
}
