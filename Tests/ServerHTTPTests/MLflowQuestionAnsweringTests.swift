import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ServerCore
import ServerHTTP
import ServerTestSupport
import TestFixtures
import Testing

/// MLflow's scoring protocol for `question_answering` (the MLflow write-up's deployment): rows of
/// `question` and `text` (or `context`), each answered with the handler's `answer` string. The
/// tiny QA fixture model stands in for BERT; `model_store/qa.mar` is checked too when it exists.
@Suite struct MLflowQuestionAnsweringTests {
    static let context = "My name is Alex, I am 32 and live in Copenhagen."
    static let questions = ["What is my name?", "How old am I?", "Where do I live?"]
    static let sample = MLflowScoringTests.modelStore.appendingPathComponent("qa.mar")

    /// The fixture model as `qa`, and `model_store/qa.mar` as `qa_sample` when it exists.
    func withServer(_ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        try store.addFolderArchive(
            name: "qa", model: "qa/qa_tiny.pt", config: "batchSize: 4\nhandler:\n  kind: question_answering\n  maxLength: 64\n  docStride: 16\n",
            handler: "question_answering", extraFiles: ["vocab.txt": try String(contentsOf: Fixtures.url("tokenizer/vocab.txt"), encoding: .utf8)])
        if FileManager.default.fileExists(atPath: Self.sample.path) {
            try FileManager.default.copyItem(at: Self.sample, to: store.root.appendingPathComponent("qa_sample.mar"))
        }
        let server = store.makeServer()
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "qa"))
        if FileManager.default.fileExists(atPath: Self.sample.path) {
            try await server.register(RegistrationOptions(url: "qa_sample.mar", modelName: "qa_sample"))
        }
        let app = HTTPServer.inferenceApplication(server: server, host: "127.0.0.1", port: 0, invocationsModel: "qa", logger: quietLogger)
        try await app.test(.live) { client in try await body(client) }
    }

    /// Each question's `/predictions` answer: the handler's object and its `answer`.
    static func reference(_ client: any TestClientProtocol, model: String) async throws -> [String] {
        var answers: [String] = []
        for question in questions {
            try await client.execute(uri: "/predictions/\(model)", method: .post, headers: [.contentType: "application/json"],
                                     body: try MLflowScoringTests.json(["question": question, "context": context])) { response in
                #expect(response.status == .ok)
                let object = MLflowScoringTests.object(response.body)
                answers.append(object["answer"] as? String ?? "<no answer>")
            }
        }
        return answers
    }

    static func expectAnswers(_ client: any TestClientProtocol, _ uri: String, contentType: String = "application/json", body: ByteBuffer,
                              _ expected: [String], _ form: String) async throws {
        try await client.execute(uri: uri, method: .post, headers: [.contentType: contentType], body: body) { response in
            #expect(response.status == .ok, "\(form): \(String(buffer: response.body).prefix(300))")
            #expect(MLflowScoringTests.object(response.body)["predictions"] as? [String] == expected, "\(form)")
        }
    }

    static func forms(model: String) throws -> [(String, String, ByteBuffer)] {
        let json = "application/json"
        let context = Self.context
        let csv = "question,text\n" + questions.map { "\($0),\"\(context)\"" }.joined(separator: "\n") + "\n"
        return [
            ("dataframe_split", json, try MLflowScoringTests.json(
                ["dataframe_split": ["columns": ["question", "text"], "data": questions.map { [$0, context] }]])),
            ("dataframe_records with context", json, try MLflowScoringTests.json(
                ["dataframe_records": questions.map { ["question": $0, "context": context] }])),
            ("instances of records", json, try MLflowScoringTests.json(["instances": questions.map { ["question": $0, "text": context] }])),
            ("inputs of columns, one context for all", json, try MLflowScoringTests.json(["inputs": ["question": questions, "text": context]])),
            ("CSV", "text/csv", ByteBuffer(string: csv)),
        ]
    }

    @Test func everyFormAnswersTheAnswerStrings() async throws {
        try await withServer { client in
            let expected = try await Self.reference(client, model: "qa")
            for (form, contentType, body) in try Self.forms(model: "qa") {
                try await Self.expectAnswers(client, "/invocations", contentType: contentType, body: body, expected, form)
            }
        }
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: MLflowQuestionAnsweringTests.sample.path)))
    func theSampleArchiveAnswersAsOnPredictions() async throws {
        try await withServer { client in
            let expected = try await Self.reference(client, model: "qa_sample")
            for (form, contentType, body) in try Self.forms(model: "qa_sample") {
                try await Self.expectAnswers(client, "/invocations?model_name=qa_sample", contentType: contentType, body: body, expected, form)
            }
        }
    }

    @Test func rowsWithoutAPairAreRefusedAndOtherBodiesGoToTheHandler() async throws {
        try await withServer { client in
            for (form, body, mentions) in [
                ("no context column", ["dataframe_records": [["question": Self.questions[0]]]], ["question and text (or context)"]),
                ("no question column", ["dataframe_split": ["columns": ["text"], "data": [[Self.context]]]], ["question and text (or context)", "'text'"]),
                ("text and context in one row", ["dataframe_records": [["question": Self.questions[0], "text": Self.context, "context": Self.context]]],
                 ["row 0", "text and context"]),
                ("bare values", ["instances": Self.questions], ["question and text (or context)"]),
            ] as [(String, Any, [String])] {
                try await MLflowScoringTests.expectError(client, body: try MLflowScoringTests.json(body), status: .badRequest,
                                                         code: "INVALID_PARAMETER_VALUE", mentions: mentions, form)
            }
            // The handler's own body on /invocations: its whole answer, not MLflow's.
            try await client.execute(uri: "/invocations", method: .post, headers: [.contentType: "application/json"],
                                     body: try MLflowScoringTests.json(["question": Self.questions[0], "context": Self.context])) { response in
                #expect(response.status == .ok)
                let object = MLflowScoringTests.object(response.body)
                #expect(object["answer"] is String && object["score"] != nil && object["predictions"] == nil)
            }
        }
    }
}
