import Foundation

/// Words looked up in a JSON vocabulary `{"token": id, …}`, for EmbeddingBag-style models such as
/// TorchServe's text classification example.
///
/// Words are torchtext's `basic_english` tokens, reproduced exactly:
/// 1. lower-case (Python's `str.lower`: full Unicode mapping, final `Σ` → `ς`);
/// 2. in this order: `'` → ` '  `; `"` removed; `.` → ` . `; `<br />` → a space; `,` `(` `)` `!` `?`
///    get a space either side; `;` and `:` become spaces;
/// 3. split on whitespace (Python's `str.isspace`).
///
/// A word not in the vocabulary gets the id of `<unk>`, which the vocabulary must have.
public struct WordVocabularyTokenizer: Sendable {
    public static let unknownToken = "<unk>"

    /// Token (UTF-8 bytes, compared exactly) → id.
    private let vocabulary: [[UInt8]: Int64]
    public let unknownID: Int64
    public var count: Int { vocabulary.count }

    public init(vocabulary: [String: Int64]) throws(ModelServerError) {
        var table: [[UInt8]: Int64] = [:]
        for (token, id) in vocabulary {
            guard id >= 0 else { throw .invalidModel("the word vocabulary maps \"\(token)\" to \(id); ids are ≥ 0") }
            table[Array(token.utf8)] = id
        }
        guard let unknown = table[Array(Self.unknownToken.utf8)] else {
            throw .invalidModel("the word vocabulary has no \(Self.unknownToken) entry for unknown words")
        }
        self.vocabulary = table
        self.unknownID = unknown
    }

    /// Reads a JSON object of token → non-negative integer id.
    public init(contentsOf url: URL) throws(ModelServerError) {
        let vocabulary: [String: Int64]
        do {
            vocabulary = try JSONDecoder().decode([String: Int64].self, from: Data(contentsOf: url))
        } catch {
            throw .invalidModel("the word vocabulary \(url.lastPathComponent) is not a JSON object of token → integer id: \(error)")
        }
        try self.init(vocabulary: vocabulary)
    }

    /// The ids of the first `maxLength` words of `text`.
    public func encode(_ text: String, maxLength: Int) -> [Int64] {
        Self.words(in: text).prefix(maxLength).map { vocabulary[Array($0.utf8)] ?? unknownID }
    }

    /// torchtext's `basic_english` words of `text`.
    public static func words(in text: String) -> [String] {
        var scalars = pythonLowercased(Array(text.unicodeScalars))
        scalars = scalars.flatMap { scalar -> [Unicode.Scalar] in
            switch scalar {
            case "'": return [" ", "'", " ", " "]
            case "\"": return []
            case ".": return [" ", ".", " "]
            default: return [scalar]
            }
        }
        scalars = replacingLineBreaks(scalars)
        var words: [String] = []
        var word = String()
        func flush() {
            if !word.unicodeScalars.isEmpty { words.append(word) }
            word = String()
        }
        for scalar in scalars {
            switch scalar {
            case ",", "(", ")", "!", "?":
                flush()
                word.unicodeScalars.append(scalar)
                flush()
            case ";", ":":
                flush()
            default:
                if isPythonSpace(scalar) {
                    flush()
                } else {
                    word.unicodeScalars.append(scalar)
                }
            }
        }
        flush()
        return words
    }

    /// `<br />` → a space, left to right, non-overlapping.
    private static func replacingLineBreaks(_ scalars: [Unicode.Scalar]) -> [Unicode.Scalar] {
        let pattern: [Unicode.Scalar] = Array("<br />".unicodeScalars)
        var result: [Unicode.Scalar] = []
        result.reserveCapacity(scalars.count)
        var index = 0
        while index < scalars.count {
            if scalars[index] == "<", scalars.count - index >= pattern.count,
               scalars[index..<(index + pattern.count)].elementsEqual(pattern) {
                result.append(" ")
                index += pattern.count
            } else {
                result.append(scalars[index])
                index += 1
            }
        }
        return result
    }

    /// Python's `str.lower`: each scalar's full lower-case mapping, and `Σ` → `ς` at the end of a word
    /// (preceded by a cased letter and not followed by one, case-ignorable characters skipped).
    static func pythonLowercased(_ scalars: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var result: [Unicode.Scalar] = []
        result.reserveCapacity(scalars.count)
        for (index, scalar) in scalars.enumerated() {
            if scalar.value < 0x80 {
                result.append(scalar.value >= 0x41 && scalar.value <= 0x5A ? Unicode.Scalar(UInt8(scalar.value + 0x20)) : scalar)
            } else if scalar == "\u{03A3}" {
                result.append(isFinalSigma(scalars, at: index) ? "\u{03C2}" : "\u{03C3}")
            } else {
                result.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return result
    }

    private static func isFinalSigma(_ scalars: [Unicode.Scalar], at index: Int) -> Bool {
        var before = index - 1
        while before >= 0, scalars[before].properties.isCaseIgnorable { before -= 1 }
        guard before >= 0, scalars[before].properties.isCased else { return false }
        var after = index + 1
        while after < scalars.count, scalars[after].properties.isCaseIgnorable { after += 1 }
        return after == scalars.count || !scalars[after].properties.isCased
    }

    /// Python's `str.isspace` (and regex `\s`): Unicode White_Space plus the separators U+001C–U+001F.
    static func isPythonSpace(_ scalar: Unicode.Scalar) -> Bool {
        (0x1C...0x1F).contains(scalar.value) || scalar.properties.isWhitespace
    }
}
