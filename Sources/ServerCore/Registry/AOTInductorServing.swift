import ModelArchive
import Torch

/// How a version whose serialized file is an AOTInductor package is served: only by a build that
/// can load one, and with batches no larger than the package was compiled for.
enum AOTInductorServing {
    /// Refuses a package this build or this server cannot serve, and lowers `settings.batchSize`
    /// to what the package takes (1 for a package compiled for batch 1).
    /// - Throws: `invalidModel` (400) naming the reason and what to do.
    static func adapt(_ archive: OpenedArchive, settings: inout ModelSettings) throws(ModelServerError) {
        let file = archive.serializedFile.lastPathComponent
        // Told by content: a TorchScript file is loaded as one whatever its name.
        guard let package = archive.aotInductor else { return }
        guard TorchRuntime.canLoadAOTInductor else {
            throw .invalidModel("\(file) is an AOTInductor package, but \(TorchRuntime.aotInductorUnavailableReason)")
        }
        switch package.batch {
        case .fixed(1):
            settings.batchSize = 1
        case .fixed(let size):
            throw .invalidModel("\(file) was compiled for a fixed batch of \(size), which single requests cannot fill; "
                + "export it with a dynamic batch dimension (torch.export.Dim) or at batch 1")
        case .dynamic(let max?):
            settings.batchSize = min(settings.batchSize, max)
        case .dynamic(nil), .unknown:
            break
        }
    }

    /// What describe and registration say about serving the package (nothing for TorchScript).
    static func notes(_ archive: OpenedArchive) -> [String] {
        switch archive.aotInductor?.batch {
        case .fixed(1)?: return ["batching off: the AOTInductor package was compiled for batch 1"]
        case .dynamic(let max?)?: return ["the AOTInductor package takes batches of 1 to \(max)"]
        default: return []
        }
    }
}
