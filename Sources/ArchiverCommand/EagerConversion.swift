import Foundation
import ModelArchive

/// Turns an eager-mode model, a Python model file and a `state_dict`, into TorchScript at pack
/// time, as TorchServe would load it: the model file's `torch.nn.Module` class built with no
/// arguments, `load_state_dict(torch.load(weights, map_location="cpu"))`, `eval()`; then
/// `torch.jit.script`, or `torch.jit.trace` on a random example input when scripting fails. The
/// saved module is reloaded and checked against the eager model on a few random inputs.
///
/// The work happens in Python (``program``), run with the interpreter `--python` names or the
/// first found that imports torch; its outcome comes back as JSON and becomes a
/// ``ConversionError`` or notes on stderr.
struct EagerConversion {
    var modelFile: URL
    var weights: URL
    /// The handler spec of the archive-to-be: its kind and input size give the example input.
    var spec: HandlerSpec
    var options: ConversionOptions

    /// Random inputs the outputs are compared on (the first is the tracing input).
    static let trials = 3
    /// The largest difference allowed between TorchScript and eager outputs, relative to the output's largest magnitude.
    static let tolerance = 1e-4

    /// One argument of `forward`, as the conversion program makes it.
    struct ModelInput: Encodable, Equatable {
        enum Kind: String, Encodable {
            /// Random normal floats (an image batch).
            case float
            /// Random token ids below the model's first embedding's size.
            case ids
            /// All ones (an attention mask), all zeros (token types).
            case ones, zeros
            /// `[0]`: one text starting at 0 in the flat `tokens`.
            case offsets
            /// One argument, a list of 0…1 images `[3, H, W]` of different sizes (torchvision's
            /// detection models); `shape` is the first image's, the second is smaller.
            case imageList
        }

        var name: String
        var kind: Kind
        var shape: [Int]
    }

    /// What `forward` takes for this handler: the `--example-input` shape, or the image handlers'
    /// input size (`[1, 3, H, W]`). Text models have no default.
    /// - Throws: ``ConversionError/exampleInputNeeded(handler:)``, ``ConversionError/invalidExampleInput(_:reason:)``.
    static func modelInputs(for spec: HandlerSpec, exampleShape: [Int]?) throws -> [ModelInput] {
        if case .imageClassifier(let image) = spec {
            let shape = exampleShape ?? [1, 3, image.cropSize.height, image.cropSize.width]
            return [ModelInput(name: "image", kind: .float, shape: shape)]
        }
        if case .imageSegmenter(let image) = spec {
            let size = image.inputSize ?? ImageSize(height: 224, width: 224)
            return [ModelInput(name: "image", kind: .float, shape: exampleShape ?? [1, 3, size.height, size.width])]
        }
        if case .objectDetector = spec {
            // One image's [3, H, W] (a leading batch dimension of 1 is dropped): detectors take a list.
            var shape = exampleShape ?? [3, 224, 224]
            if shape.count == 4, shape[0] == 1 { shape.removeFirst() }
            guard shape.count == 3 else {
                throw ConversionError.invalidExampleInput(shape.map(String.init).joined(separator: ","),
                                                          reason: "object_detector models take images [3, H, W]")
            }
            return [ModelInput(name: "images", kind: .imageList, shape: shape)]
        }
        guard let exampleShape else { throw ConversionError.exampleInputNeeded(handler: spec.kind.rawValue) }
        guard case .textClassifier(let text) = spec else {
            return [ModelInput(name: "input", kind: .float, shape: exampleShape)]
        }
        return text.modelInputs.map { input in
            switch input {
            case .inputIds, .tokens: return ModelInput(name: input.rawValue, kind: .ids, shape: exampleShape)
            case .attentionMask: return ModelInput(name: input.rawValue, kind: .ones, shape: exampleShape)
            case .tokenTypeIds: return ModelInput(name: input.rawValue, kind: .zeros, shape: exampleShape)
            case .offsets: return ModelInput(name: input.rawValue, kind: .offsets, shape: [1])
            }
        }
    }

    /// Converts the model and writes the TorchScript file to `output`; notes go to stderr.
    /// - Parameter scratch: An existing folder for the program, its job and its result.
    /// - Throws: ``ConversionError``.
    func run(output: URL, scratch: URL) throws {
        let inputs = try Self.modelInputs(for: spec, exampleShape: try options.exampleShape())
        let python = try PythonInterpreter.locate(options.python)
        let programURL = scratch.appendingPathComponent("convert_eager.py")
        let jobURL = scratch.appendingPathComponent("job.json")
        let resultURL = scratch.appendingPathComponent("result.json")
        let job = Job(modelFile: modelFile.path, weights: weights.path, output: output.path, result: resultURL.path,
                      modelClass: options.modelClass, inputs: inputs, trials: Self.trials, tolerance: Self.tolerance)
        do {
            try Data(Self.program.utf8).write(to: programURL)
            try JSONEncoder().encode(job).write(to: jobURL)
        } catch {
            throw CommandFailure("Could not write the conversion program to \(scratch.path): \(error.localizedDescription). "
                + "Check that the temporary folder (TMPDIR) is writable.")
        }
        Terminal.note("Converting \(modelFile.lastPathComponent) + \(weights.lastPathComponent) to TorchScript with "
            + "\(python.url.path) (torch \(python.torchVersion))")

        let run: PythonInterpreter.Run
        do {
            run = try python.run([programURL.path, jobURL.path], in: modelFile.deletingLastPathComponent())
        } catch {
            throw ConversionError.pythonFailed(path: python.url.path, status: -1, output: error.localizedDescription)
        }
        guard run.status == 0, let data = try? Data(contentsOf: resultURL),
              let result = try? JSONDecoder().decode(Outcome.self, from: data) else {
            throw ConversionError.pythonFailed(path: python.url.path, status: run.status, output: run.output)
        }
        try report(result, python: python, output: run.output)
    }

    /// Prints a successful result's notes, or throws the failure it describes.
    private func report(_ result: Outcome, python: PythonInterpreter, output: String) throws {
        let file = modelFile.lastPathComponent
        let modelClass = result.modelClass ?? "the model class"
        let shapes = Self.render(result.shapes ?? result.inputShapes ?? [])
        switch result.error {
        case nil:
            guard result.ok == true, let method = result.method else {
                throw ConversionError.pythonFailed(path: python.url.path, status: 0, output: output)
            }
            Terminal.note("Model class \(modelClass) from \(file)" + (result.classNote.map { ", \($0)" } ?? ""))
            if method == "script" {
                Terminal.note("Exported with torch.jit.script")
            } else {
                Terminal.note("torch.jit.script failed (\(Excerpt.of(result.scriptSummary ?? "", limit: 200))); "
                    + "exported with torch.jit.trace on a random input of shape \(Self.render(result.inputShapes ?? []))")
            }
            Terminal.note("TorchScript and eager outputs agree on \(result.trials ?? Self.trials) random inputs of shape "
                + "\(Self.render(result.inputShapes ?? [])): max difference \(ConversionError.number(result.difference ?? 0)) "
                + "at output scale \(ConversionError.number(result.scale ?? 0)); output \(Self.render(result.outputShapes ?? []))")
            for warning in result.warnings ?? [] { Terminal.warn("torch.jit.\(method): \(warning)") }
            if let problem = result.batchProblem {
                Terminal.warn("The TorchScript module, \(problem). The server stacks requests into batches: set "
                    + "batchSize: 1 in model-config.yaml, or make forward work for any batch size and convert again.")
            }
        case "torch":
            throw ConversionError.pythonWithoutTorch(path: python.url.path, detail: "cannot import torch (\(result.detail ?? ""))")
        case "import":
            throw ConversionError.modelFileFailed(file: file, detail: [result.trace, result.detail].compactMap { $0 }.first ?? "")
        case "classNotFound":
            throw ConversionError.modelClassNotFound(file: file, requested: result.requested, classes: result.classes ?? [])
        case "ambiguousClass":
            throw ConversionError.ambiguousModelClass(file: file, classes: result.classes ?? [], buildable: result.buildable ?? [])
        case "construct":
            throw ConversionError.modelNotBuildable(file: file, modelClass: modelClass, detail: result.detail ?? "")
        case "weights":
            throw ConversionError.weightsUnreadable(file: weights.lastPathComponent, detail: result.detail ?? "")
        case "wholeModel", "notStateDict":
            throw ConversionError.notStateDict(file: weights.lastPathComponent, holds: result.type ?? "object",
                                               isModule: result.error == "wholeModel")
        case "stateDict":
            throw ConversionError.stateDictMismatch(file: weights.lastPathComponent, modelClass: modelClass,
                                                    detail: result.detail ?? "", keys: result.keys ?? [])
        case "forward":
            throw ConversionError.forwardFailed(modelClass: modelClass, shapes: shapes, detail: result.detail ?? "")
        case "noTensorOutput":
            throw ConversionError.noTensorOutput(modelClass: modelClass, returns: result.type ?? "no tensor")
        case "nondeterministic":
            throw ConversionError.nondeterministic(modelClass: modelClass, difference: result.difference ?? 0, scale: result.scale ?? 0)
        case "export":
            throw ConversionError.exportFailed(modelClass: modelClass, scriptError: result.scriptError ?? "",
                                               traceError: result.traceError ?? "", shapes: shapes)
        case "outputsDiffer":
            throw ConversionError.outputsDiffer(ConversionError.Mismatch(
                modelClass: modelClass, method: result.method ?? "script", scriptError: result.scriptError,
                trial: (result.trial ?? 0) + 1, shapes: shapes, difference: result.difference, scale: result.scale,
                tolerance: Self.tolerance, detail: result.detail ?? "", tracerWarnings: result.warnings ?? []))
        default:
            throw ConversionError.pythonFailed(path: python.url.path, status: 0, output: output)
        }
    }

    /// `[[1, 3, 224, 224]]` → `[1, 3, 224, 224]`; several shapes joined with ` and `.
    static func render(_ shapes: [[Int]]) -> String {
        shapes.map { "[" + $0.map(String.init).joined(separator: ", ") + "]" }.joined(separator: " and ")
    }

    /// What the conversion program reads.
    private struct Job: Encodable {
        var modelFile: String
        var weights: String
        var output: String
        var result: String
        var modelClass: String?
        var inputs: [ModelInput]
        var trials: Int
        var tolerance: Double
    }

    /// What the conversion program writes: `ok` and the notes, or `error` and what it needs.
    private struct Outcome: Decodable {
        var ok: Bool?
        var error: String?
        var method: String?
        var modelClass: String?
        var classNote: String?
        var scriptError: String?
        var scriptSummary: String?
        var traceError: String?
        var detail: String?
        var trace: String?
        var requested: String?
        var classes: [String]?
        var buildable: [String]?
        var keys: [String]?
        var type: String?
        var inputShapes: [[Int]]?
        var outputShapes: [[Int]]?
        var shapes: [[Int]]?
        var trials: Int?
        var trial: Int?
        var difference: Double?
        var scale: Double?
        var warnings: [String]?
        var batchProblem: String?
    }
}

extension EagerConversion {
    /// A new, empty temporary folder for one conversion (the unpacked archive, the program, the
    /// TorchScript file); the caller removes it.
    static func makeScratchFolder() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("archiver-convert-\(UUID().uuidString)")
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw CommandFailure("Could not create the temporary folder \(folder.path): \(error.localizedDescription). "
                + "Check that TMPDIR names a writable folder.")
        }
        return folder
    }

    /// Packs an eager-mode model: checks `request` as it stands (names, handler, config, files),
    /// converts its serialized file with `modelFile`, and prepares the package of the TorchScript
    /// file in its place. The model file is not stored: the archive runs no Python.
    /// - Parameter scratch: An existing folder, removed by the caller; the TorchScript file is written there.
    /// - Throws: ``ArchiveError``, ``ConversionError``, ``CommandFailure``.
    static func package(_ request: PackRequest, modelFile: URL, options: ConversionOptions, scratch: URL) throws -> ModelPackage {
        var request = request
        request.modelFile = nil
        let draft = try ModelPackage.prepare(request)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: modelFile.path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw ArchiveError.notFound(path: modelFile.path, role: "model file")
        }
        let kind = try HandlerKind(handlerName: draft.manifest.model.handler)
        let conversion = EagerConversion(modelFile: modelFile, weights: request.serializedFile,
                                         spec: draft.config?.handler ?? HandlerSpec.defaults(for: kind), options: options)
        let folder = scratch.appendingPathComponent("torchscript")
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw ArchiveError.io(path: folder.path, operation: "create", detail: error.localizedDescription)
        }
        let converted = folder.appendingPathComponent(request.serializedFile.deletingPathExtension().lastPathComponent + ".pt")
        try conversion.run(output: converted, scratch: scratch)
        try TorchScriptCheck.validate(converted)
        request.serializedFile = converted
        return try ModelPackage.prepare(request)
    }
}
