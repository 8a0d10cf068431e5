import ArgumentParser
import Foundation
import ModelArchive

/// `archiver inspect FILE`: prints an archive's manifest and model definition.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the manifest, model definition and files of an archive (.mar, .tar.gz or folder).",
        discussion: "Example: archiver inspect model_store/unet.mar"
    )

    @Argument(help: ArgumentHelp("The archive to read (e.g. model_store/unet.mar).", valueName: "archive"))
    var archive: String

    mutating func run() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("archiver-inspect-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        do {
            let opened = try ArchiveReader.open(URL(fileURLWithPath: archive), extractingInto: scratch)
            let synthesized = opened.isManifestSynthesized ? ", synthesised: the archive has none" : ""
            print("Archive: \(archive) (\(opened.format.rawValue))")
            if let package = opened.aotInductor {
                print("Serialized file: \(opened.serializedFile.lastPathComponent): \(Self.summary(of: package))")
            } else {
                print("Serialized file: \(opened.serializedFile.lastPathComponent): TorchScript")
            }
            print("\nManifest (\(Manifest.path)\(synthesized)):\n\(opened.manifest.jsonText)")
            if let configFile = opened.configFile {
                let text = (try? String(contentsOf: configFile, encoding: .utf8)) ?? ""
                print("\nModel definition (\(configFile.lastPathComponent)):\n\(text)")
            } else {
                print("\nModel definition: none (server defaults apply).")
            }
            print("\nHandler settings with defaults:\n\(opened.handlerSpec.resolvedYAML)")
            for warning in opened.warnings { Terminal.warn("\(opened.configFile?.lastPathComponent ?? ""):\(warning)") }
            print("Files:")
            let root = opened.root.standardizedFileURL.path
            let enumerator = FileManager.default.enumerator(atPath: root)
            while let path = enumerator?.nextObject() as? String {
                let attributes = try? FileManager.default.attributesOfItem(atPath: root + "/" + path)
                guard (attributes?[.type] as? FileAttributeType) == .typeRegular else { continue }
                let size = (attributes?[.size] as? NSNumber)?.int64Value ?? 0
                print(String(format: "  %12lld  %@", size, path))
            }
        } catch let error as ArchiveError {
            Terminal.fail(error.description)
        }
    }

    /// "AOTInductor package, target device cpu, batch dynamic": what a `.pt2` was compiled for.
    static func summary(of package: AOTInductorPackageInfo) -> String {
        let batch = switch package.batch {
        case .dynamic(let max?): "dynamic (1 to \(max))"
        case .dynamic(nil): "dynamic"
        case .fixed(let size): "\(size)"
        case .unknown: "unknown (no generated input checks in the package)"
        }
        let model = package.modelName == "model" ? "" : ", model \(package.modelName)"
        return "AOTInductor package, target device \(package.device), batch \(batch)\(model)"
    }
}
