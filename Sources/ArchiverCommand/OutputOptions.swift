import ArgumentParser
import Foundation
import ModelArchive

/// Where and how `archiver` and `archiver convert` write the archive, or `--dry-run` to only print it.
struct OutputOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Folder to write the archive to (e.g. --export-path model_store).", valueName: "folder"))
    var exportPath: String = "."

    @Option(help: ArgumentHelp("default (<name>.mar, deflated), zip-store (<name>.mar, not compressed), "
                                   + "tgz (<name>.tar.gz) or no-archive (a folder <name>/) (e.g. --archive-format tgz).",
                               valueName: "format"))
    var archiveFormat: OutputFormat = .default

    @Flag(name: [.customShort("f"), .long], help: "Overwrite an existing archive of the same name (e.g. -f).")
    var force = false

    @Flag(help: "Check everything and print the manifest and model definition without writing (e.g. --dry-run).")
    var dryRun = false

    enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
        case `default`
        case zipStore = "zip-store"
        case tgz
        case noArchive = "no-archive"
    }

    /// Writes `package` in the chosen format (with a progress bar on a terminal), or prints it for `--dry-run`.
    func emit(_ package: ModelPackage) throws {
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
