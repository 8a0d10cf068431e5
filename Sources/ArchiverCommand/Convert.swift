import ArgumentParser
import Foundation
import ModelArchive

/// `archiver convert OLD.mar`: turns an eager-mode TorchServe archive (model.py + state_dict) into
/// a TorchScript archive this server runs.
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert an eager-mode TorchServe archive (model.py + state_dict) into a TorchScript archive.",
        discussion: """
            Unpacks the archive (.mar, .tar.gz or folder), runs its model file with Python and PyTorch at pack \
            time (TorchServe's way: the torch.nn.Module class built with no arguments, load_state_dict, eval), \
            exports it with torch.jit.script, or torch.jit.trace on a random example input when scripting \
            fails, checks the TorchScript outputs against the eager ones, and writes a new archive with the \
            same model name, version and extra files (index_to_name.json, ...) and a built-in handler. Python \
            files, the Python handler among them, are not carried over. The archive's model.py is run, as \
            TorchServe would run it: convert only archives you trust.

            Examples:
              archiver convert densenet161.mar --handler image_classifier \\
                  --export-path model_store
              archiver convert fastunet.mar --handler handlers/image_segmenter.yaml \\
                  --example-input 1,3,96,128 --export-path model_store -f
            """
    )

    @Argument(help: ArgumentHelp("The eager-mode archive (e.g. densenet161.mar).", valueName: "archive"))
    var archive: String

    @OptionGroup var model: ModelOptions

    @OptionGroup var conversion: ConversionOptions

    @OptionGroup var output: OutputOptions

    mutating func run() throws {
        try Terminal.reportingFailures { try convert() }
    }

    private func convert() throws {
        let scratch = try EagerConversion.makeScratchFolder()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let source = URL(fileURLWithPath: archive)
        let old = try EagerArchive.open(source, scratch: scratch)
        let manifest = old.manifest.model
        let handler: String
        if let chosen = model.handler {
            handler = chosen
        } else if let builtIn = HandlerKind(rawValue: manifest.handler) {
            handler = builtIn.rawValue
        } else {
            throw ConversionError.handlerNeeded(archive: archive, handler: manifest.handler)
        }
        if let configFile = model.configFile, let replaced = old.configFile {
            Terminal.note("--config-file \(configFile) replaces the archive's \(replaced.lastPathComponent)")
        }
        let extras = try old.copyKeptFiles(to: scratch.appendingPathComponent("kept"))
        let request = PackRequest(
            modelName: model.modelName ?? manifest.modelName, version: model.version ?? manifest.modelVersion ?? "1.0",
            serializedFile: old.weights, handler: handler, extraFiles: extras.map { [$0] } ?? [],
            configFile: model.configFile.map { URL(fileURLWithPath: $0) } ?? old.configFile,
            runtime: Manifest.runtimes.contains(old.manifest.runtime) ? old.manifest.runtime : "python"
        )
        let package = try EagerConversion.package(request, modelFile: old.modelFile, options: conversion, scratch: scratch)

        if HandlerKind.isPythonHandler(manifest.handler) {
            Terminal.note("The archive's Python handler \(Excerpt.of(manifest.handler)) is not carried over: "
                + "the built-in \(package.manifest.model.handler) handler replaces it.")
        }
        let dropped = old.droppedFiles.filter { $0 != manifest.handler }
        if !dropped.isEmpty {
            Terminal.note("Left out \(dropped.joined(separator: ", ")): the converted archive runs no Python.")
        }
        if !old.keptFiles.isEmpty {
            Terminal.note("Kept \(old.keptFiles.joined(separator: ", "))")
        }
        for warning in package.warnings { Terminal.warn(warning) }
        try output.emit(package)
    }
}
