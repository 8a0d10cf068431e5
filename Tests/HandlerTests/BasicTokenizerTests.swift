import Foundation
import TestFixtures
import Testing
@testable import ServerCore

/// HuggingFace's `BertNormalizer` on every single code point (scripts/fixtures/make_tokenizer_fixtures.py).
private struct NormalizationFixture: Decodable {
    var library: String
    var dropped: [[UInt32]]
    var sampledRanges: [[UInt32]]
    var uncased: [String: String]
    var lowercaseOnly: [String: String]
    var samples: [String: String]
}

@Suite struct BasicTokenizerTests {
    private static func hexes(_ text: String) -> [UInt32] {
        text.split(separator: " ").compactMap { UInt32($0, radix: 16) }
    }

    /// Normalizes many single code points at once: each between two `|` (which nothing else
    /// produces and which stops canonical reordering), so one NFD call serves thousands.
    private static func normalizeEach(_ values: [UInt32], with tokenizer: BasicTokenizer) -> [[UInt32]] {
        var results: [[UInt32]] = []
        for start in stride(from: 0, to: values.count, by: 4096) {
            let chunk = values[start..<min(start + 4096, values.count)]
            var scalars: [Unicode.Scalar] = ["|"]
            for value in chunk {
                scalars.append(Unicode.Scalar(value)!)
                scalars.append("|")
            }
            let out = tokenizer.normalized(scalars).map(\.value)
            let pieces = out.split(separator: 0x7C, omittingEmptySubsequences: false).dropFirst().dropLast()
            precondition(pieces.count == chunk.count)
            results += pieces.map(Array.init)
        }
        return results
    }

    @Test func normalizesEveryCodePointAsHuggingFace() throws {
        let fixture = try JSONDecoder().decode(
            NormalizationFixture.self, from: Data(contentsOf: Fixtures.url("tokenizer/normalization.json")))
        let dropped = CodePointSet(fixture.dropped.map { $0[0]...$0[1] })
        let sampled = CodePointSet(fixture.sampledRanges.map { $0[0]...$0[1] }.sorted { $0.lowerBound < $1.lowerBound })
        let values = (UInt32(0)...0x10FFFF).filter {
            !(0xD800...0xDFFF).contains($0) && $0 != 0x7C && !dropped.contains($0) && !sampled.contains($0)
        }
        for (name, tokenizer, expected) in [
            ("uncased", BasicTokenizer(lowercase: true), fixture.uncased),
            ("lowercase only", BasicTokenizer(lowercase: true, stripAccents: false), fixture.lowercaseOnly),
        ] {
            var differences: [String] = []
            for (value, got) in zip(values, Self.normalizeEach(values, with: tokenizer)) {
                let want = expected[String(value, radix: 16, uppercase: true)].map(Self.hexes) ?? [value]
                if got != want {
                    differences.append("U+\(String(value, radix: 16, uppercase: true)): swift \(got.map { String($0, radix: 16) }) hf \(want.map { String($0, radix: 16) })")
                }
            }
            #expect(differences.isEmpty, "\(name): \(differences.count) code points differ from \(fixture.library), e.g. \(differences.prefix(10))")
        }
        // Dropped characters vanish; CJK ideographs and Hangul syllables as sampled.
        for range in fixture.dropped {
            for value in [range[0], range[1]] where !(0xD800...0xDFFF).contains(value) {
                #expect(BasicTokenizer().normalized([Unicode.Scalar(value)!]).isEmpty, "U+\(String(value, radix: 16)) is not dropped")
            }
        }
        for (key, want) in fixture.samples {
            let value = try #require(UInt32(key, radix: 16))
            #expect(BasicTokenizer().normalized([Unicode.Scalar(value)!]).map(\.value) == Self.hexes(want), "U+\(key)")
        }
    }

    @Test func splitsWordsAndPunctuation() {
        let tokenizer = BasicTokenizer()
        #expect(tokenizer.words(in: "Hello, World!! It's 3.14") == ["hello", ",", "world", "!", "!", "it", "'", "s", "3", ".", "14"])
        #expect(tokenizer.words(in: "你好world") == ["你", "好", "world"])
        #expect(tokenizer.words(in: "Ångström ÑANDÚ") == ["angstrom", "nandu"])
        #expect(tokenizer.words(in: "a\u{0}b\u{FFFD}c\u{200B}d") == ["abcd"])
        #expect(tokenizer.words(in: "x\u{A0}y\u{3000}z\tw") == ["x", "y", "z", "w"])
        #expect(tokenizer.words(in: "$5 + 3 = 8 ~ ^_^ `") == ["$", "5", "+", "3", "=", "8", "~", "^", "_", "^", "`"])
        #expect(tokenizer.words(in: "👍🏽 ok") == ["👍🏽", "ok"])
        #expect(BasicTokenizer(lowercase: false).words(in: "Café") == ["Café"])
        #expect(BasicTokenizer(lowercase: true, stripAccents: false).words(in: "Café") == ["café"])
    }
}
