import Foundation
import ModelArchive
import TestFixtures
import Testing
import Torch
@testable import ServerCore

/// Expected outputs of the tiny BERT and the EmbeddingBag fixtures, made in Python.
private struct ExpectedOutputs: Decodable {
    struct Case: Decodable {
        var text: String
        var inputIds: [Int64]?
        var attentionMask: [Int64]?
        var ids: [Int64]?
        var logits: [Float]
        var probabilities: [Float]
    }

    var maxLength: Int?
    var labels: [String]?
    var cases: [Case]

    static func load(_ path: String) throws -> ExpectedOutputs {
        try JSONDecoder().decode(ExpectedOutputs.self, from: Data(contentsOf: Fixtures.url(path)))
    }
}

/// Runs requests as the worker does: preprocess each, concatenate along dimension 0, one forward,
/// split the output by rows, postprocess each.
private func serve(_ requests: [InferenceRequest], with handler: TextClassificationHandler, module: ScriptModule) throws -> [InferenceResponse] {
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

/// A JSON response object as ordered (label, probability) pairs.
private func orderedPairs(_ json: Substring) -> [(String, Float)] {
    let inner = json.dropFirst().dropLast()
    guard !inner.isEmpty else { return [] }
    return inner.split(separator: ",").map { member in
        let parts = member.split(separator: ":", maxSplits: 1)
        return (String(parts[0].dropFirst().dropLast()), Float(String(parts[1]))!)
    }
}

private func text(_ response: InferenceResponse) -> String {
    String(decoding: response.body, as: UTF8.self)
}

private func request(_ body: String, contentType: String? = nil) -> InferenceRequest {
    InferenceRequest(body: Array(body.utf8), contentType: contentType)
}

@Suite struct TextClassificationHandlerTests {
    static let bertSpec = TextClassifierSpec(tokenizer: .wordpiece, maxLength: 32, labels: "index_to_name.json")
    static let bagSpec = TextClassifierSpec(tokenizer: .wordVocab, vocab: "bag_vocab.json", maxLength: 128)

    /// What a user reads who asks an EmbeddingBag model for batches.
    static let wordVocabularyBatchMessage = "text_classifier with tokenizer word_vocab runs with batch size 1 (an EmbeddingBag's "
        + "offsets of several requests cannot be joined), but batch size 2 was asked for; set batchSize: 1"

    static func bertHandler() throws -> TextClassificationHandler {
        try TextClassificationHandler(
            spec: bertSpec, vocabulary: Fixtures.url("tokenizer/vocab.txt"), labels: Fixtures.url("text/index_to_name.json"))
    }

    static func bagHandler() throws -> TextClassificationHandler {
        try TextClassificationHandler(spec: bagSpec, vocabulary: Fixtures.url("text/bag_vocab.json"), labels: nil)
    }

    // MARK: End to end

    @Test func tinyBertGivesPythonsProbabilitiesInOrder() throws {
        let expected = try ExpectedOutputs.load("text/bert_tiny_expected.json")
        #expect(expected.maxLength == Self.bertSpec.maxLength)
        let handler = try Self.bertHandler()
        let module = try ScriptModule(contentsOf: Fixtures.url("models/text_bert_tiny.pt"))
        let labels = try #require(expected.labels)
        // One request per text, all in one batch.
        let responses = try serve(expected.cases.map { request($0.text, contentType: "text/plain") }, with: handler, module: module)
        for (item, response) in zip(expected.cases, responses) {
            let prepared = try handler.preprocess(request(item.text))
            #expect(try prepared.tensors[0].toArray(of: Int64.self) == item.inputIds)
            #expect(try prepared.tensors[1].toArray(of: Int64.self) == item.attentionMask)
            #expect(response.contentType == "application/json")
            let pairs = orderedPairs(Substring(text(response)))
            let order = item.probabilities.indices.sorted {
                item.probabilities[$0] > item.probabilities[$1] || (item.probabilities[$0] == item.probabilities[$1] && $0 < $1)
            }
            #expect(pairs.map(\.0) == order.map { labels[$0] }, "\(item.text)")
            for (label, probability) in pairs {
                let index = try #require(labels.firstIndex(of: label))
                #expect(abs(probability - item.probabilities[index]) <= 1e-5, "\(item.text): \(label)")
            }
        }
    }

    @Test func inputsListGivesAnArrayInOrder() throws {
        let expected = try ExpectedOutputs.load("text/bert_tiny_expected.json")
        let handler = try Self.bertHandler()
        let module = try ScriptModule(contentsOf: Fixtures.url("models/text_bert_tiny.pt"))
        let texts = expected.cases.map(\.text)
        let list = String(decoding: try JSONSerialization.data(withJSONObject: ["inputs": Array(texts.prefix(3))]), as: UTF8.self)
        let single = String(decoding: try JSONSerialization.data(withJSONObject: ["inputs": [texts[3]]]), as: UTF8.self)
        let object = String(decoding: try JSONSerialization.data(withJSONObject: ["text": texts[4]]), as: UTF8.self)
        // curl -d sends form content type; the body is still recognised as JSON.
        let responses = try serve([
            request(list, contentType: "application/json"),
            request(single, contentType: "application/x-www-form-urlencoded"),
            request(object),
        ], with: handler, module: module)
        let first = text(responses[0])
        #expect(first.hasPrefix("[{") && first.hasSuffix("}]"))
        let objects = first.dropFirst().dropLast().split(separator: "}").map { $0.hasPrefix(",") ? $0.dropFirst() + "}" : $0 + "}" }
        #expect(objects.count == 3)
        for (index, json) in objects.enumerated() {
            let pairs = orderedPairs(json)
            let labels = try #require(expected.labels)
            for (label, probability) in pairs {
                let classIndex = try #require(labels.firstIndex(of: label))
                #expect(abs(probability - expected.cases[index].probabilities[classIndex]) <= 1e-5)
            }
        }
        #expect(text(responses[1]).hasPrefix("[{") && text(responses[1]).hasSuffix("}]"))
        #expect(text(responses[2]).hasPrefix("{") && !text(responses[2]).hasPrefix("[{"))
    }

    @Test func embeddingBagRequestWithSeveralTexts() throws {
        let expected = try ExpectedOutputs.load("text/bag_expected.json")
        let handler = try Self.bagHandler()
        let module = try ScriptModule(contentsOf: Fixtures.url("models/text_bag.pt"))
        let body = String(decoding: try JSONSerialization.data(withJSONObject: ["inputs": expected.cases.map(\.text)]), as: UTF8.self)
        let prepared = try handler.preprocess(request(body, contentType: "application/json"))
        #expect(prepared.rows == expected.cases.count)
        #expect(try prepared.tensors[0].toArray(of: Int64.self) == expected.cases.flatMap { $0.ids ?? [] })
        let response = try serve([request(body, contentType: "application/json")], with: handler, module: module)[0]
        let json = text(response)
        let objects = json.dropFirst().dropLast().split(separator: "}").map { $0.hasPrefix(",") ? $0.dropFirst() + "}" : $0 + "}" }
        #expect(objects.count == expected.cases.count)
        for (item, object) in zip(expected.cases, objects) {
            for (label, probability) in orderedPairs(object) {
                // No labels file: the class index is the label.
                let index = try #require(Int(label))
                #expect(abs(probability - item.probabilities[index]) <= 1e-5)
            }
        }
    }

    @Test func wordVocabularyModelsRunWithBatchSizeOne() throws {
        let handler = try Self.bagHandler()
        #expect(try handler.exampleInputs(batchSize: 1).count == 2)
        #expect(throws: ModelServerError.invalidModel(Self.wordVocabularyBatchMessage)) { try handler.exampleInputs(batchSize: 2) }
    }

    @Test func exampleInputsRunThroughTheModel() throws {
        let handler = try Self.bertHandler()
        let module = try ScriptModule(contentsOf: Fixtures.url("models/text_bert_tiny.pt"))
        let inputs = try handler.exampleInputs(batchSize: 3)
        #expect(inputs.map(\.shape) == [[3, 32], [3, 32]])
        #expect(try module.forward(inputs).firstTensor?.shape == [3, 4])
    }

    // MARK: Request parsing

    @Test func requestForms() throws {
        #expect(try TextClassificationHandler.texts(of: request("plain text")) == (["plain text"], false))
        #expect(try TextClassificationHandler.texts(of: request("{\"text\": \"hi\"}")) == (["hi"], false))
        #expect(try TextClassificationHandler.texts(of: request(" {\"inputs\": [\"a\", \"b\"]}")) == (["a", "b"], true))
        // An object without either key, sent without a JSON content type, is just text.
        #expect(try TextClassificationHandler.texts(of: request("{\"other\": 1}")) == (["{\"other\": 1}"], false))
        #expect(try TextClassificationHandler.texts(of: request("{not json")) == (["{not json"], false))
        #expect(try TextClassificationHandler.texts(of: request("{\"text\":\"x\"}", contentType: "Application/JSON; charset=utf-8")) == (["x"], false))
        #expect(TextClassificationHandler.isJSON("application/vnd.api+json"))
        #expect(!TextClassificationHandler.isJSON("text/plain"))
    }

    @Test func badRequests() throws {
        func error(_ body: [UInt8], _ contentType: String? = nil) -> ModelServerError? {
            do {
                _ = try TextClassificationHandler.texts(of: InferenceRequest(body: body, contentType: contentType))
                return nil
            } catch {
                return error
            }
        }
        func isInvalidInput(_ error: ModelServerError?) -> Bool {
            if case .invalidInput? = error { return true }
            return false
        }
        func isBadRequest(_ error: ModelServerError?) -> Bool {
            if case .badRequest? = error { return true }
            return false
        }
        #expect(isInvalidInput(error([])))
        #expect(isInvalidInput(error([0x68, 0xFF, 0x69])))
        #expect(isInvalidInput(error(Array(" \n\t ".utf8))))
        #expect(isInvalidInput(error(Array("{\"text\": \"\"}".utf8))))
        #expect(isInvalidInput(error(Array("{\"inputs\": [\"ok\", \"  \"]}".utf8))))
        #expect(isBadRequest(error(Array("not json".utf8), "application/json")))
        #expect(isBadRequest(error(Array("[\"a\"]".utf8), "application/json")))
        #expect(isBadRequest(error(Array("{\"texts\": \"a\"}".utf8), "application/json")))
        #expect(isBadRequest(error(Array("{\"text\": 5}".utf8))))
        #expect(isBadRequest(error(Array("{\"inputs\": []}".utf8))))
        #expect(isBadRequest(error(Array("{\"inputs\": [\"a\", 1]}".utf8))))
        #expect(isBadRequest(error(Array("{\"inputs\": \"a\"}".utf8))))
        #expect(isBadRequest(error(Array("{\"text\": \"a\", \"inputs\": [\"b\"]}".utf8))))
        let tooMany = try JSONSerialization.data(withJSONObject: ["inputs": Array(repeating: "x", count: 65)])
        #expect(isBadRequest(error(Array(tooMany))))
        let most = try JSONSerialization.data(withJSONObject: ["inputs": Array(repeating: "x", count: 64)])
        #expect(error(Array(most)) == nil)
    }

    // MARK: Output

    @Test func outputOrderAndFormat() throws {
        let handler = try TextClassificationHandler(
            spec: TextClassifierSpec(), wordPiece: try #require(MiniLMVocabulary.tokenizer),
            labels: ClassLabels(names: [0: "a\"b", 2: "c"]))
        // Ties: the lower index first; unnamed classes are called by their index.
        #expect(handler.labelObject([0.25, 0.5, 0.25]) == "{\"1\":0.5,\"a\\\"b\":0.25,\"c\":0.25}")
        #expect(handler.labelObject([1e-5, 0.99999]) == "{\"1\":0.99999,\"a\\\"b\":1e-05}")
        #expect(ClassProbabilities.jsonString("x\u{1}\n\\") == "\"x\\u0001\\n\\\\\"")

        let input = try handler.preprocess(request("{\"inputs\": [\"a\", \"b\"]}"))
        let logits = try Tensor.copying([Float(0), 1, 0, 1, 2, 3], shape: [2, 3])
        let response = try handler.postprocess(.tensor(logits), for: input)
        let probabilities = try logits.softmax(dim: 1).toArray(of: Float.self)
        #expect(text(response) == "[{\"1\":\(probabilities[1]),\"a\\\"b\":\(probabilities[0]),\"c\":\(probabilities[2])},"
                + "{\"c\":\(probabilities[5]),\"1\":\(probabilities[4]),\"a\\\"b\":\(probabilities[3])}]")
        // HuggingFace-style outputs: a dict with "logits".
        let dict = ModuleOutput.dict([("hidden", .tensor(try Tensor.copying([Float(0)], shape: [1]))), ("logits", .tensor(logits))])
        #expect(try handler.postprocess(dict, for: input) == response)
        // Wrong shapes and non-finite values are model failures.
        #expect(throws: ModelServerError.modelFailure("text_classifier expects (2, classes) logits, got shape [3]")) {
            try handler.postprocess(.tensor(try Tensor.copying([Float(1), 2, 3], shape: [3])), for: input)
        }
        let nan = try Tensor.copying([Float.nan, 0, 0, 1, 2, 3], shape: [2, 3])
        #expect(throws: ModelServerError.modelFailure("the model returned logits that are not finite (NaN or infinity)")) {
            try handler.postprocess(.tensor(nan), for: input)
        }
    }

    // MARK: Archives

    @Test func buildsFromAnArchive() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("textarchive-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        func makeArchive(model: String, files: [String: String], config: String) throws -> OpenedArchive {
            try? FileManager.default.removeItem(at: folder)
            try FileManager.default.createDirectory(at: folder.appendingPathComponent("MAR-INF"), withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: Fixtures.url(model), to: folder.appendingPathComponent("model.pt"))
            for (name, fixture) in files {
                try FileManager.default.copyItem(at: Fixtures.url(fixture), to: folder.appendingPathComponent(name))
            }
            try config.write(to: folder.appendingPathComponent("model-config.yaml"), atomically: true, encoding: .utf8)
            let manifest = """
                {"runtime": "python", "model": {"modelName": "text", "serializedFile": "model.pt",
                 "handler": "text_classifier", "modelVersion": "1.0", "configFile": "model-config.yaml"}}
                """
            try manifest.write(to: folder.appendingPathComponent("MAR-INF/MANIFEST.json"), atomically: true, encoding: .utf8)
            return try ArchiveReader.read(folder: folder)
        }
        let bert = try makeArchive(
            model: "models/text_bert_tiny.pt",
            files: ["vocab.txt": "tokenizer/vocab.txt", "index_to_name.json": "text/index_to_name.json"],
            config: "batchSize: 4\nhandler:\n  kind: text_classifier\n  maxLength: 32\n  labels: index_to_name.json\n")
        let handler = try HandlerFactory.make(bert, pixelLimit: 1 << 24)
        let prepared = try handler.preprocess(request("The team won"))
        #expect(prepared.tensors.map(\.shape) == [[1, 32], [1, 32]])

        let bag = "handler:\n  kind: text_classifier\n  tokenizer: word_vocab\n  vocab: vocab.json\n"
        #expect(throws: ModelServerError.invalidModel(Self.wordVocabularyBatchMessage)) {
            try HandlerFactory.make(
                try makeArchive(model: "models/text_bag.pt", files: ["vocab.json": "text/bag_vocab.json"], config: "batchSize: 2\n" + bag),
                pixelLimit: 1 << 24)
        }
        let bagHandler = try HandlerFactory.make(
            try makeArchive(model: "models/text_bag.pt", files: ["vocab.json": "text/bag_vocab.json"], config: bag), pixelLimit: 1 << 24)
        #expect(try bagHandler.preprocess(request("the game")).tensors.map(\.shape) == [[2], [1]])
        // A vocabulary the handler section names but the archive lacks (the archive reader notices first).
        #expect(throws: ArchiveError.missingFile(path: folder.path, file: "vocab.json", referencedBy: "model-config.yaml's handler.vocab")) {
            try HandlerFactory.make(try makeArchive(model: "models/text_bag.pt", files: [:], config: bag), pixelLimit: 1 << 24)
        }
    }
}

/// A text sample folder as scripts/samples/train_text_classifier.py leaves it (`model.pt`,
/// `vocab.txt`, `index_to_name.json`, `model-config.yaml`, `expected.json`): the server must give
/// the probabilities the script computed. The trained samples are not committed, so the same
/// check also runs on a folder of that layout made from the committed tiny-BERT fixtures.
@Suite struct TrainedTextClassifierSampleTests {
    struct Expected: Codable {
        var text: String
        var label: String
        var probabilities: [String: Float]
    }

    static let buildFolder = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scripts/samples/build", isDirectory: true)

    static func isBuilt(_ name: String) -> Bool {
        FileManager.default.fileExists(atPath: buildFolder.appendingPathComponent("\(name)/expected.json").path)
    }

    /// Reads the folder's `model-config.yaml` as the server does, serves every expected text in
    /// one batch, and compares each answer with what the script computed.
    static func checkServes(_ folder: URL, tolerance: Float) throws {
        let config = try ModelConfig.load(contentsOf: folder.appendingPathComponent(ModelConfig.defaultFileName), handlerKind: .textClassifier)
        guard case .textClassifier(let spec)? = config.handler else {
            Issue.record("\(folder.lastPathComponent): model-config.yaml has no text_classifier handler section")
            return
        }
        let handler = try TextClassificationHandler(
            spec: spec, vocabulary: folder.appendingPathComponent(spec.vocab), labels: spec.labels.map { folder.appendingPathComponent($0) })
        let module = try ScriptModule(contentsOf: folder.appendingPathComponent("model.pt"))
        let expected = try JSONDecoder().decode([Expected].self, from: Data(contentsOf: folder.appendingPathComponent("expected.json")))
        try #require(!expected.isEmpty, "\(folder.lastPathComponent): expected.json lists no texts")
        let responses = try serve(expected.map { request($0.text) }, with: handler, module: module)
        #expect(responses.count == expected.count)
        for (item, response) in zip(expected, responses) {
            let pairs = orderedPairs(Substring(text(response)))
            #expect(pairs.count == item.probabilities.count, "\(item.text.prefix(60))")
            #expect(pairs.first?.0 == item.probabilities.max { $0.value < $1.value }?.key, "\(item.text.prefix(60))")
            for (label, probability) in pairs {
                let want = try #require(item.probabilities[label], "\(item.text.prefix(60)): unexpected label \(label)")
                #expect(abs(probability - want) <= tolerance, "\(folder.lastPathComponent): \(item.text.prefix(60)) \(label)")
            }
        }
    }

    /// The script's layout made from the committed tiny BERT, its vocabulary, labels and the
    /// probabilities Python computed for it.
    @Test func servesASampleFolderMadeFromTheCommittedFixtures() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("text-sample-\(UUID().uuidString)", isDirectory: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for (name, fixture) in ["model.pt": "models/text_bert_tiny.pt", "vocab.txt": "tokenizer/vocab.txt",
                                "index_to_name.json": "text/index_to_name.json"] {
            try FileManager.default.copyItem(at: Fixtures.url(fixture), to: folder.appendingPathComponent(name))
        }
        let outputs = try ExpectedOutputs.load("text/bert_tiny_expected.json")
        let maxLength = try #require(outputs.maxLength)
        let config = """
            batchSize: 4
            handler:
              kind: text_classifier
              tokenizer: wordpiece
              vocab: vocab.txt
              maxLength: \(maxLength)
              lowercase: true
              modelInputs: [input_ids, attention_mask]
              labels: index_to_name.json

            """
        try config.write(to: folder.appendingPathComponent("model-config.yaml"), atomically: true, encoding: .utf8)
        let labels = try #require(outputs.labels)
        let expected = try outputs.cases.map { item in
            let best = try #require(item.probabilities.indices.max { item.probabilities[$0] < item.probabilities[$1] })
            return Expected(text: item.text, label: labels[best],
                            probabilities: Dictionary(uniqueKeysWithValues: zip(labels, item.probabilities)))
        }
        try JSONEncoder().encode(expected).write(to: folder.appendingPathComponent("expected.json"))
        try Self.checkServes(folder, tolerance: 1e-5)
    }

    @Test(.enabled(if: isBuilt("text"), "scripts/samples/build/text is not committed; train_text_classifier.py makes it"))
    func servesTheTrainedSample() throws {
        try Self.checkServes(Self.buildFolder.appendingPathComponent("text", isDirectory: true), tolerance: 1e-4)
    }

    @Test(.enabled(if: isBuilt("text-small"), "scripts/samples/build/text-small is not committed; train_text_classifier.py makes it"))
    func servesTheTrainedSmallSample() throws {
        try Self.checkServes(Self.buildFolder.appendingPathComponent("text-small", isDirectory: true), tolerance: 1e-4)
    }
}
