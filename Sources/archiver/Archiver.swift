import ArgumentParser
import Foundation
import ModelArchive

/// `archiver`: packs a TorchScript model into a TorchServe-compatible archive; flags as torch-model-archiver.
@main
struct Archiver: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "archiver",
        abstract: "Pack a TorchScript model, its model definition and extra files into a .mar archive.",
        discussion: """
            Flags are those of torch-model-archiver, and the archive has its layout (MAR-INF/MANIFEST.json), \
            so TorchServe tooling reads it. The serialized file must be TorchScript (torch.jit.trace or \
            torch.jit.script, then .save()); the handler is a built-in one or a handler spec file; \
            Python code is stored when given but never run.

            Examples:
              archiver --model-name unet --serialized-file unet.pt \\
                  --handler handlers/image_segmenter.yaml \\
                  --extra-files index_to_name.json --export-path model_store
              archiver --model-name bert --version 2.0 \\
                  --serialized-file bert.pt --handler text_classifier \\
                  --config-file model-config.yaml \\
                  --extra-files vocab.txt,index_to_name.json
              archiver inspect model_store/unet.mar
            """,
        subcommands: [Inspect.self]
    )

    @Option(help: ArgumentHelp("Model name; the archive is <name>.mar. Letters, digits, _ - . (e.g. --model-name unet).",
                               valueName: "name"))
    var modelName: String?

    @Option(name: [.customShort("v"), .long],
            help: ArgumentHelp("Model version (e.g. --version 2.0).", valueName: "version"))
    var version: String = "1.0"

    @Option(help: ArgumentHelp("The TorchScript file (e.g. --serialized-file unet.pt); it is loaded once to check it.",
                               valueName: "file"))
    var serializedFile: String?

    @Option(help: ArgumentHelp(
        "A built-in handler (image_segmenter, text_classifier, image_classifier) or a handler spec file "
            + "(e.g. --handler handlers/image_segmenter.yaml), written into model-config.yaml's handler: section.",
        valueName: "handler"))
    var handler: String?

    @Option(help: ArgumentHelp("Comma-separated extra files or folders, stored at the root "
                                   + "(e.g. --extra-files index_to_name.json,vocab.txt).", valueName: "paths"))
    var extraFiles: String?

    @Option(name: [.customShort("c"), .long],
            help: ArgumentHelp("The model definition (e.g. --config-file model-config.yaml): workers, batching, "
                                   + "device and the handler: section.", valueName: "file"))
    var configFile: String?

    @Option(help: ArgumentHelp("Folder to write the archive to (e.g. --export-path model_store).", valueName: "folder"))
    var exportPath: String = "."

    @Option(help: ArgumentHelp("default (<name>.mar, deflated), zip-store (<name>.mar, not compressed), "
                                   + "tgz (<name>.tar.gz) or no-archive (a folder <name>/) (e.g. --archive-format tgz).",
                               valueName: "format"))
    var archiveFormat: OutputFormat = .default

    @Flag(name: [.customShort("f"), .long], help: "Overwrite an existing archive of the same name (e.g. -f).")
    var force = false

    @Option(name: [.customShort("r"), .long],
            help: ArgumentHelp("A requirements.txt, stored but never installed (e.g. -r requirements.txt).",
                               valueName: "file"))
    var requirementsFile: String?

    @Option(help: ArgumentHelp("A Python model file, stored for compatibility but never run (e.g. --model-file model.py).",
                               valueName: "file"))
    var modelFile: String?

    @Option(help: ArgumentHelp("Recorded in the manifest only: python, python3 or LSP (e.g. --runtime python).",
                               valueName: "runtime"))
    var runtime: String = "python"

    @Flag(help: "Check everything and print the manifest and model definition without writing (e.g. --dry-run).")
    var dryRun = false

    enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
        case `default`
        case zipStore = "zip-store"
        case tgz
        case noArchive = "no-archive"
    }

    mutating func run() throws {
        do {
            try pack()
        } catch let error as CommandFailure {
            Terminal.fail(error.message)
        } catch let error as ArchiveError {
            Terminal.fail(error.description)
        }
    }

    private func pack() throws {
        guard let modelName else {
            throw CommandFailure("--model-name is required, e.g. --model-name unet. See archiver --help.")
        }
        guard let serializedFile else {
            throw CommandFailure("--serialized-file is required: the TorchScript file, e.g. --serialized-file unet.pt.")
        }
        guard let handler else {
            throw CommandFailure("--handler is required: image_segmenter, text_classifier, image_classifier, "
                + "or a spec file such as handlers/image_segmenter.yaml.")
        }
        let extras = (extraFiles ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }.map { URL(fileURLWithPath: $0) }
        let request = PackRequest(
            modelName: modelName, version: version, serializedFile: URL(fileURLWithPath: serializedFile),
            handler: handler, extraFiles: extras, configFile: configFile.map { URL(fileURLWithPath: $0) },
            requirementsFile: requirementsFile.map { URL(fileURLWithPath: $0) },
            modelFile: modelFile.map { URL(fileURLWithPath: $0) }, runtime: runtime
        )
        let package = try ModelPackage.prepare(request)
        try TorchScriptCheck.validate(request.serializedFile)
        for warning in package.warnings { Terminal.warn(warning) }

        if dryRun {
            print("Manifest (\(Manifest.path)):\n\(package.manifest.jsonText)\n")
            if let config = package.config, let file = package.manifest.model.configFile,
               let entry = package.entries.first(where: { $0.path == file }), case .bytes(let data) = entry.source {
                print("Model definition (\(file)):\n\(String(decoding: data, as: UTF8.self))")
                if let spec = config.handler { print("Handler settings with defaults:\n\(spec.resolvedYAML)") }
            }
            print("Files:")
            for entry in package.entries { print("  \(entry.path)") }
            print("Dry run: nothing was written.")
            return
        }

        let format: ArchiveFormat
        switch archiveFormat {
        case .default, .zipStore: format = .zip
        case .tgz: format = .tarGzip
        case .noArchive: format = .folder
        }
        let bar = ProgressBar.make()
        let output = try ArchiveWriter.write(
            package, to: URL(fileURLWithPath: exportPath), format: format,
            compressed: archiveFormat != .zipStore, overwrite: force, progress: bar.map { bar in { bar.update($0) } }
        )
        bar?.finish()
        Terminal.note("Wrote \(output.path)")
    }
}

/// A user-facing failure of the command line, with what to do in the message.
struct CommandFailure: Error {
    let message: String
    init(_ message: String) { self.message = message }
}
