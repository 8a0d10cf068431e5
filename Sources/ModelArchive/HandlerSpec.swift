import Foundation
import Yams

/// The declarative pre- and post-processing of a built-in handler: the `handler:` section of
/// `model-config.yaml`, or a handler spec file such as `handlers/image_segmenter.yaml`.
public enum HandlerSpec: Equatable, Sendable, Codable {
    case imageSegmenter(ImageSegmenterSpec)
    case textClassifier(TextClassifierSpec)
    case imageClassifier(ImageClassifierSpec)
    case objectDetector(ObjectDetectorSpec)
    case questionAnswering(QuestionAnsweringSpec)

    public var kind: HandlerKind {
        switch self {
        case .imageSegmenter: return .imageSegmenter
        case .textClassifier: return .textClassifier
        case .imageClassifier: return .imageClassifier
        case .objectDetector: return .objectDetector
        case .questionAnswering: return .questionAnswering
        }
    }

    /// The spec used when `model-config.yaml` has no `handler:` section: every key at its default.
    public static func defaults(for kind: HandlerKind) -> HandlerSpec {
        switch kind {
        case .imageSegmenter: return .imageSegmenter(ImageSegmenterSpec())
        case .textClassifier: return .textClassifier(TextClassifierSpec())
        case .imageClassifier: return .imageClassifier(ImageClassifierSpec())
        case .objectDetector: return .objectDetector(ObjectDetectorSpec())
        case .questionAnswering: return .questionAnswering(QuestionAnsweringSpec())
        }
    }

    /// Files in the archive this spec names, with the key naming each (`handler.labels`).
    public var referencedFiles: [(key: String, file: String)] {
        switch self {
        case .imageSegmenter(let spec):
            return spec.labels.map { [("handler.labels", $0)] } ?? []
        case .textClassifier(let spec):
            return [("handler.vocab", spec.vocab)] + (spec.labels.map { [("handler.labels", $0)] } ?? [])
        case .imageClassifier(let spec):
            return spec.labels.map { [("handler.labels", $0)] } ?? []
        case .objectDetector(let spec):
            return spec.labels.map { [("handler.labels", $0)] } ?? []
        case .questionAnswering(let spec):
            return [("handler.vocab", spec.vocab)]
        }
    }

    /// Parses a handler spec file: a YAML mapping with `kind:` and the kind's keys.
    ///
    /// - Parameters:
    ///   - yaml: The file's text.
    ///   - file: The file name used in error messages.
    /// - Throws: ``ArchiveError/invalidConfig(file:issues:)`` naming each bad key and its line.
    public static func parse(yaml: String, file: String) throws -> HandlerSpec {
        let diagnostics = ConfigDiagnostics()
        var spec: HandlerSpec?
        if let root = YAMLDocument.root(of: yaml, diagnostics: diagnostics) {
            if case .mapping(let mapping) = root {
                spec = parse(YAMLFields(mapping, prefix: "", diagnostics: diagnostics), defaultKind: nil)
            } else {
                diagnostics.error("(document)", line: root.mark?.line, "is \(YAMLFields.render(root))",
                                  expected: "a mapping starting with `kind: \(HandlerKind.imageSegmenter.rawValue)`")
            }
        } else if diagnostics.errors.isEmpty {
            diagnostics.error("kind", line: nil, "is missing (the file is empty)", expected: HandlerKind.builtInList)
        }
        guard diagnostics.errors.isEmpty, let spec else {
            throw ArchiveError.invalidConfig(file: file, issues: diagnostics.sortedErrors)
        }
        return spec
    }

    /// Reads and parses a handler spec file.
    public static func load(contentsOf url: URL) throws -> HandlerSpec {
        let text = try FileIO.readText(url, role: "handler spec file", maxBytes: YAMLDocument.maxBytes)
        return try parse(yaml: text, file: url.lastPathComponent)
    }

    /// Reads a handler mapping whose kind comes from its `kind:` key, else from `defaultKind`.
    static func parse(_ fields: YAMLFields, defaultKind: HandlerKind?) -> HandlerSpec? {
        var kind = defaultKind
        if fields.node("kind") != nil {
            guard let name = fields.string("kind", expected: HandlerKind.builtInList), let node = fields.node("kind") else {
                return nil
            }
            do {
                kind = try HandlerKind(handlerName: name)
            } catch {
                let problem = HandlerKind.isPythonHandler(name)
                    ? "is \"\(Excerpt.of(name))\", a Python handler; Python handlers are not run by this server"
                    : "is \"\(Excerpt.of(name))\", not a built-in handler"
                fields.fail("kind", node, problem, expected: HandlerKind.builtInList)
                return nil
            }
            if let defaultKind, let kind, kind != defaultKind {
                fields.fail("kind", node, "is \(kind.rawValue) but the manifest's handler is \(defaultKind.rawValue)",
                            expected: "the same handler in both places")
                return nil
            }
        }
        guard let kind else {
            fields.diagnostics.error(fields.prefix + "kind", line: nil, "is missing",
                                     expected: "one of \(HandlerKind.builtInList)")
            return nil
        }
        /// The kind's spec, once every key the kind does not know is reported.
        func read(_ keys: Set<String>, _ make: (YAMLFields) -> HandlerSpec) -> HandlerSpec {
            fields.reportUnknownKeys(known: keys, asErrors: true, expected: keyList(keys, kind))
            return make(fields)
        }
        switch kind {
        case .imageSegmenter: return read(ImageSegmenterSpec.keys) { .imageSegmenter(ImageSegmenterSpec($0)) }
        case .textClassifier: return read(TextClassifierSpec.keys) { .textClassifier(TextClassifierSpec($0)) }
        case .imageClassifier: return read(ImageClassifierSpec.keys) { .imageClassifier(ImageClassifierSpec($0)) }
        case .objectDetector: return read(ObjectDetectorSpec.keys) { .objectDetector(ObjectDetectorSpec($0)) }
        case .questionAnswering: return read(QuestionAnsweringSpec.keys) { .questionAnswering(QuestionAnsweringSpec($0)) }
        }
    }

    private static func keyList(_ keys: Set<String>, _ kind: HandlerKind) -> String {
        "one of the \(kind.rawValue) keys: " + keys.sorted().joined(separator: ", ")
    }
}

extension HandlerSpec {
    /// The spec with every default filled in, as YAML `handler:` keys (for `archiver inspect`).
    public var resolvedYAML: String {
        func list<T>(_ values: [T]) -> String { "[" + values.map { "\($0)" }.joined(separator: ", ") + "]" }
        var lines = ["kind: \(kind.rawValue)"]
        switch self {
        case .imageSegmenter(let spec):
            lines.append("inputSize: " + (spec.inputSize.map(\.description) ?? "null  # each image at its own size"))
            lines.append("resize: \(spec.resize.rawValue)")
            lines.append("mean: \(list(spec.mean))")
            lines.append("std: \(list(spec.std))")
            lines.append("numClasses: " + (spec.numClasses.map(String.init) ?? "null  # from the model's output"))
            lines.append("labels: " + (spec.labels ?? "null"))
            lines.append("output: \(spec.output.rawValue)")
        case .textClassifier(let spec):
            lines.append("tokenizer: \(spec.tokenizer.rawValue)")
            lines.append("vocab: \(spec.vocab)")
            lines.append("maxLength: \(spec.maxLength)")
            lines.append("lowercase: \(spec.lowercase)")
            lines.append("stripAccents: \(spec.stripAccents)")
            lines.append("modelInputs: \(list(spec.modelInputs.map(\.rawValue)))")
            lines.append("labels: " + (spec.labels ?? "null"))
        case .imageClassifier(let spec):
            lines.append("resizeShorter: \(spec.resizeShorter)")
            lines.append("cropSize: \(spec.cropSize)")
            lines.append("mean: \(list(spec.mean))")
            lines.append("std: \(list(spec.std))")
            lines.append("topk: \(spec.topk)")
            lines.append("labels: " + (spec.labels ?? "null"))
        case .objectDetector(let spec):
            lines.append("threshold: \(spec.threshold)")
            lines.append("maxDetections: \(spec.maxDetections)")
            lines.append("labels: " + (spec.labels ?? "null"))
        case .questionAnswering(let spec):
            lines.append("vocab: \(spec.vocab)")
            lines.append("lowercase: \(spec.lowercase)")
            lines.append("stripAccents: \(spec.stripAccents)")
            lines.append("maxLength: \(spec.maxLength)")
            lines.append("docStride: \(spec.docStride)")
            lines.append("maxAnswerLength: \(spec.maxAnswerLength)")
            lines.append("decoding: \(spec.decoding.rawValue)")
            lines.append("modelInputs: \(list(spec.modelInputs.map(\.rawValue)))")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
