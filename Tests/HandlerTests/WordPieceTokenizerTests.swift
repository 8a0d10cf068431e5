import Foundation
import TestFixtures
import Testing
@testable import ServerCore

/// The committed baseline of HuggingFace `tokenizers` ids (scripts/fixtures/make_tokenizer_fixtures.py).
struct WordPieceParityFixture: Decodable {
    struct Case: Decodable {
        var text: String
        var source: String
        var heldOut: Bool
        var ids: [Int64]
        var untruncatedLength: Int?
    }

    struct Truncation: Decodable {
        var text: String
        var maxLength: Int
        var ids: [Int64]
    }

    var library: String
    var date: String
    var maxLength: Int
    var count: Int
    var heldOutCount: Int
    var cases: [Case]
    var truncation: [Truncation]

    static func load() throws -> WordPieceParityFixture {
        try JSONDecoder().decode(WordPieceParityFixture.self, from: Data(contentsOf: Fixtures.url("tokenizer/wordpiece_parity.json")))
    }
}

enum MiniLMVocabulary {
    /// The uncased BERT vocabulary of all-MiniLM-L6-v2, loaded once.
    static let tokenizer: WordPieceTokenizer? = try? WordPieceTokenizer(contentsOf: Fixtures.url("tokenizer/vocab.txt"))
}

/// Where two id sequences first differ, with a few ids either side of both.
func firstMismatchWindow(_ got: [Int64], _ expected: [Int64], radius: Int = 6) -> String? {
    guard got != expected else { return nil }
    let index = (0..<min(got.count, expected.count)).first { got[$0] != expected[$0] } ?? min(got.count, expected.count)
    let from = max(0, index - radius)
    func window(_ ids: [Int64]) -> String {
        let slice = ids[min(from, ids.count)..<min(index + radius + 1, ids.count)]
        return "[" + (from > 0 ? "… " : "") + slice.map(String.init).joined(separator: ", ")
            + (index + radius + 1 < ids.count ? " …" : "") + "]"
    }
    return "first difference at token \(index) (lengths \(got.count) vs \(expected.count)):\n"
        + "  swift:       \(window(got))\n  huggingface: \(window(expected))"
}

@Suite struct WordPieceTokenizerTests {
    @Test func matchesHuggingFaceOnTheWholeCorpus() throws {
        let fixture = try WordPieceParityFixture.load()
        let tokenizer = try #require(MiniLMVocabulary.tokenizer)
        #expect(fixture.cases.count == fixture.count)
        #expect(fixture.count >= 1000)
        #expect(fixture.heldOutCount >= fixture.count / 5)
        var mismatches = (seen: 0, heldOut: 0)
        var firstReported = false
        for (number, item) in fixture.cases.enumerated() {
            let ids = tokenizer.encode(item.text, maxLength: fixture.maxLength)
            guard let window = firstMismatchWindow(ids, item.ids) else { continue }
            if item.heldOut { mismatches.heldOut += 1 } else { mismatches.seen += 1 }
            if !firstReported {
                firstReported = true
                Issue.record("case \(number) (\(item.source)\(item.heldOut ? ", held out" : "")) \(item.text.debugDescription.prefix(200)):\n\(window)")
            }
        }
        let heldOut = fixture.cases.filter(\.heldOut).count
        print("WordPiece parity with \(fixture.library) (\(fixture.date)): \(fixture.count) texts, "
              + "\(mismatches.seen) mismatches in \(fixture.count - heldOut), \(mismatches.heldOut) in \(heldOut) held out")
        #expect(mismatches.seen == 0)
        #expect(mismatches.heldOut == 0)
    }

    @Test func corpusCoversTheHardCases() throws {
        let fixture = try WordPieceParityFixture.load()
        #expect(fixture.cases.filter { ($0.untruncatedLength ?? 0) > 512 }.count >= 5)
        #expect(fixture.cases.contains { $0.text.unicodeScalars.count == 150 && !$0.text.contains(" ") })
        let all = fixture.cases.map(\.text).joined()
        for needle in ["é", "ñ", "ü", "Å", "你", "😀", "\u{200B}", "\u{07}", "http"] {
            #expect(all.contains(needle), "the corpus has no \(needle.debugDescription)")
        }
    }

    @Test func truncatesKeepingSeparatorLast() throws {
        let fixture = try WordPieceParityFixture.load()
        let tokenizer = try #require(MiniLMVocabulary.tokenizer)
        for item in fixture.truncation {
            let ids = tokenizer.encode(item.text, maxLength: item.maxLength)
            #expect(ids == item.ids, "maxLength \(item.maxLength): \(item.text.debugDescription.prefix(80))")
        }
        let long = tokenizer.encode(String(repeating: "word ", count: 600), maxLength: 128)
        #expect(long.count == 128)
        #expect(long.first == tokenizer.classifierID)
        #expect(long.last == tokenizer.separatorID)
    }

    @Test func specialCasesOfWords() throws {
        let tokenizer = try #require(MiniLMVocabulary.tokenizer)
        #expect(tokenizer.encode("", maxLength: 128) == [101, 102])
        #expect(tokenizer.encode(" \t\n\u{200B}", maxLength: 128) == [101, 102])
        // Longer than 100 scalars → [UNK]; exactly 100 is split into pieces.
        #expect(tokenizer.pieceIDs(String(repeating: "x", count: 150)) == [tokenizer.unknownID])
        #expect(tokenizer.pieceIDs(String(repeating: "a", count: 101)) == [tokenizer.unknownID])
        #expect(tokenizer.pieceIDs(String(repeating: "a", count: 100)).count > 1)
        // Special tokens written in the text are those tokens; lower-case ones are not.
        #expect(tokenizer.encode("hello [MASK] world", maxLength: 16) == [101, 7592, 103, 2088, 102])
        #expect(tokenizer.pieceIDs("[mask]").count == 3)
        // Continuation pieces and accents.
        #expect(tokenizer.pieceIDs("Café") == tokenizer.pieceIDs("cafe"))
        #expect(tokenizer.pieceIDs("unaffable").count > 1)
    }

    @Test func readsVocabularyFilesAsHuggingFaceDoes() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("wordpiece-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        // CRLF line ends and trailing spaces are not part of tokens; the id is the line number.
        let crlf = folder.appendingPathComponent("vocab.txt")
        try Data("[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]  \r\nhello\r\n##s\r\n".utf8).write(to: crlf)
        let tokenizer = try WordPieceTokenizer(contentsOf: crlf)
        #expect(tokenizer.encode("Hellos there", maxLength: 10) == [2, 4, 5, 1, 3])
        #expect(tokenizer.vocabularySize == 6)

        let missing = folder.appendingPathComponent("missing.txt")
        try Data("[PAD]\nhello\n".utf8).write(to: missing)
        #expect(throws: ModelServerError.invalidModel("the WordPiece vocabulary lacks one of [UNK], [CLS], [SEP]")) {
            try WordPieceTokenizer(contentsOf: missing)
        }
        let notUTF8 = folder.appendingPathComponent("latin1.txt")
        try Data([0x5B, 0x55, 0x4E, 0x4B, 0x5D, 0x0A, 0xE9, 0x0A]).write(to: notUTF8)
        #expect(throws: ModelServerError.invalidModel("the vocabulary latin1.txt is not UTF-8")) { try WordPieceTokenizer(contentsOf: notUTF8) }
    }

    @Test func casedVocabularyKeepsCaseAndAccents() throws {
        let tokenizer = try WordPieceTokenizer(
            tokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "Café", "cafe", "e\u{301}", "é"], lowercase: false)
        #expect(tokenizer.pieceIDs("Café cafe") == [4, 5])
        // Entries are compared byte for byte: composed and decomposed é are different tokens.
        #expect(tokenizer.pieceIDs("e\u{301}") == [6])
        #expect(tokenizer.pieceIDs("é") == [7])
    }
}
