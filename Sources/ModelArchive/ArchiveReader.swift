import Foundation

/// Opens model archives: `.mar` (zip), `.tar.gz`/`.tgz`, or an unpacked folder.
public enum ArchiveReader {
    /// File extensions of a serialized model in a folder without a manifest (SageMaker layout).
    public static let modelFileExtensions = ["pt", "pth", "torchscript", "pt2"]

    /// Opens an archive, unpacking it first unless it is a folder.
    ///
    /// An archive file is unpacked into a new folder `<name>-<random>` inside `parent`, through a
    /// hidden temporary sibling that is renamed into place only when every entry is written; on any
    /// error nothing is left in `parent`.
    /// - Parameters:
    ///   - source: A `.mar`, `.tar.gz`, `.tgz` or `.tar` file, or a folder (read in place).
    ///   - parent: Where archive files are unpacked; created if missing.
    ///   - limits: Bounds on unpacked size, entry count and compression ratio.
    /// - Throws: ``ArchiveError``.
    public static func open(_ source: URL, extractingInto parent: URL, limits: ExtractionLimits = .default) throws -> OpenedArchive {
        let format = try ArchiveFormat.detect(source)
        if format == .folder { return try read(folder: source) }
        let destination = parent.appendingPathComponent("\(stem(of: source))-\(UUID().uuidString.prefix(8).lowercased())")
        _ = try extract(source, to: destination, limits: limits)
        do {
            var opened = try read(folder: destination, sourceName: stem(of: source))
            opened.extractedFolder = destination
            opened.format = format
            return opened
        } catch {
            FileIO.remove(destination)
            throw error
        }
    }

    /// Unpacks an archive file into `destination`, which must not exist yet.
    ///
    /// Entries go to a hidden temporary sibling folder, renamed to `destination` once all are
    /// written; on any error the temporary folder is removed and `destination` never appears.
    /// - Returns: The format that was found.
    /// - Throws: ``ArchiveError``: unsafe entries, limits, damaged data, file-system errors.
    @discardableResult
    public static func extract(_ source: URL, to destination: URL, limits: ExtractionLimits = .default) throws -> ArchiveFormat {
        let format = try ArchiveFormat.detect(source)
        guard format != .folder else {
            throw ArchiveError.invalidInput(detail: "\(source.path) is a folder; read it in place with ArchiveReader.read(folder:).")
        }
        guard FileIO.kind(of: destination) == .missing else {
            throw ArchiveError.io(path: destination.path, operation: "unpack into", detail: "it already exists")
        }
        try FileIO.createDirectories(destination.deletingLastPathComponent())
        let temporary = FileIO.temporarySibling(of: destination)
        try FileIO.makeDirectory(temporary)
        do {
            let file = try InputFile(source, role: "model archive")
            let sink = ExtractionSink(archivePath: source.path, root: temporary, limits: limits)
            switch format {
            case .zip: try ZipExtractor.extract(file, into: sink)
            case .tarGzip: try TarExtractor.extract(file, gzipped: true, into: sink)
            case .tar: try TarExtractor.extract(file, gzipped: false, into: sink)
            case .folder: break
            }
            try FileIO.rename(temporary, to: destination)
        } catch {
            FileIO.remove(temporary)
            throw error
        }
        return format
    }

    /// Removes the hidden temporary folders that an interrupted ``extract(_:to:limits:)`` left in
    /// `parent` (a crash or power loss mid-way); call it before unpacking into `parent` at start-up.
    /// - Returns: The folders removed.
    @discardableResult
    public static func removeInterruptedExtractions(in parent: URL) -> [URL] {
        guard let names = try? FileIO.contents(of: parent) else { return [] }
        let stale = names.filter { $0.hasPrefix(".") && $0.contains(FileIO.temporaryMarker) }
            .map { parent.appendingPathComponent($0) }
        stale.forEach(FileIO.remove)
        return stale
    }

    /// Reads an unpacked archive in place: finds its root, decodes or synthesises the manifest,
    /// parses the model definition and checks that every file they name is there.
    public static func read(folder: URL) throws -> OpenedArchive {
        try read(folder: folder, sourceName: folder.lastPathComponent)
    }

    static func read(folder: URL, sourceName: String) throws -> OpenedArchive {
        guard FileIO.resolvedKind(of: folder) == .directory else {
            throw ArchiveError.notFound(path: folder.path, role: "model folder")
        }
        let root = try findRoot(folder)
        let manifestURL = root.appendingPathComponent(Manifest.path)
        if FileIO.resolvedKind(of: manifestURL) == .file {
            let data = try FileIO.readData(manifestURL, role: "manifest", maxBytes: Manifest.maxBytes)
            let manifest = try Manifest.decode(data, path: folder.path)
            return try validate(manifest, root: root, displayPath: folder.path, synthesized: false)
        }
        return try synthesize(root: root, displayPath: folder.path, sourceName: sourceName)
    }

    /// The folder holding `MAR-INF/MANIFEST.json`: the folder itself, or its only subfolder
    /// (torch-model-archiver's `tgz` format puts everything under `<model-name>/`).
    private static func findRoot(_ folder: URL) throws -> URL {
        if FileIO.resolvedKind(of: folder.appendingPathComponent(Manifest.path)) == .file { return folder }
        let visible = try FileIO.contents(of: folder).filter { !$0.hasPrefix(".") }
        if visible.count == 1 {
            let only = folder.appendingPathComponent(visible[0])
            if FileIO.kind(of: only) == .directory, FileIO.kind(of: only.appendingPathComponent(Manifest.path)) == .file {
                return only
            }
        }
        return folder
    }

    private static func validate(_ manifest: Manifest, root: URL, displayPath: String, synthesized: Bool) throws -> OpenedArchive {
        let model = manifest.model
        let name = try ModelName(validating: model.modelName)
        let version = model.modelVersion ?? "1.0"
        try ModelName.validateVersion(version)
        let handler = try HandlerKind(handlerName: model.handler)

        guard let serializedName = model.serializedFile else {
            throw ArchiveError.invalidManifest(
                path: displayPath, detail: "model.serializedFile is missing; this server needs a TorchScript file")
        }
        let serializedFile = try fileInArchive(serializedName, root: root, displayPath: displayPath,
                                               referencedBy: "the manifest's model.serializedFile")

        var configFile: URL?
        if let configName = model.configFile {
            configFile = try fileInArchive(configName, root: root, displayPath: displayPath,
                                           referencedBy: "the manifest's model.configFile")
        } else if FileIO.resolvedKind(of: root.appendingPathComponent(ModelConfig.defaultFileName)) == .file {
            configFile = root.appendingPathComponent(ModelConfig.defaultFileName)
        }
        let config = try configFile.map { try ModelConfig.load(contentsOf: $0, handlerKind: handler) } ?? ModelConfig()
        let spec = config.handler ?? HandlerSpec.defaults(for: handler)
        let configName = configFile?.lastPathComponent ?? ModelConfig.defaultFileName
        for (key, file) in spec.referencedFiles {
            let referencedBy = config.handler == nil
                ? "the \(handler.rawValue) handler's default \(key) (there is no handler: section in \(configName))"
                : "\(configName)'s \(key)"
            _ = try fileInArchive(file, root: root, displayPath: displayPath, referencedBy: referencedBy)
        }
        return OpenedArchive(
            root: root, extractedFolder: nil, format: .folder, manifest: manifest, isManifestSynthesized: synthesized,
            name: name, version: version, handler: handler, config: config, handlerSpec: spec,
            serializedFile: serializedFile, aotInductor: try aotInductorPackage(serializedFile), configFile: configFile
        )
    }

    /// The serialized file's AOTInductor facts, or nil when it is not such a package. A damaged
    /// zip is left for the TorchScript loader to report, unless the name says `.pt2`.
    private static func aotInductorPackage(_ file: URL) throws -> AOTInductorPackageInfo? {
        do {
            return try AOTInductorPackageInfo.read(file)
        } catch {
            if file.pathExtension.lowercased() == "pt2" { throw error }
            return nil
        }
    }

    /// A SageMaker-style folder: one model file and a `model-config.yaml` whose `handler.kind` names the handler.
    private static func synthesize(root: URL, displayPath: String, sourceName: String) throws -> OpenedArchive {
        let names = try FileIO.contents(of: root)
        let models = names.filter {
            modelFileExtensions.contains(($0 as NSString).pathExtension.lowercased())
                && FileIO.resolvedKind(of: root.appendingPathComponent($0)) == .file
        }
        let configURL = root.appendingPathComponent(ModelConfig.defaultFileName)
        guard models.count == 1, FileIO.resolvedKind(of: configURL) == .file else {
            throw ArchiveError.missingManifest(path: displayPath)
        }
        let config = try ModelConfig.load(contentsOf: configURL)
        guard let kind = config.handler?.kind else { throw ArchiveError.missingManifest(path: displayPath) }
        let modelStem = (models[0] as NSString).deletingPathExtension
        let name = ModelName.isValid(sourceName) ? sourceName : modelStem
        let manifest = Manifest(
            createdOn: nil, runtime: "python",
            model: Manifest.Model(modelName: name, serializedFile: models[0], handler: kind.rawValue,
                                  modelVersion: "1.0", configFile: ModelConfig.defaultFileName),
            archiverVersion: nil
        )
        return try validate(manifest, root: root, displayPath: displayPath, synthesized: true)
    }

    /// A file named by the manifest or the config: a relative path that stays in the archive and exists.
    private static func fileInArchive(_ name: String, root: URL, displayPath: String, referencedBy: String) throws -> URL {
        guard let components = try? EntryPath.components(of: name), !components.isEmpty else {
            throw ArchiveError.invalidManifest(
                path: displayPath, detail: "\(referencedBy) \"\(Excerpt.of(name))\" points outside the archive")
        }
        let url = components.reduce(root) { $0.appendingPathComponent($1) }
        guard FileIO.resolvedKind(of: url) == .file else {
            throw ArchiveError.missingFile(path: displayPath, file: name, referencedBy: referencedBy)
        }
        return url
    }

    /// `unet.mar` → `unet`, `model.tar.gz` → `model`, a folder's own name.
    static func stem(of url: URL) -> String {
        let name = url.lastPathComponent
        for suffix in [".tar.gz", ".tgz", ".mar", ".zip", ".tar"] where name.lowercased().hasSuffix(suffix) {
            let stem = String(name.dropLast(suffix.count))
            return stem.isEmpty ? "model" : stem
        }
        return name
    }
}
