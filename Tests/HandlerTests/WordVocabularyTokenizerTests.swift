import Foundation
import TestFixtures
import Testing
@testable import ServerCore

private struct BasicEnglishFixture: Decodable {
    struct Case: Decodable {
        var text: String
        var tokens: [String]
    }

    var count: Int
    var cases: [Case]
}

@Suite struct WordVocabularyTokenizerTests {
    @Test func matchesTorchtextBasicEnglish() throws {
        let fixture = try JSONDecoder().decode(
            BasicEnglishFixture.self, from: Data(contentsOf: Fixtures.url("tokenizer/basic_english.json")))
        #expect(fixture.cases.count == fixture.count)
        var mismatches = 0
        for item in fixture.cases {
            let words = WordVocabularyTokenizer.words(in: item.text)
            // Compare scalars: Swift's String equality would call composed and decomposed forms equal.
            if words.map({ Array($0.unicodeScalars) }) != item.tokens.map({ Array($0.unicodeScalars) }) {
                mismatches += 1
                if mismatches == 1 {
                    Issue.record("\(item.text.debugDescription.prefix(120)): swift \(words.prefix(40)) torchtext \(item.tokens.prefix(40))")
                }
            }
        }
        #expect(mismatches == 0, "\(mismatches) of \(fixture.count) texts differ")
    }

    @Test func basicEnglishRules() {
        #expect(WordVocabularyTokenizer.words(in: "Don't STOP (now), ok? Yes! a.b; c:d \"q\" <br />x")
                == ["don", "'", "t", "stop", "(", "now", ")", ",", "ok", "?", "yes", "!", "a", ".", "b", "c", "d", "q", "x"])
        #expect(WordVocabularyTokenizer.words(in: "<br \"/>") == [])
        #expect(WordVocabularyTokenizer.words(in: "ΟΔΟΣ ΣΑΣ") == ["οδος", "σας"])
        #expect(WordVocabularyTokenizer.words(in: "a\u{1C}b\u{85}c") == ["a", "b", "c"])
    }

    @Test func unknownWordsGetUnk() throws {
        let tokenizer = try WordVocabularyTokenizer(vocabulary: ["<unk>": 0, "the": 1, "game": 2, "!": 3])
        #expect(tokenizer.encode("The game! The zebra", maxLength: 10) == [1, 2, 3, 1, 0])
        #expect(tokenizer.encode("The game! The zebra", maxLength: 2) == [1, 2])
        #expect(tokenizer.encode(";;;", maxLength: 10) == [])
        #expect(throws: ModelServerError.invalidModel("the word vocabulary has no <unk> entry for unknown words")) {
            try WordVocabularyTokenizer(vocabulary: ["the": 1])
        }
        #expect(throws: ModelServerError.invalidModel("the word vocabulary maps \"<unk>\" to -1; ids are ≥ 0")) {
            try WordVocabularyTokenizer(vocabulary: ["<unk>": -1])
        }
    }

    @Test func readsJSONVocabulary() throws {
        let tokenizer = try WordVocabularyTokenizer(contentsOf: Fixtures.url("text/bag_vocab.json"))
        #expect(tokenizer.count == 50)
        #expect(tokenizer.unknownID == 0)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("wordvocab-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        for (name, text) in [("list.json", "[\"a\"]"), ("float.json", "{\"<unk>\": 0.5}"), ("bad.json", "{")] {
            let url = folder.appendingPathComponent(name)
            try Data(text.utf8).write(to: url)
            #expect("\(name)") { try WordVocabularyTokenizer(contentsOf: url) } throws: { error in
                guard case .invalidModel(let message)? = error as? ModelServerError else { return false }
                return message.hasPrefix("the word vocabulary \(name) is not a JSON object of token → integer id: ")
            }
        }
    }
}
