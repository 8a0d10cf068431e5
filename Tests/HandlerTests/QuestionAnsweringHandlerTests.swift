import Foundation
import ModelArchive
import TestFixtures
import Testing
import Torch
@testable import ServerCore

/// Runs requests as the worker does: preprocess each, concatenate along dimension 0, one forward,
/// split the output by rows, postprocess each.
private func serve(_ requests: [InferenceRequest], with handler: QuestionAnsweringHandler, module: ScriptModule) throws -> [InferenceResponse] {
    let prepared = try requests.map { try handler.preprocess($0) }
    let inputs = try (0..<prepared[0].tensors.count).map { position in
        try Tensor.concatenate(prepared.map { $0.tensors[position] }, dim: 0)
    }
    let output = try module.forward(inputs)
    let total = prepared.reduce(0) { $0 + $1.rows }
    var row = 0
    return try prepared.map { input in
        defer { row += input.rows }
        return try handler.postprocess(try output.rows(row, count: input.rows, batch: total), for: input)
    }
}

private func json(_ response: InferenceResponse) throws -> Any {
    try JSONSerialization.jsonObject(with: Data(response.body))
}

private func answer(_ value: Any?) throws -> QuestionAnsweringFixture.Answer {
    let object = try #require(value as? [String: Any])
    #expect(object.keys.sorted() == ["answer", "end", "score", "start"])
    return QuestionAnsweringFixture.Answer(answer: try #require(object["answer"] as? String), score: try #require(object["score"] as? Double),
                                           start: try #require(object["start"] as? Int), end: try #require(object["end"] as? Int))
}

private func same(_ got: QuestionAnsweringFixture.Answer, _ want: QuestionAnsweringFixture.Answer) -> Bool {
    got.answer == want.answer && got.start == want.start && got.end == want.end && abs(got.score - want.score) <= 1e-4
}

@Suite struct QuestionAnsweringHandlerTests {
    static func module() throws -> ScriptModule {
        try ScriptModule(contentsOf: Fixtures.url("qa/qa_tiny.pt"))
    }

    // MARK: Parity with the transformers pipeline

    /// Every answer, score (to 1e-4) and character span equals the pipeline's over the same tiny
    /// model, requests batched 12 at a time (windows of several requests in one forward). Where the
    /// pipeline's best two answers are closer than float32 noise (padding changes the last bits of
    /// the logits), either is accepted.
    @Test func answersMatchThePipeline() throws {
        let fixture = try #require(QuestionAnsweringFixture.loaded)
        let module = try Self.module()
        var compared = 0, windowed = 0, nearTies = 0, largest: Double = 0
        for setting in fixture.settings {
            let handler = try setting.handler()
            let cases = setting.cases.filter { $0.answer != nil }
            for start in stride(from: 0, to: cases.count, by: 12) {
                let chunk = cases[start..<min(start + 12, cases.count)]
                let responses = try serve(try chunk.map { try questionRequest($0.question, $0.context) }, with: handler, module: module)
                for (item, response) in zip(chunk, responses) {
                    let want = try #require(item.answer)
                    let got = try answer(try json(response))
                    let tied = item.runnerUp.map { abs($0.score - want.score) < 1e-5 } ?? false
                    if tied, let runnerUp = item.runnerUp, !same(got, want) {
                        #expect(same(got, runnerUp), "\(setting.name): \(item.question) | got \(got), want \(want) or \(runnerUp)")
                        nearTies += 1
                    } else {
                        #expect(same(got, want), "\(setting.name): \(item.question) | \(item.context.prefix(60)) | got \(got), want \(want)")
                        largest = max(largest, abs(got.score - want.score))
                    }
                    compared += 1
                    if (item.windows?.count ?? 0) > 1 { windowed += 1 }
                }
            }
        }
        #expect(compared >= 200 && windowed >= 50, "\(compared) answers, \(windowed) of several windows")
        print("question_answering parity: \(compared) answers (\(windowed) of several windows) equal the pipeline's; "
              + "largest score difference \(largest); \(nearTies) near-ties took the runner-up")
    }

    /// `decoding: argmax` gives the MLflow write-up's answers: argmax of start and of end logits over the first
    /// window, the pieces between as convert_tokens_to_string joins them.
    @Test func argmaxDecodingMatchesTheWriteUp() throws {
        let fixture = try #require(QuestionAnsweringFixture.loaded)
        let module = try Self.module()
        var compared = 0, skipped = 0
        for setting in fixture.settings {
            let handler = try setting.handler(decoding: .argmax)
            let cases = setting.cases.filter { $0.argmax != nil }
            for start in stride(from: 0, to: cases.count, by: 16) {
                let chunk = cases[start..<min(start + 16, cases.count)]
                let requests = try chunk.map { try questionRequest($0.question, $0.context) }
                // One window per pair, whatever the context's length.
                #expect(try requests.allSatisfy { try handler.preprocess($0).rows == 1 })
                for (item, response) in zip(chunk, try serve(requests, with: handler, module: module)) {
                    let want = try #require(item.argmax)
                    let object = try #require(try json(response) as? [String: String])
                    guard want.margin > 1e-4 else {
                        skipped += 1
                        continue
                    }
                    #expect(object == ["answer": want.answer], "\(setting.name): \(item.question) | \(item.context.prefix(60))")
                    compared += 1
                }
            }
        }
        #expect(compared >= 200, "\(compared) compared, \(skipped) with logits too close to call")
        print("question_answering argmax decoding: \(compared) answers equal the write-up's decoding; \(skipped) left out (logit margin <= 1e-4)")
    }

    /// The write-up's example through its own request form (`text` for the context), as a list.
    @Test func listsAnswerListsInOrder() throws {
        let fixture = try #require(QuestionAnsweringFixture.loaded)
        let setting = try #require(fixture.settings.first { $0.name == "windows" })
        let cases = Array(setting.cases.prefix(3))
        #expect(cases.map(\.context) == Array(repeating: "My name is Alex, I am 32 and live in Copenhagen.", count: 3))
        let body = try JSONSerialization.data(withJSONObject: cases.map { ["question": $0.question, "text": $0.context] })
        for decoding in QuestionAnsweringSpec.Decoding.allCases {
            let handler = try setting.handler(decoding: decoding)
            let response = try serve([InferenceRequest(body: [UInt8](body))], with: handler, module: try Self.module())[0]
            #expect(response.contentType == "application/json")
            let list = try #require(try json(response) as? [Any])
            try #require(list.count == 3)
            for (item, value) in zip(cases, list) {
                if decoding == .pipeline {
                    #expect(same(try answer(value), try #require(item.answer)))
                } else {
                    #expect(value as? [String: String] == ["answer": try #require(item.argmax).answer])
                }
            }
        }
    }

    @Test func exampleInputsRunThroughTheModel() throws {
        let handler = try QuestionAnsweringHandler(spec: QuestionAnsweringSpec(maxLength: 64), vocabulary: Fixtures.url("tokenizer/vocab.txt"))
        let inputs = try handler.exampleInputs(batchSize: 3)
        #expect(inputs.map(\.shape) == [[3, 64], [3, 64], [3, 64]])
        guard case .tuple(let outputs) = try Self.module().forward(inputs) else {
            Issue.record("the model returns a tuple")
            return
        }
        #expect(outputs.compactMap(\.firstTensor).map(\.shape) == [[3, 64], [3, 64]])
    }

    // MARK: Output

    @Test func outputFormsAndModelFailures() throws {
        let handler = try QuestionAnsweringHandler(spec: QuestionAnsweringSpec(maxLength: 16, docStride: 4, maxAnswerLength: 2),
                                                   vocabulary: Fixtures.url("tokenizer/vocab.txt"))
        // [CLS] who ? [SEP] alex lives here . [SEP]: rows of 9 tokens, padded to 16.
        let input = try handler.preprocess(try questionRequest("who?", "Alex lives here."))
        #expect(input.rows == 1)
        var start = [Float](repeating: 0, count: 16)
        var end = [Float](repeating: 0, count: 16)
        start[4] = 9  // alex
        end[6] = 9    // here: the span alex…here is 3 tokens, past maxAnswerLength 2
        end[5] = 8    // lives
        start[1] = 20 // the question cannot answer
        end[12] = 30  // nor can padding
        let logits = (try Tensor.copying(start, shape: [1, 16]), try Tensor.copying(end, shape: [1, 16]))
        let tuple = try handler.postprocess(.tuple([.tensor(logits.0), .tensor(logits.1)]), for: input)
        let got = try answer(try json(tuple))
        #expect(got.answer == "Alex lives" && got.start == 0 && got.end == 10)
        // The score is the span's start × end probability, masked softmax over the window.
        let masked = start.prefix(9).enumerated().map { [0, 4, 5, 6, 7].contains($0.offset) ? $0.element : -10000 }
        let endMasked = end.prefix(9).enumerated().map { [0, 4, 5, 6, 7].contains($0.offset) ? $0.element : -10000 }
        func softmax(_ values: [Float], at index: Int) -> Double {
            let top = values.max() ?? 0
            return Double(exp(values[index] - top) / values.map { exp($0 - top) }.reduce(0, +))
        }
        #expect(abs(got.score - softmax(masked, at: 4) * softmax(endMasked, at: 5)) < 1e-6)
        // A dict with HuggingFace's names answers the same.
        let dict = ModuleOutput.dict([("end_logits", .tensor(logits.1)), ("start_logits", .tensor(logits.0))])
        #expect(try handler.postprocess(dict, for: input) == tuple)
        #expect(throws: ModelServerError.modelFailure(
            "question_answering expects the model to return (start_logits, end_logits) or a dict with start_logits and end_logits, got tensor [1, 16]")) {
            try handler.postprocess(.tensor(logits.0), for: input)
        }
        let short = try Tensor.copying([Float](repeating: 0, count: 8), shape: [1, 8])
        #expect(throws: ModelServerError.modelFailure("question_answering expects start logits of shape [1, 16], got [1, 8]")) {
            try handler.postprocess(.tuple([.tensor(short), .tensor(logits.1)]), for: input)
        }
        var nan = start
        nan[5] = .nan
        #expect(throws: ModelServerError.modelFailure("the model returned logits that are not finite (NaN or infinity)")) {
            try handler.postprocess(.tuple([.tensor(try Tensor.copying(nan, shape: [1, 16])), .tensor(logits.1)]), for: input)
        }
    }

    /// A context with no tokens (whitespace, control characters) has only `[CLS]`, whose
    /// probability the pipeline zeroes: the answer is empty, at 0, with score 0.
    @Test func contextWithoutTokensAnswersNothing() throws {
        let handler = try QuestionAnsweringHandler(spec: QuestionAnsweringSpec(maxLength: 16), vocabulary: Fixtures.url("tokenizer/vocab.txt"))
        let input = try handler.preprocess(try questionRequest("what?", " \u{1}\t "))
        let logits = try Tensor.copying((0..<16).map(Float.init), shape: [1, 16])
        let response = try handler.postprocess(.tuple([.tensor(logits), .tensor(logits)]), for: input)
        #expect(String(decoding: response.body, as: UTF8.self) == "{\"answer\":\"\",\"score\":0.0,\"start\":0,\"end\":0}")
    }

    // MARK: Requests

    @Test func requestForms() throws {
        func pairs(_ body: String) throws -> ([QuestionAnsweringPair], Bool) {
            let (pairs, isList) = try QuestionAnsweringInput.pairs(of: InferenceRequest(body: Array(body.utf8), contentType: "text/plain"))
            return (pairs, isList)
        }
        #expect(try pairs("{\"question\": \"q\", \"context\": \"c\"}") == ([QuestionAnsweringPair(question: "q", context: "c")], false))
        #expect(try pairs("{\"question\": \"q\", \"text\": \"c\", \"id\": 7}") == ([QuestionAnsweringPair(question: "q", context: "c")], false))
        #expect(try pairs(" [{\"question\": \"a\", \"text\": \"b\"}, {\"question\": \" \", \"context\": \"d\"}]")
            == ([QuestionAnsweringPair(question: "a", context: "b"), QuestionAnsweringPair(question: " ", context: "d")], true))
    }

    @Test func badRequestsNameWhatIsWrong() throws {
        func refusal(_ body: String) -> ModelServerError? {
            do {
                _ = try QuestionAnsweringInput.pairs(of: InferenceRequest(body: Array(body.utf8)))
                return nil
            } catch {
                return error
            }
        }
        let form = "send {\"question\": \"…\", \"context\": \"…\"} or a list of those"
        #expect(refusal("") == .invalidInput("empty body: \(form)"))
        #expect(refusal("What is my name?") == .badRequest("the body is not JSON: \(form)"))
        #expect(refusal("\"text\"") == .badRequest("the JSON body is neither an object nor a list: \(form)"))
        #expect(refusal("{\"context\": \"c\"}") == .badRequest("the JSON body has no \"question\""))
        #expect(refusal("{\"question\": \"q\"}") == .badRequest("the JSON body has no \"context\" (or \"text\")"))
        #expect(refusal("{\"question\": \"q\", \"context\": \"c\", \"text\": \"t\"}")
            == .badRequest("the JSON body has both \"context\" and \"text\"; send one"))
        #expect(refusal("{\"question\": 3, \"context\": \"c\"}") == .badRequest("\"question\" of the JSON body must be a string"))
        #expect(refusal("{\"question\": \"q\", \"text\": null}") == .badRequest("\"text\" of the JSON body must be a string"))
        #expect(refusal("{\"question\": \"\", \"context\": \"c\"}") == .invalidInput("\"question\" of the JSON body is empty"))
        #expect(refusal("[{\"question\": \"q\", \"context\": \"c\"}, {\"question\": \"q\"}]")
            == .badRequest("item 1 of the list has no \"context\" (or \"text\")"))
        #expect(refusal("[{\"question\": \"q\", \"context\": \"c\"}, 5]") == .badRequest("item 1 of the list is not an object: \(form)"))
        #expect(refusal("[]") == .badRequest("the list must hold 1 to 64 questions, got 0"))
        #expect(refusal("7") == .badRequest("the JSON body is neither an object nor a list: \(form)"))
        let many = try JSONSerialization.data(withJSONObject: Array(repeating: ["question": "q", "context": "c"], count: 65))
        #expect(refusal(String(decoding: many, as: UTF8.self)) == .badRequest("the list must hold 1 to 64 questions, got 65"))
    }

    @Test func questionsTooLongAndContextsTooLongAreRefused() throws {
        let handler = try QuestionAnsweringHandler(spec: QuestionAnsweringSpec(maxLength: 16, docStride: 4),
                                                   vocabulary: Fixtures.url("tokenizer/vocab.txt"))
        let long = String(repeating: "word ", count: 40)
        // 8 question tokens leave 5 for the context: more than the stride, so windows work.
        #expect(try handler.preprocess(try questionRequest("a b c d e f g h", long)).rows == 36)
        // 9 leave 4, no more than the stride.
        let message = "the question is 9 tokens long, too long for this model's windows (maxLength 16, docStride 4): "
            + "with a context that does not fit beside it, a question may have at most 8 tokens"
        #expect(throws: ModelServerError.invalidInput(message)) { try handler.preprocess(try questionRequest("a b c d e f g h i", long)) }
        // ... unless the context fits beside it.
        #expect(try handler.preprocess(try questionRequest("a b c d e f g h i", "word")).rows == 1)
        let list = try JSONSerialization.data(withJSONObject: [["question": "q", "context": "c"], ["question": "a b c d e f g h i", "context": long]])
        #expect(throws: ModelServerError.invalidInput("item 1 of the list: " + message)) {
            try handler.preprocess(InferenceRequest(body: [UInt8](list)))
        }
        let huge = String(repeating: "word ", count: 2000)
        #expect(throws: ModelServerError.invalidInput("the contexts need more than 128 windows of 16 tokens (docStride 4); "
                + "send shorter contexts or fewer questions per request")) {
            try handler.preprocess(try questionRequest("q", huge))
        }
        // argmax keeps one window however long the context is.
        let argmax = try QuestionAnsweringHandler(spec: QuestionAnsweringSpec(maxLength: 16, docStride: 4, decoding: .argmax),
                                                  vocabulary: Fixtures.url("tokenizer/vocab.txt"))
        #expect(try argmax.preprocess(try questionRequest("q", huge)).rows == 1)
    }

    // MARK: Spec

    @Test func specKeysDefaultsAndRanges() throws {
        let defaults = try HandlerSpec.parse(yaml: "kind: question_answering\n", file: "qa.yaml")
        #expect(defaults == .questionAnswering(QuestionAnsweringSpec()))
        #expect(QuestionAnsweringSpec().maxLength == 384 && QuestionAnsweringSpec().docStride == 128
                && QuestionAnsweringSpec().maxAnswerLength == 15 && QuestionAnsweringSpec().decoding == .pipeline
                && QuestionAnsweringSpec().modelInputs == [.inputIds, .attentionMask, .tokenTypeIds])
        let yaml = """
            kind: question_answering
            vocab: bert/vocab.txt
            lowercase: false
            maxLength: 256
            docStride: 64
            maxAnswerLength: 30
            decoding: argmax
            modelInputs: [input_ids, token_type_ids, attention_mask]
            """
        let spec = try HandlerSpec.parse(yaml: yaml, file: "qa.yaml")
        #expect(spec == .questionAnswering(QuestionAnsweringSpec(
            vocab: "bert/vocab.txt", lowercase: false, maxLength: 256, docStride: 64, maxAnswerLength: 30, decoding: .argmax,
            modelInputs: [.inputIds, .tokenTypeIds, .attentionMask])))
        #expect(spec.referencedFiles.map(\.file) == ["bert/vocab.txt"])
        #expect(spec.resolvedYAML == """
            kind: question_answering
            vocab: bert/vocab.txt
            lowercase: false
            stripAccents: false
            maxLength: 256
            docStride: 64
            maxAnswerLength: 30
            decoding: argmax
            modelInputs: [input_ids, token_type_ids, attention_mask]

            """)
        func issues(_ body: String) -> [String] {
            do {
                _ = try HandlerSpec.parse(yaml: "kind: question_answering\n" + body, file: "qa.yaml")
                return []
            } catch ArchiveError.invalidConfig(_, let issues) {
                return issues.map(\.description)
            } catch {
                return ["\(error)"]
            }
        }
        #expect(issues("docStride: 12\nmaxLength: 16\n").isEmpty)
        #expect(issues("maxLength: 16\ndocStride: 13\n")
            == ["3: docStride is 13, too large for maxLength 16; expected an integer from 0 to maxLength - 4 (12)"])
        #expect(issues("maxLength: 3\n").first?.contains("maxLength") == true)
        #expect(issues("maxAnswerLength: 0\n").first?.contains("maxAnswerLength") == true)
        #expect(issues("decoding: beam\n").first?.contains("pipeline or argmax") == true)
        #expect(issues("modelInputs: [attention_mask]\n").first?.contains("lacks input_ids") == true)
        #expect(issues("modelInputs: [input_ids, tokens]\n").first?.contains("\"tokens\"") == true)
        #expect(issues("labels: x.json\n").first?.contains("not a known key") == true)
        #expect(issues("vocab: ../vocab.txt\n").first?.contains("leaves the archive") == true)
        #expect(try HandlerKind(handlerName: "question_answering") == .questionAnswering)
        #expect(HandlerKind.builtInList.hasSuffix(", question_answering"))
    }
}
