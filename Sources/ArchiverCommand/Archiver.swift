import ArgumentParser
import Foundation
import ModelArchive

/// The `archiver` command line, run by the `archiver` executable and by `serve` when it is called
/// as `archiver` (the CUDA bundle ships one static binary for both, scripts/cuda/bundle).
public enum ArchiverCommandLine {
    /// Parses the process's arguments, runs the command and exits as ArgumentParser does.
    public static func main() {
        Archiver.main()
    }
}

/// `archiver`: packs a TorchScript model into a TorchServe-compatible archive; flags as torch-model-archiver.
/// An eager-mode model (`--model-file` and a `state_dict`) is converted to TorchScript first.
struct Archiver: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "archiver",
        abstract: "Pack a TorchScript model, its model definition and extra files into a .mar archive.",
        discussion: """
            Flags are those of torch-model-archiver, and the archive has its layout (MAR-INF/MANIFEST.json), \
            so TorchServe tooling reads it. The serialized file must be TorchScript (torch.jit.trace or \
            torch.jit.script, then .save()); the handler is a built-in one or a handler spec file. \
            An eager-mode model, --model-file model.py with a state_dict as the serialized file, is \
            converted to TorchScript at pack time with Python and PyTorch (see archiver convert --help, \
            which does the same for a whole eager-mode .mar); the archive then holds no Python.

            Examples:
              archiver --model-name unet --serialized-file unet.pt \\
                  --handler handlers/image_segmenter.yaml \\
                  --extra-files index_to_name.json --export-path model_store
              archiver --model-name bert --version 2.0 \\
                  --serialized-file bert.pt --handler text_classifier \\
                  --config-file model-config.yaml \\
                  --extra-files vocab.txt,index_to_name.json
              archiver --model-name densenet --model-file model.py \\
                  --serialized-file densenet.pth --handler image_classifier \\
                  --extra-files index_to_name.json --export-path model_store
              archiver convert densenet161.mar --handler image_classifier \\
                  --export-path model_store
              archiver inspect model_store/unet.mar
            """,
        subcommands: [Inspect.self, Convert.self]
    )

    @OptionGroup var model: ModelOptions

    @Option(help: ArgumentHelp("The TorchScript file (e.g. --serialized-file unet.pt), loaded once to check it, or an "
                                   + "AOTInductor package (e.g. --serialized-file unet.pt2, read to check it); "
                                   + "with --model-file, a state_dict to convert (e.g. --serialized-file weights.pth).",
                               valueName: "file"))
    var serializedFile: String?

    @Option(help: ArgumentHelp("Comma-separated extra files or folders, stored at the root "
                                   + "(e.g. --extra-files index_to_name.json,vocab.txt).", valueName: "paths"))
    var extraFiles: String?

    @OptionGroup var output: OutputOptions

    @Option(name: [.customShort("r"), .long],
            help: ArgumentHelp("A requirements.txt, stored but never installed (e.g. -r requirements.txt).",
                               valueName: "file"))
    var requirementsFile: String?

    @Option(help: ArgumentHelp("The Python model file of an eager-mode model (e.g. --model-file model.py): with a "
                                   + "state_dict as --serialized-file, the model is converted to TorchScript at pack time; "
                                   + "with a TorchScript file, it is stored for compatibility but never run.",
                               valueName: "file"))
    var modelFile: String?

    /// Used when --model-file comes with a state_dict.
    @OptionGroup var conversion: ConversionOptions

    @Option(help: ArgumentHelp("Recorded in the manifest only: python, python3 or LSP (e.g. --runtime python).",
                               valueName: "runtime"))
    var runtime: String = "python"

    mutating func run() throws {
        try Terminal.reportingFailures { try pack() }
    }

    private func pack() throws {
        guard let modelName = model.modelName else {
            throw CommandFailure("--model-name is required, e.g. --model-name unet. See archiver --help.")
        }
        guard let serializedFile else {
            throw CommandFailure("--serialized-file is required: the TorchScript file, e.g. --serialized-file unet.pt "
                + "(or, with --model-file model.py, the state_dict to convert).")
        }
        guard let handler = model.handler else {
            throw CommandFailure("--handler is required: image_segmenter, text_classifier, image_classifier, "
                + "or a spec file such as handlers/image_segmenter.yaml.")
        }
        let extras = (extraFiles ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }.map { URL(fileURLWithPath: $0) }
        let request = PackRequest(
            modelName: modelName, version: model.version ?? "1.0", serializedFile: URL(fileURLWithPath: serializedFile),
            handler: handler, extraFiles: extras, configFile: model.configFile.map { URL(fileURLWithPath: $0) },
            requirementsFile: requirementsFile.map { URL(fileURLWithPath: $0) },
            modelFile: modelFile.map { URL(fileURLWithPath: $0) }, runtime: runtime
        )
        if let modelFile = request.modelFile, TorchScriptCheck.isEagerCheckpoint(request.serializedFile) {
            let scratch = try EagerConversion.makeScratchFolder()
            defer { try? FileManager.default.removeItem(at: scratch) }
            let package = try EagerConversion.package(request, modelFile: modelFile, options: conversion, scratch: scratch)
            Terminal.note("\(modelFile.lastPathComponent) is not stored: the archive holds the TorchScript "
                + "\(package.manifest.model.serializedFile ?? "file") and runs no Python.")
            for warning in package.warnings { Terminal.warn(warning) }
            try output.emit(package)
            return
        }
        let package = try ModelPackage.prepare(request)
        if let compiled = try AOTInductorPackageInfo.read(request.serializedFile) {
            // Checked by reading it, not loading it: the Debian build cannot load one, and a CUDA
            // package loads only where there is a GPU.
            Terminal.note("\(request.serializedFile.lastPathComponent): \(Inspect.summary(of: compiled)); "
                + "served by the libtorch 2 build (scripts/setup --libtorch pytorch)")
        } else {
            try TorchScriptCheck.validate(request.serializedFile)
        }
        for warning in package.warnings { Terminal.warn(warning) }
        try output.emit(package)
    }
}

/// A user-facing failure of the command line, with what to do in the message.
struct CommandFailure: Error {
    let message: String
    init(_ message: String) { self.message = message }
}
