import Foundation
import ServerCore
import ServerTestSupport
import TestFixtures
import Testing

/// A `question_answering` archive (the tiny traced QA model, the MiniLM vocabulary) registered in a
/// real `ModelServer`: concurrent requests batch, windows of several requests run in one forward,
/// and the answers are the `transformers` pipeline's (scripts/fixtures/make_qa_fixtures.py).
@Suite struct QuestionAnsweringServerTests {
    struct Fixture: Decodable {
        struct Answer: Decodable, Equatable {
            var answer: String
            var score: Double
            var start: Int
            var end: Int
        }

        struct Case: Decodable {
            var question: String
            var context: String
            var windows: [[String: [Int]]]?
            var answer: Answer?
        }

        struct Setting: Decodable {
            var name: String
            var maxLength: Int
            var docStride: Int
            var maxAnswerLength: Int
            var cases: [Case]
        }

        var settings: [Setting]
    }

    /// The fixture's settings for 48-token windows overlapping by 16.
    static func windowsSetting() throws -> Fixture.Setting {
        let fixture = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: Fixtures.url("qa/cases.json")))
        return try #require(fixture.settings.first { $0.name == "windows" })
    }

    static func config(_ setting: Fixture.Setting) -> String {
        """
        minWorkers: 1
        batchSize: 8
        maxBatchDelay: 50
        handler:
          kind: question_answering
          maxLength: \(setting.maxLength)
          docStride: \(setting.docStride)
          maxAnswerLength: \(setting.maxAnswerLength)
        """
    }

    static func body(_ object: Any) throws -> [UInt8] {
        [UInt8](try JSONSerialization.data(withJSONObject: object))
    }

    @Test func registeredArchiveAnswersAsThePipeline() async throws {
        let setting = try Self.windowsSetting()
        let store = try TestModelStore()
        defer { store.remove() }
        let vocabulary = try String(contentsOf: Fixtures.url("tokenizer/vocab.txt"), encoding: .utf8)
        try store.addFolderArchive(name: "qa", model: "qa/qa_tiny.pt", config: Self.config(setting), handler: "question_answering",
                                   extraFiles: ["vocab.txt": vocabulary])
        let server = store.makeServer()
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "qa"))

        let signature = try server.signature(model: "qa")
        #expect(signature.handlerInput == .text)
        #expect(signature.inputs.map(\.shape) == Array(repeating: [-1, setting.maxLength], count: 3))
        #expect(signature.outputs.count == 2)

        // Forty requests at once, one of them several windows long for every few short ones.
        let cases = Array(setting.cases.filter { $0.answer != nil }.prefix(40))
        #expect(cases.filter { ($0.windows?.count ?? 0) > 1 }.count >= 5)
        let answers = try await withThrowingTaskGroup(of: (Int, [UInt8]).self) { group in
            for (index, item) in cases.enumerated() {
                group.addTask {
                    let request = InferenceRequest(body: try Self.body(["question": item.question, "context": item.context]),
                                                   contentType: "application/json")
                    return (index, try await server.predict(model: "qa", request: request).body)
                }
            }
            var answers = [[UInt8]](repeating: [], count: cases.count)
            for try await (index, body) in group { answers[index] = body }
            return answers
        }
        for (item, body) in zip(cases, answers) {
            let got = try JSONDecoder().decode(Fixture.Answer.self, from: Data(body))
            let want = try #require(item.answer)
            #expect(got.answer == want.answer && got.start == want.start && got.end == want.end && abs(got.score - want.score) <= 1e-4,
                    "\(item.question): got \(got), want \(want)")
        }

        // A list answers a list; the write-up's "text" names the context.
        let list = try Self.body(cases.prefix(3).map { ["question": $0.question, "text": $0.context] })
        let listed = try JSONDecoder().decode([Fixture.Answer].self,
                                              from: Data(try await server.predict(model: "qa", request: InferenceRequest(body: list)).body))
        #expect(listed.map(\.answer) == cases.prefix(3).map { $0.answer?.answer ?? "" })

        // Bad input is the client's to fix, named.
        await #expect(throws: ModelServerError.badRequest("the JSON body has no \"question\"")) {
            try await server.predict(model: "qa", request: InferenceRequest(body: try Self.body(["context": "c"])))
        }
    }

    @Test func archiveWithoutItsVocabularyFailsToLoad() async throws {
        let setting = try Self.windowsSetting()
        let store = try TestModelStore()
        defer { store.remove() }
        try store.addFolderArchive(name: "qa", model: "qa/qa_tiny.pt", config: Self.config(setting), handler: "question_answering")
        let server = store.makeServer()
        defer { server.shutdown() }
        await #expect { try await server.register(RegistrationOptions(url: "qa")) } throws: { error in
            "\(error)".contains("does not contain \"vocab.txt\", which model-config.yaml's handler.vocab names")
        }
    }
}
