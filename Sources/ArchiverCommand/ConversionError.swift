import Foundation
import ModelArchive

/// Why an eager-mode model could not become TorchScript; one case per cause, each message saying
/// what to do. Messages from Python (the model's own exceptions) are quoted, cut to a few lines.
enum ConversionError: Error, CustomStringConvertible {
    /// Neither `python3` on `PATH` nor `/usr/bin/python3` can import torch; `tried` says why each failed.
    case noPythonWithTorch(tried: [String])
    /// `--python` names no executable file.
    case pythonNotFound(String)
    /// The Python `--python` names cannot import torch.
    case pythonWithoutTorch(path: String, detail: String)
    /// Python ended without writing its result (a crash, a kill, a model file calling `os._exit`).
    case pythonFailed(path: String, status: Int32, output: String)
    /// The handler's model inputs have no default shape and `--example-input` was not given.
    case exampleInputNeeded(handler: String)
    case invalidExampleInput(String, reason: String)
    /// The archive to convert is not an eager-mode TorchServe archive.
    case notEagerArchive(path: String, reason: String)
    /// The archive's manifest names a file the archive does not hold.
    case missingFile(archive: String, file: String, field: String)
    /// The handler to use cannot be taken from the archive and `--handler` was not given.
    case handlerNeeded(archive: String, handler: String)
    /// Importing the model file raised.
    case modelFileFailed(file: String, detail: String)
    /// No `torch.nn.Module` class of that name (or none at all) in the model file.
    case modelClassNotFound(file: String, requested: String?, classes: [String])
    /// Several candidate classes and no `--model-class`.
    case ambiguousModelClass(file: String, classes: [String], buildable: [String])
    /// `ModelClass()` raised.
    case modelNotBuildable(file: String, modelClass: String, detail: String)
    /// `torch.load` cannot read the weights.
    case weightsUnreadable(file: String, detail: String)
    /// The weights are a whole pickled module, or something else that is not a `state_dict`.
    case notStateDict(file: String, holds: String, isModule: Bool)
    /// `load_state_dict` refused the weights.
    case stateDictMismatch(file: String, modelClass: String, detail: String, keys: [String])
    /// The eager model fails on the example input.
    case forwardFailed(modelClass: String, shapes: String, detail: String)
    /// `forward` returns no tensor.
    case noTensorOutput(modelClass: String, returns: String)
    /// The eager model in `eval()` mode answers the same input differently twice.
    case nondeterministic(modelClass: String, difference: Double, scale: Double)
    /// Both `torch.jit.script` and `torch.jit.trace` failed.
    case exportFailed(modelClass: String, scriptError: String, traceError: String, shapes: String)
    /// The exported module's outputs differ from the eager model's.
    case outputsDiffer(Mismatch)

    /// Where and by how much the TorchScript module and the eager model disagree.
    struct Mismatch {
        var modelClass: String
        /// `script` or `trace`.
        var method: String
        /// Why scripting failed, when the module was traced.
        var scriptError: String?
        /// 1-based.
        var trial: Int
        var shapes: String
        var difference: Double?
        var scale: Double?
        var tolerance: Double
        /// Set when the shapes, not the values, differ.
        var detail: String
        var tracerWarnings: [String]
    }

    var description: String {
        switch self {
        case .noPythonWithTorch(let tried):
            return "No Python that can import torch was found (tried \(tried.joined(separator: "; "))). "
                + "Converting an eager-mode model runs its model file with PyTorch at pack time: install PyTorch "
                + "(pip install torch, or apt install python3-torch) or pass --python /path/to/python3 of an environment that has it."
        case .pythonNotFound(let path):
            return "The Python interpreter \(Excerpt.of(path)) (--python) does not exist or is not an executable file. "
                + "Pass the path of a python3 that can import torch, e.g. --python /usr/bin/python3 or --python .venv/bin/python."
        case .pythonWithoutTorch(let path, let detail):
            return "\(Excerpt.of(path)) (--python) \(detail). Install PyTorch for it (\(Excerpt.of(path)) -m pip install torch) "
                + "or pass another --python."
        case .pythonFailed(let path, let status, let output):
            return "The conversion program ended without a result (\(path), exit status \(status)). Its last output:\n"
                + Self.tail(output, lines: 15)
        case .exampleInputNeeded(let handler):
            return "The \(handler) handler's model inputs have no default shape: pass --example-input with the shape "
                + "forward() takes, e.g. --example-input 1,128 for one sequence of 128 token ids. archiver needs it to trace "
                + "the model and to compare the TorchScript outputs with the eager ones."
        case .invalidExampleInput(let text, let reason):
            return "--example-input \"\(Excerpt.of(text))\" \(reason): give the input's shape as comma-separated sizes, "
                + "e.g. --example-input 1,3,224,224."
        case .notEagerArchive(let path, let reason):
            return "\(path) is not an eager-mode TorchServe archive: \(reason)."
        case .missingFile(let archive, let file, let field):
            return "\(archive) does not contain \"\(Excerpt.of(file))\", which its manifest's \(field) names. Re-create it "
                + "with torch-model-archiver, or convert the loose files: archiver --model-name NAME --model-file model.py "
                + "--serialized-file weights.pth --handler HANDLER."
        case .handlerNeeded(let archive, let handler):
            let what = HandlerKind.isPythonHandler(handler) ? "Python code, which this server never runs" : "not a built-in handler here"
            return "\(archive)'s handler is \"\(Excerpt.of(handler))\", \(what). Pass --handler with a built-in handler "
                + "(\(HandlerKind.builtInList)) or a handler spec file such as handlers/image_classifier.yaml."
        case .modelFileFailed(let file, let detail):
            return "Importing \(file) failed:\n\(Self.indented(detail))\nFix the model file, or install what it imports "
                + "for this Python (pass another with --python); it is imported as TorchServe does, its folder first on sys.path."
        case .modelClassNotFound(let file, let requested, let classes):
            let found = classes.isEmpty ? "it has none" : "its classes are \(classes.joined(separator: ", "))"
            if let requested {
                return "\(file) has no torch.nn.Module class named \"\(Excerpt.of(requested))\" (--model-class); \(found). "
                    + "Pass one of them to --model-class."
            }
            return "\(file) holds no torch.nn.Module class: the model file must define (or import) the model's class, "
                + "which archiver builds with no arguments as TorchServe does."
        case .ambiguousModelClass(let file, let classes, let buildable):
            let built = buildable.isEmpty ? "none of them" : buildable.joined(separator: ", ")
            return "\(file) has several torch.nn.Module classes (\(classes.joined(separator: ", "))) and archiver cannot tell "
                + "which is the model (\(built) can be built with no arguments). Pass --model-class NAME."
        case .modelNotBuildable(let file, let modelClass, let detail):
            return "\(modelClass) from \(file) cannot be built with no arguments:\n\(Self.indented(detail))\n"
                + "TorchServe builds the model class with no arguments: give every __init__ parameter a default, "
                + "or pick another class with --model-class."
        case .weightsUnreadable(let file, let detail):
            return "torch.load cannot read \(file): \(Self.tail(detail, lines: 3)). The serialized file of an eager-mode model "
                + "is a state_dict saved with torch.save(model.state_dict(), PATH)."
        case .notStateDict(let file, let holds, let isModule):
            if isModule {
                return "\(file) holds a whole pickled \(holds) (torch.save(model)), not a state_dict. Save model.state_dict() "
                    + "instead, or export TorchScript yourself (torch.jit.script(model).save(PATH)) and pack that with --serialized-file."
            }
            return "\(file) holds a \(holds), not a state_dict (parameter names to tensors). "
                + "Save one with torch.save(model.state_dict(), PATH)."
        case .stateDictMismatch(let file, let modelClass, let detail, let keys):
            let wrapped = keys.contains { ["state_dict", "model", "model_state_dict", "net"].contains($0) }
            let hint = wrapped
                ? "\(file) looks like a training checkpoint (keys \(keys.joined(separator: ", "))): save its state_dict alone, "
                    + "e.g. torch.save(checkpoint[\"state_dict\"], PATH)."
                : "Check that the model file is the one these weights were saved from (and --model-class the right class)."
            return "The state_dict keys in \(file) do not match \(modelClass):\n\(Self.indented(detail))\n\(hint)"
        case .forwardFailed(let modelClass, let shapes, let detail):
            return "\(modelClass) fails on a random input of shape \(shapes):\n\(Self.indented(detail))\n"
                + "Pass --example-input with the shape forward() takes (e.g. --example-input 1,3,224,224), "
                + "or set the input size in the handler spec."
        case .noTensorOutput(let modelClass, let returns):
            return "\(modelClass).forward returns \(returns), not tensors; the built-in handlers read a tensor "
                + "(or a tuple, list or dict of tensors)."
        case .nondeterministic(let modelClass, let difference, let scale):
            return "\(modelClass) in eval() mode answers the same input differently twice (max difference "
                + "\(Self.number(difference)) at output scale \(Self.number(scale))), so its TorchScript cannot be checked "
                + "against it. Make forward deterministic in eval() mode (dropout, sampling) and convert again."
        case .exportFailed(let modelClass, let scriptError, let traceError, let shapes):
            return "Neither torch.jit.script nor torch.jit.trace could export \(modelClass).\n"
                + "torch.jit.script:\n\(Self.indented(scriptError))\n"
                + "torch.jit.trace (on a random input of shape \(shapes)):\n\(Self.indented(traceError))\n"
                + "Make forward scriptable (see the first error) or traceable (tensors in, tensors out), "
                + "or export TorchScript yourself and pack it with --serialized-file."
        case .outputsDiffer(let mismatch):
            return mismatch.description
        }
    }

    /// The last `lines` non-empty lines of `text`.
    static func tail(_ text: String, lines: Int) -> String {
        text.split(whereSeparator: \.isNewline).suffix(lines).joined(separator: "\n")
    }

    /// `text` indented by two spaces, at most 25 lines (the last ones).
    static func indented(_ text: String) -> String {
        let lines = text.split(whereSeparator: \.isNewline)
        let shown = lines.count > 25 ? ["…"] + lines.suffix(24) : lines
        return shown.map { "  " + $0 }.joined(separator: "\n")
    }

    static func number(_ value: Double) -> String {
        value == 0 ? "0" : String(format: "%.3g", value)
    }
}

extension ConversionError.Mismatch: CustomStringConvertible {
    var description: String {
        var text = "The TorchScript module (torch.jit.\(method)) does not compute what \(modelClass) computes: "
        if let difference, let scale {
            text += "on random input \(trial) of shape \(shapes) the outputs differ by up to \(ConversionError.number(difference)) "
                + "at output scale \(ConversionError.number(scale)) (allowed: \(ConversionError.number(tolerance)) × the scale)."
        } else {
            text += "on random input \(trial) of shape \(shapes) \(detail)."
        }
        if method == "trace" {
            if let scriptError {
                text += "\ntorch.jit.script failed first:\n\(ConversionError.indented(ConversionError.tail(scriptError, lines: 8)))"
            }
            if !tracerWarnings.isEmpty {
                text += "\nTracer warnings:\n" + tracerWarnings.map { "  " + $0 }.joined(separator: "\n")
            }
            text += "\nA trace records one path through forward: branches on tensor values, Python numbers taken from "
                + "tensors and NumPy calls become constants. Make forward scriptable, or free of such code, and convert again."
        } else {
            text += "\nThis is a TorchScript bug or a forward that depends on Python state; export TorchScript yourself "
                + "and pack it with --serialized-file."
        }
        return text
    }
}
