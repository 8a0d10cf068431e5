import Foundation
import ModelArchive

/// An eager-mode TorchServe archive opened for `archiver convert`: its manifest, model file and
/// weights, and which of its other files the converted archive keeps.
///
/// A `.mar`, `.tar.gz` or `.tar` is unpacked with ModelArchive's hardened extractors (the same
/// bounds as the server's); a folder is read in place.
struct EagerArchive {
    /// The folder holding `MAR-INF/MANIFEST.json`.
    var root: URL
    var manifest: Manifest
    /// `model.modelFile`: the Python file defining the model's class.
    var modelFile: URL
    /// `model.serializedFile`: the `state_dict`.
    var weights: URL
    /// `model.configFile`, or a `model-config.yaml` at the root.
    var configFile: URL?
    /// Files the converted archive keeps (everything but MAR-INF, Python files, the model file,
    /// the weights, the model definition and the requirements file), root-relative.
    var keptFiles: [String]
    /// Python files (the handler among them) and the requirements file, left out: the archive runs no Python.
    var droppedFiles: [String]

    /// Opens `source`, unpacking an archive file into a new folder inside `scratch`.
    /// - Throws: ``ArchiveError`` (unreadable or hostile archives, a bad manifest), ``ConversionError``.
    static func open(_ source: URL, scratch: URL) throws -> EagerArchive {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source.path, isDirectory: &isDirectory) else {
            throw ArchiveError.notFound(path: source.path, role: "archive to convert")
        }
        var folder = source
        if !isDirectory.boolValue {
            folder = scratch.appendingPathComponent("unpacked")
            try ArchiveReader.extract(source, to: folder)
        }
        guard let root = manifestRoot(folder) else {
            throw ConversionError.notEagerArchive(
                path: source.path,
                reason: "it has no MAR-INF/MANIFEST.json, so nothing names its model file and weights. Pack loose files "
                    + "with archiver --model-name NAME --model-file model.py --serialized-file weights.pth --handler HANDLER")
        }
        let manifest = try readManifest(root.appendingPathComponent(Manifest.path), displayPath: source.path)
        let model = manifest.model
        guard let modelName = model.modelFile else {
            throw ConversionError.notEagerArchive(
                path: source.path,
                reason: "its manifest names no model.modelFile (the Python file with the model's class). If its serialized "
                    + "file\(model.serializedFile.map { " \(Excerpt.of($0))" } ?? "") is TorchScript, serve the archive as it is")
        }
        guard let weightsName = model.serializedFile else {
            throw ConversionError.notEagerArchive(path: source.path, reason: "its manifest names no model.serializedFile (the state_dict)")
        }
        let modelFile = try file(modelName, in: root, archive: source.path, field: "model.modelFile")
        let weights = try file(weightsName, in: root, archive: source.path, field: "model.serializedFile")
        var configFile: URL?
        if let name = model.configFile {
            configFile = try file(name, in: root, archive: source.path, field: "model.configFile")
        } else if regularFile(root.appendingPathComponent(ModelConfig.defaultFileName)) {
            configFile = root.appendingPathComponent(ModelConfig.defaultFileName)
        }
        let requirements = try model.requirementsFile.map {
            try file($0, in: root, archive: source.path, field: "model.requirementsFile")
        }

        let used = Set([modelFile, weights, configFile].compactMap { $0?.standardizedFileURL.path })
        var kept: [String] = []
        var dropped: [String] = []
        for path in try files(under: root) where !path.hasPrefix("MAR-INF/") {
            let url = root.appendingPathComponent(path).standardizedFileURL
            if used.contains(url.path) { continue }
            if url.path == requirements?.standardizedFileURL.path || path.hasSuffix(".py") || path.hasSuffix(".pyc") {
                dropped.append(path)
            } else {
                kept.append(path)
            }
        }
        return EagerArchive(root: root, manifest: manifest, modelFile: modelFile, weights: weights, configFile: configFile,
                            keptFiles: kept, droppedFiles: dropped)
    }

    /// Copies the kept files into `folder` under their paths, for packing as one extra folder.
    /// - Returns: `folder`, or `nil` when nothing is kept.
    func copyKeptFiles(to folder: URL) throws -> URL? {
        guard !keptFiles.isEmpty else { return nil }
        for path in keptFiles {
            let target = folder.appendingPathComponent(path)
            do {
                try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
                try FileManager.default.copyItem(at: root.appendingPathComponent(path), to: target)
            } catch {
                throw ArchiveError.io(path: target.path, operation: "copy \(path) to", detail: error.localizedDescription)
            }
        }
        return folder
    }

    /// The folder itself when it holds the manifest, or its only visible subfolder when that does
    /// (torch-model-archiver's `tgz` format puts everything under `<model-name>/`).
    private static func manifestRoot(_ folder: URL) -> URL? {
        if regularFile(folder.appendingPathComponent(Manifest.path)) { return folder }
        let visible = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).filter { !$0.hasPrefix(".") }
        if visible.count == 1, regularFile(folder.appendingPathComponent(visible[0]).appendingPathComponent(Manifest.path)) {
            return folder.appendingPathComponent(visible[0])
        }
        return nil
    }

    private static func readManifest(_ url: URL, displayPath: String) throws -> Manifest {
        let size = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? NSNumber)?.intValue ?? 0
        guard size <= Manifest.maxBytes else {
            throw ArchiveError.invalidManifest(path: displayPath, detail: "it is \(size) bytes, more than the \(Manifest.maxBytes) read")
        }
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw ArchiveError.io(path: url.path, operation: "read", detail: error.localizedDescription)
        }
        return try Manifest.decode(data, path: displayPath)
    }

    /// A file the manifest names: a relative path inside the archive that exists as a regular file.
    private static func file(_ name: String, in root: URL, archive: String, field: String) throws -> URL {
        let components = name.split(separator: "/", omittingEmptySubsequences: false)
        guard !name.hasPrefix("/"), !components.isEmpty, !components.contains(where: { $0.isEmpty || $0 == ".." }) else {
            throw ArchiveError.invalidManifest(path: archive, detail: "\(field) \"\(Excerpt.of(name))\" points outside the archive")
        }
        let url = components.reduce(root) { $0.appendingPathComponent(String($1)) }
        guard regularFile(url) else { throw ConversionError.missingFile(archive: archive, file: name, field: field) }
        return url
    }

    /// Root-relative paths of the regular files under `root`; links and special files are skipped.
    private static func files(under root: URL) throws -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: root.path) else {
            throw ArchiveError.io(path: root.path, operation: "list", detail: "the folder cannot be read")
        }
        var paths: [String] = []
        while let path = enumerator.nextObject() as? String {
            let attributes = try? FileManager.default.attributesOfItem(atPath: root.appendingPathComponent(path).path)
            if (attributes?[.type] as? FileAttributeType) == .typeRegular, !path.contains("__pycache__/") {
                paths.append(path)
            }
        }
        return paths.sorted()
    }

    private static func regularFile(_ url: URL) -> Bool {
        let attributes = try? FileManager.default.attributesOfItem(atPath: url.path)
        return (attributes?[.type] as? FileAttributeType) == .typeRegular
    }
}
