import Foundation

/// BERT's basic tokenization, as HuggingFace `tokenizers` does it (`BertNormalizer` then
/// `BertPreTokenizer`), working on Unicode scalars, never on grapheme clusters:
///
/// 1. clean: drop NUL, U+FFFD and control/format/private-use characters (Cc, Cf, Co, except tab,
///    LF, CR); turn every whitespace character into a space;
/// 2. put a space either side of each CJK ideograph, so each becomes a word;
/// 3. if `stripAccents`: canonical decomposition (NFD), then drop non-spacing marks (Mn);
/// 4. if `lowercase`: full Unicode lower-case mapping of each scalar (no context rules);
/// 5. split on whitespace, and isolate every punctuation character (ASCII punctuation and symbols,
///    Unicode categories P*) as a word of its own.
///
/// The character classes of steps 1, 3 and 5 are HuggingFace's (`BertCharacterTables`), whose Unicode
/// tables are older than Swift's.
public struct BasicTokenizer: Sendable, Equatable {
    public var lowercase: Bool
    public var stripAccents: Bool

    public init(lowercase: Bool = true, stripAccents: Bool? = nil) {
        self.lowercase = lowercase
        self.stripAccents = stripAccents ?? lowercase
    }

    /// The words of `text`, in order.
    public func words(in text: String) -> [String] {
        split(normalized(Array(text.unicodeScalars))).map { word in
            var string = String()
            string.unicodeScalars.append(contentsOf: word)
            return string
        }
    }

    /// Steps 1–4: the normalized scalars of `scalars`.
    func normalized(_ scalars: [Unicode.Scalar]) -> [Unicode.Scalar] {
        normalizedWithOrigins(scalars[...]).scalars
    }

    /// Steps 1–4, remembering where each normalized scalar comes from, as HuggingFace's
    /// `NormalizedString` aligns it: a scalar kept, decomposed or lower-cased, and the spaces put
    /// around a CJK ideograph, all belong to the scalar of the input they were made from.
    func normalizedWithOrigins(_ scalars: ArraySlice<Unicode.Scalar>) -> NormalizedScalars {
        var cleaned = NormalizedScalars()
        cleaned.reserveCapacity(scalars.count)
        var needsDecomposition = false
        for (origin, scalar) in zip(scalars.indices, scalars) {
            let value = scalar.value
            if value < 0x80 {
                if value == 0x20 || value == 0x09 || value == 0x0A || value == 0x0D {
                    cleaned.append(" ", from: origin)
                } else if value >= 0x21 && value != 0x7F {
                    cleaned.append(scalar, from: origin)
                }
                continue
            }
            if value == 0xFFFD || BertCharacterTables.control.contains(value) { continue }
            if BertCharacterTables.whitespace.contains(value) {
                cleaned.append(" ", from: origin)
            } else if Self.isCJKIdeograph(value) {
                // CJK compatibility ideographs decompose to unified ones.
                needsDecomposition = needsDecomposition || value >= 0xF900
                cleaned.append(" ", from: origin)
                cleaned.append(scalar, from: origin)
                cleaned.append(" ", from: origin)
            } else {
                // Below U+00C0 nothing has a canonical decomposition.
                needsDecomposition = needsDecomposition || value >= 0xC0
                cleaned.append(scalar, from: origin)
            }
        }
        if stripAccents {
            if needsDecomposition { cleaned = Self.canonicalDecomposition(cleaned) }
            cleaned.removeAll { $0.value >= 0x300 && BertCharacterTables.nonspacingMarks.contains($0.value) }
        }
        guard lowercase else { return cleaned }
        var lowered = NormalizedScalars()
        lowered.reserveCapacity(cleaned.count)
        for (scalar, origin) in zip(cleaned.scalars, cleaned.origins) {
            let value = scalar.value
            if value < 0x80 {
                lowered.append(value >= 0x41 && value <= 0x5A ? Unicode.Scalar(UInt8(value + 0x20)) : scalar, from: origin)
            } else {
                for lower in scalar.properties.lowercaseMapping.unicodeScalars { lowered.append(lower, from: origin) }
            }
        }
        return lowered
    }

    /// Step 5: whitespace-separated words, punctuation isolated.
    func split(_ scalars: [Unicode.Scalar]) -> [ArraySlice<Unicode.Scalar>] {
        var words: [ArraySlice<Unicode.Scalar>] = []
        var start = scalars.startIndex
        for index in scalars.indices {
            let value = scalars[index].value
            if value == 0x20 || BertCharacterTables.whitespace.contains(value) {
                if start < index { words.append(scalars[start..<index]) }
                start = index + 1
            } else if BertCharacterTables.punctuation.contains(value) {
                if start < index { words.append(scalars[start..<index]) }
                words.append(scalars[index...index])
                start = index + 1
            }
        }
        if start < scalars.endIndex { words.append(scalars[start...]) }
        return words
    }

    /// The CJK Unified Ideographs blocks BERT treats as one word per character (not Hangul, kana).
    static func isCJKIdeograph(_ value: UInt32) -> Bool {
        (0x4E00...0x9FFF).contains(value) || (0x3400...0x4DBF).contains(value)
            || (0x20000...0x2A6DF).contains(value) || (0x2A700...0x2B73F).contains(value)
            || (0x2B740...0x2B81F).contains(value) || (0x2B920...0x2CEAF).contains(value)
            || (0xF900...0xFAFF).contains(value) || (0x2F800...0x2FA1F).contains(value)
    }

    /// NFD of `text` (Swift strings keep scalars as given): each scalar's full canonical
    /// decomposition, then combining marks put in canonical order (a stable sort of each run of
    /// non-starters by combining class), each piece keeping its scalar's origin. The few code points
    /// whose decomposition HuggingFace's tables lack stay as they are.
    static func canonicalDecomposition(_ text: NormalizedScalars) -> NormalizedScalars {
        var result = NormalizedScalars()
        result.reserveCapacity(text.count + text.count / 4)
        for (scalar, origin) in zip(text.scalars, text.origins) {
            // Nothing below U+00C0 or in U+3400–U+9FFF (CJK, Yijing) decomposes.
            if scalar.value < 0xC0 || (0x3400...0x9FFF).contains(scalar.value) || BertCharacterTables.undecomposed.contains(scalar) {
                result.append(scalar, from: origin)
            } else {
                for piece in String(scalar).decomposedStringWithCanonicalMapping.unicodeScalars {
                    result.append(piece, from: origin)
                }
            }
        }
        result.orderCombiningMarks()
        return result
    }
}
