import Foundation
import Torch

/// Archive-time check that the serialized file is a TorchScript module libtorch can load.
enum TorchScriptCheck {
    static func validate(_ url: URL) throws {
        do {
            _ = try ScriptModule(contentsOf: url)
        } catch {
            var message = "The serialized file cannot be served: \(error.summary)"
            switch error {
            case .loadFailed:
                message += ". Export the model with torch.jit.trace or torch.jit.script and save it with .save(\"model.pt\")"
            case .notTorchScript:
                message += ". For an eager-mode model (model.py + state_dict), pass --model-file model.py and archiver "
                    + "converts it to TorchScript at pack time"
            default:
                break
            }
            throw CommandFailure(message)
        }
    }

    /// Whether the file exists but is not TorchScript, as a `torch.save` state_dict is: with a
    /// model file, the eager-mode model to convert. Other failures (missing, damaged) are `false`
    /// and left to ``validate(_:)`` to report.
    static func isEagerCheckpoint(_ url: URL) -> Bool {
        do {
            _ = try ScriptModule(contentsOf: url)
            return false
        } catch {
            if case .notTorchScript = error { return true }
            return false
        }
    }
}
