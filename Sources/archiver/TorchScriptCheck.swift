import Foundation
import Torch

/// Archive-time check that the serialized file is a TorchScript module libtorch can load.
enum TorchScriptCheck {
    static func validate(_ url: URL) throws {
        do {
            _ = try ScriptModule(contentsOf: url)
        } catch {
            var message = "The serialized file cannot be served: \(error.summary)"
            if case .loadFailed = error {
                message += ". Export the model with torch.jit.trace or torch.jit.script and save it with .save(\"model.pt\")"
            }
            throw CommandFailure(message)
        }
    }
}
