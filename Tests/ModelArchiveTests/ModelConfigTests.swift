import Foundation
import Testing
import TestFixtures

@testable import ModelArchive

@Suite struct ModelConfigTests {
    @Test func parsesEveryKey() throws {
        let config = try ModelConfig.parse(yaml: """
            minWorkers: 1
            maxWorkers: 4
            batchSize: 8
            maxBatchDelay: 50
            responseTimeout: 30
            startupTimeout: 300
            deviceType: gpu
            deviceIds: [0, 1]
            optimize: false
            shareModule: true
            intraOpThreads: 2
            precision: bfloat16
            handler:
              kind: image_segmenter
              inputSize: [96, 128]
              resize: nearest
              mean: [0.5]
              std: [0.25]
              numClasses: 32
              labels: index_to_name.json
              output: overlay
            """)
        #expect(config.settings.minWorkers == 1 && config.settings.maxWorkers == 4 && config.settings.batchSize == 8)
        #expect(config.settings.maxBatchDelay == 50 && config.settings.responseTimeout == 30 && config.settings.startupTimeout == 300)
        #expect(config.deviceType == .gpu && config.deviceIds == [0, 1])
        #expect(config.optimizesAtLoad == false && config.sharesModule && config.intraOpThreads == 2)
        #expect(config.precision == .bfloat16)
        #expect(config.handler == .imageSegmenter(ImageSegmenterSpec(
            inputSize: ImageSize(height: 96, width: 128), resize: .nearest, mean: [0.5], std: [0.25],
            numClasses: 32, labels: "index_to_name.json", output: .overlay)))
        #expect(config.warnings.isEmpty)
    }

    @Test func emptyConfigHasDefaults() throws {
        let config = try ModelConfig.parse(yaml: "# nothing\n")
        #expect(config == ModelConfig())
        #expect(config.optimizesAtLoad && config.sharesModule)
    }

    @Test func errorsNameKeyLineAndExpectation() throws {
        let error = expectArchiveError {
            _ = try ModelConfig.parse(yaml: """
                batchSize: 0
                maxBatchDelay: soon
                deviceType: tpu
                handler:
                  kind: image_segmenter
                  inputSize: [96]
                  numClasses: 300
                  std: [0.2, 0, 0.2]
                """, file: "model-config.yaml")
        }
        guard case .invalidConfig(let file, let issues) = error else {
            Issue.record("expected invalidConfig, got \(String(describing: error))")
            return
        }
        #expect(file == "model-config.yaml")
        #expect(issues.map(\.key) == ["batchSize", "maxBatchDelay", "deviceType", "handler.inputSize",
                                      "handler.numClasses", "handler.std"])
        #expect(issues.map(\.line) == [1, 2, 3, 6, 7, 8])
        #expect(issues[0].description == "1: batchSize is 0, out of range; expected an integer from 1 to 1024")
        #expect(issues[2].expected == "cpu or gpu")
        #expect(issues.allSatisfy { $0.expected != nil })
        #expect(error!.description.contains("model-config.yaml:6: handler.inputSize has 1 item"))
    }

    @Test func precisionIsOneOfThreeTypes() {
        let error = expectArchiveError { _ = try ModelConfig.parse(yaml: "precision: int8\n") }
        guard case .invalidConfig(_, let issues) = error else {
            Issue.record("expected invalidConfig, got \(String(describing: error))")
            return
        }
        #expect(issues.map(\.key) == ["precision"])
        #expect(issues.first?.expected == "float32 or bfloat16 or float16")
    }

    @Test func unknownHandlerKeysAreErrors() {
        let error = expectArchiveError {
            _ = try ModelConfig.parse(yaml: "handler:\n  kind: text_classifier\n  vocabulary: vocab.txt\n")
        }
        #expect(error == .invalidConfig(file: "model-config.yaml", issues: [
            ConfigIssue(line: 3, key: "handler.vocabulary", problem: "is not a known key",
                        expected: "one of the text_classifier keys: kind, labels, lowercase, maxLength, modelInputs, "
                            + "stripAccents, tokenizer, vocab"),
        ]))
    }

    @Test func unknownAndTorchServeTopLevelKeysAreWarnings() throws {
        let config = try ModelConfig.parse(yaml: "batchSize: 2\nparallelType: pp\ntorchrun:\n  nproc_per_node: 2\nbatchsize: 3\n")
        #expect(config.settings.batchSize == 2)
        #expect(config.warnings.map(\.key) == ["parallelType", "torchrun", "batchsize"])
        #expect(config.warnings.map(\.line) == [2, 3, 5])
        #expect(config.warnings[0].problem == "is a TorchServe setting this server ignores")
        #expect(config.warnings[2].problem == "is not a known key and was ignored")
    }

    @Test func handlerKindComesFromManifestOrSection() throws {
        let fromManifest = try ModelConfig.parse(yaml: "handler:\n  topk: 3\n", handlerKind: .imageClassifier)
        #expect(fromManifest.handler == .imageClassifier(ImageClassifierSpec(topk: 3)))

        let conflict = expectArchiveError {
            _ = try ModelConfig.parse(yaml: "handler:\n  kind: text_classifier\n", handlerKind: .imageSegmenter)
        }
        #expect(conflict?.description.contains("handler.kind is text_classifier but the manifest's handler is image_segmenter") == true)

        let noKind = expectArchiveError { _ = try ModelConfig.parse(yaml: "handler:\n  topk: 3\n") }
        #expect(noKind?.description.contains("handler.kind is missing") == true)
    }

    @Test func pythonHandlerKindIsRefused() {
        let error = expectArchiveError { _ = try ModelConfig.parse(yaml: "handler:\n  kind: my_handler.py\n") }
        #expect(error?.description.contains("Python handlers are not run by this server") == true)
    }

    @Test func yamlSyntaxErrorsHaveLines() {
        let error = expectArchiveError { _ = try ModelConfig.parse(yaml: "batchSize: 1\nhandler: [\n") }
        guard case .invalidConfig(_, let issues) = error else { Issue.record("\(String(describing: error))"); return }
        #expect(issues.count == 1 && issues[0].line != nil && issues[0].problem.hasPrefix("is not valid YAML"))
    }

    @Test func duplicateKeysAreErrors() {
        let error = expectArchiveError { _ = try ModelConfig.parse(yaml: "batchSize: 1\nbatchSize: 2\n") }
        #expect(error == .invalidConfig(file: "model-config.yaml", issues: [
            ConfigIssue(line: 2, key: "batchSize", problem: "appears twice", expected: "each key once"),
        ]))
    }

    @Test func labelsMustStayInTheArchive() {
        let error = expectArchiveError {
            _ = try ModelConfig.parse(yaml: "handler:\n  kind: image_classifier\n  labels: ../../etc/passwd\n")
        }
        #expect(error?.description.contains("handler.labels is \"../../etc/passwd\", which leaves the archive") == true)
    }

    @Test func textClassifierDefaultsAndInputs() throws {
        let config = try ModelConfig.parse(yaml: "handler:\n  kind: text_classifier\n  lowercase: false\n")
        #expect(config.handler == .textClassifier(TextClassifierSpec(
            tokenizer: .wordpiece, vocab: "vocab.txt", maxLength: 128, lowercase: false, stripAccents: false,
            modelInputs: [.inputIds, .attentionMask])))

        let bag = try ModelConfig.parse(yaml: "handler:\n  kind: text_classifier\n  tokenizer: word_vocab\n")
        guard case .textClassifier(let spec) = bag.handler else { Issue.record("not text"); return }
        #expect(spec.vocab == "vocab.json" && spec.modelInputs == [.tokens, .offsets])

        let wrong = expectArchiveError {
            _ = try ModelConfig.parse(yaml: "handler:\n  kind: text_classifier\n  modelInputs: [attention_mask, offsets]\n")
        }
        #expect(wrong?.description.contains("handler.modelInputs has \"offsets\"") == true)
    }

    @Test func committedHandlerSpecsParse() throws {
        let handlers = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("handlers")
        for kind in HandlerKind.allCases {
            let spec = try HandlerSpec.load(contentsOf: handlers.appendingPathComponent("\(kind.rawValue).yaml"))
            #expect(spec.kind == kind)
        }
    }
}

@Suite struct HandlerKindTests {
    @Test func builtInsAreKnown() throws {
        #expect(try HandlerKind(handlerName: "image_segmenter") == .imageSegmenter)
        #expect(try HandlerKind(handlerName: "text_classifier") == .textClassifier)
        #expect(try HandlerKind(handlerName: "image_classifier") == .imageClassifier)
    }

    @Test func pythonHandlersAreRefused() {
        for name in ["handler.py", "my_module:handle", "custom_handler.py:entry"] {
            #expect(throws: ArchiveError.pythonHandler(name)) { try HandlerKind(handlerName: name) }
        }
        let message = ArchiveError.pythonHandler("handler.py").description
        #expect(message.contains("Python handlers are not run by this server"))
        #expect(message.contains("image_segmenter, text_classifier, image_classifier, object_detector"))
    }

    @Test func unknownHandlersAreRefused() throws {
        #expect(throws: ArchiveError.unknownHandler("image_detector")) { try HandlerKind(handlerName: "image_detector") }
        #expect(try HandlerKind(handlerName: "object_detector") == .objectDetector, "TorchServe's fourth default handler")
    }
}
