import Foundation
import ModelArchive
import TestFixtures
import Testing
import Torch
@testable import ServerCore

/// HuggingFace's encodings and the `transformers` pipeline's answers for question/context pairs
/// under a few handler settings (scripts/fixtures/make_qa_fixtures.py).
struct QuestionAnsweringFixture: Decodable {
    struct Window: Decodable {
        var inputIds: [Int64]
        var tokenTypeIds: [Int64]
        var attentionMask: [Int64]
    }

    struct Answer: Decodable, CustomStringConvertible {
        var answer: String
        var score: Double
        var start: Int
        var end: Int

        var description: String { "\"\(answer)\" \(score) [\(start), \(end))" }
    }

    struct ArgmaxAnswer: Decodable {
        var answer: String
        /// The smaller of the two logit margins between the argmax and the runner-up.
        var margin: Double
    }

    struct Case: Decodable {
        var question: String
        var context: String
        var windows: [Window]?
        /// HuggingFace's character offsets of the context's tokens, encoded alone.
        var contextOffsets: [[Int]]?
        var answer: Answer?
        /// The second answer of `top_k=2`, where there is one.
        var runnerUp: Answer?
        var argmax: ArgmaxAnswer?
        /// Why HuggingFace's tokenizer refused the pair.
        var refused: String?
    }

    struct Setting: Decodable {
        var name: String
        var maxLength: Int
        var docStride: Int
        var maxAnswerLength: Int
        var lowercase: Bool
        var cases: [Case]

        func spec(decoding: QuestionAnsweringSpec.Decoding = .pipeline) -> QuestionAnsweringSpec {
            QuestionAnsweringSpec(lowercase: lowercase, maxLength: maxLength, docStride: docStride,
                                  maxAnswerLength: maxAnswerLength, decoding: decoding)
        }

        func handler(decoding: QuestionAnsweringSpec.Decoding = .pipeline) throws -> QuestionAnsweringHandler {
            try QuestionAnsweringHandler(spec: spec(decoding: decoding), vocabulary: Fixtures.url("tokenizer/vocab.txt"))
        }
    }

    var library: String
    var count: Int
    var settings: [Setting]

    static let loaded: QuestionAnsweringFixture? = try? JSONDecoder().decode(
        QuestionAnsweringFixture.self, from: Data(contentsOf: Fixtures.url("qa/cases.json")))
}

/// A request body `{"question": …, "context": …}`.
func questionRequest(_ question: String, _ context: String, contextKey: String = "context") throws -> InferenceRequest {
    InferenceRequest(body: [UInt8](try JSONSerialization.data(withJSONObject: ["question": question, contextKey: context])),
                     contentType: "application/json")
}

/// The pair encoding and its windows against HuggingFace's fast tokenizer.
@Suite struct QuestionAnsweringTokenizationTests {
    @Test func windowsMatchHuggingFace() throws {
        let fixture = try #require(QuestionAnsweringFixture.loaded)
        #expect(fixture.settings.reduce(0) { $0 + $1.cases.count } == fixture.count)
        var pairs = 0, windows = 0, windowed = 0, refused = 0
        for setting in fixture.settings {
            let handler = try setting.handler()
            for item in setting.cases {
                let request = try questionRequest(item.question, item.context)
                guard let expected = item.windows else {
                    // HuggingFace refuses a question that leaves the context no more room than the stride.
                    #expect(throws: ModelServerError.self, "\(setting.name): \(item.question)") { try handler.preprocess(request) }
                    refused += 1
                    continue
                }
                let prepared = try handler.preprocess(request)
                try #require(prepared.rows == expected.count, "\(setting.name): \(item.question) | \(item.context.prefix(80))")
                let length = setting.maxLength
                let ids = try prepared.tensors[0].toArray(of: Int64.self)
                let mask = try prepared.tensors[1].toArray(of: Int64.self)
                let types = try prepared.tensors[2].toArray(of: Int64.self)
                #expect(prepared.tensors.map(\.shape) == Array(repeating: [expected.count, length], count: 3))
                for (row, window) in expected.enumerated() {
                    let padding = length - window.inputIds.count
                    let rowIDs = Array(ids[(row * length)..<((row + 1) * length)])
                    let want = window.inputIds + Array(repeating: 0, count: padding)
                    #expect(rowIDs == want, "\(setting.name) window \(row): \(firstMismatchWindow(rowIDs, want) ?? "")")
                    #expect(Array(mask[(row * length)..<((row + 1) * length)]) == window.attentionMask + Array(repeating: 0, count: padding))
                    #expect(Array(types[(row * length)..<((row + 1) * length)]) == window.tokenTypeIds + Array(repeating: 0, count: padding))
                }
                pairs += 1
                windows += expected.count
                if expected.count > 1 { windowed += 1 }
            }
        }
        #expect(pairs >= 200 && windowed >= 50 && refused >= 1, "\(pairs) pairs, \(windows) windows, \(windowed) windowed, \(refused) refused")
    }

    @Test func offsetsMatchHuggingFace() throws {
        let fixture = try #require(QuestionAnsweringFixture.loaded)
        var checked = 0
        for setting in fixture.settings {
            let tokenizer = try WordPieceTokenizer(contentsOf: Fixtures.url("tokenizer/vocab.txt"), lowercase: setting.lowercase)
            for item in setting.cases {
                guard let expected = item.contextOffsets else { continue }
                let tokens = tokenizer.tokens(in: item.context)
                #expect(tokens.map { [$0.start, $0.end] } == expected, "\(setting.name): \(item.context.prefix(80))")
                #expect(tokens.map(\.id) == tokenizer.pieceIDs(item.context))
                checked += 1
            }
        }
        #expect(checked >= 200)
    }

    @Test func offsetsFollowNormalization() throws {
        let tokenizer = try #require(MiniLMVocabulary.tokenizer)
        // Accents stripped (a combining mark dropped with them), a dotted capital, CJK split, a
        // control character dropped: each token covers the scalars it came from, as HuggingFace's
        // offsets mapping says.
        let tokens = tokenizer.tokens(in: "Ça\u{7}fé İx 中文 e\u{301}!")
        #expect(tokens.map { [$0.start, $0.end] } == [[0, 5], [6, 8], [9, 10], [10, 11], [12, 13], [14, 15]])
        #expect(tokens.map(\.word) == [0, 1, 2, 3, 4, 5])
        // Pieces of one word share it; a special token written in the text is a word of its own.
        let special = tokenizer.tokens(in: "unaffable [SEP] x")
        #expect(special.map { [$0.start, $0.end] } == [[0, 3], [3, 6], [6, 9], [10, 15], [16, 17]])
        #expect(special.map(\.word) == [0, 0, 0, 1, 2])
        #expect(special[3].id == tokenizer.separatorID)
    }

    @Test func windowsStepByRoomLessStride() {
        #expect(QuestionAnsweringEncoding.windows(count: 5, room: 5, stride: 2) == [0..<5])
        #expect(QuestionAnsweringEncoding.windows(count: 10, room: 4, stride: 1) == [0..<4, 3..<7, 6..<10])
        #expect(QuestionAnsweringEncoding.windows(count: 11, room: 4, stride: 1) == [0..<4, 3..<7, 6..<10, 9..<11])
        #expect(QuestionAnsweringEncoding.windows(count: 8, room: 4, stride: 0) == [0..<4, 4..<8])
        #expect(QuestionAnsweringEncoding.windows(count: 8, room: 4, stride: 4) == nil)
        // A question longer than the row leaves no room even for an empty context (HuggingFace:
        // "sequence to truncate too short").
        #expect(QuestionAnsweringEncoding.windows(count: 0, room: -3, stride: 0) == nil)
        #expect(QuestionAnsweringEncoding.windows(count: 0, room: 0, stride: 0) == [0..<0])
        #expect(QuestionAnsweringEncoding.windows(count: 1, room: 0, stride: 0) == nil)
    }

    @Test func decodesAsTheFastTokenizer() throws {
        let tokenizer = try #require(MiniLMVocabulary.tokenizer)
        #expect(tokenizer.decode(tokenizer.pieceIDs("Alex")) == "alex")
        #expect(tokenizer.decode(tokenizer.pieceIDs("unaffable, isn't it?")) == "unaffable, isn ' t it?")
        #expect(tokenizer.decode(tokenizer.pieceIDs("[CLS] Copenhagen.")) == "[CLS] copenhagen.")
        let pieces = tokenizer.pieceIDs("unaffable")
        #expect(pieces.count > 1 && tokenizer.decode(Array(pieces.dropFirst())).hasPrefix("##"))
        #expect(tokenizer.token(of: tokenizer.classifierID) == "[CLS]" && tokenizer.token(of: -1) == nil)
    }
}
