import Foundation

/// The arguments of torch-model-archiver, as `archiver` takes them.
public struct PackRequest: Sendable {
    public var modelName: String
    public var version: String
    public var serializedFile: URL
    /// A built-in handler name or a handler spec file path.
    public var handler: String
    /// Files, or folders whose contents are stored at the archive's root.
    public var extraFiles: [URL]
    public var configFile: URL?
    public var requirementsFile: URL?
    public var modelFile: URL?
    public var runtime: String
    public var createdOn: Date

    public init(
        modelName: String, version: String = "1.0", serializedFile: URL, handler: String, extraFiles: [URL] = [],
        configFile: URL? = nil, requirementsFile: URL? = nil, modelFile: URL? = nil, runtime: String = "python",
        createdOn: Date = Date()
    ) {
        self.modelName = modelName
        self.version = version
        self.serializedFile = serializedFile
        self.handler = handler
        self.extraFiles = extraFiles
        self.configFile = configFile
        self.requirementsFile = requirementsFile
        self.modelFile = modelFile
        self.runtime = runtime
        self.createdOn = createdOn
    }
}

/// One file of an archive-to-be: where it is stored and where its bytes come from.
public struct PackageEntry: Sendable, Equatable {
    public enum Source: Sendable, Equatable {
        case file(URL)
        case bytes(Data)
    }

    /// The path inside the archive, `/`-separated.
    public var path: String
    public var source: Source

    public init(path: String, source: Source) {
        self.path = path
        self.source = source
    }
}

/// A validated archive-to-be: manifest, model definition and the files to store.
public struct ModelPackage: Sendable {
    /// The model name; the archive is `<name>.mar`, `<name>.tar.gz` or `<name>/`.
    public var name: ModelName
    public var manifest: Manifest
    /// The model definition as stored (spec file merged in), when there is one.
    public var config: ModelConfig?
    /// Everything but `MAR-INF/MANIFEST.json`, which writers add last.
    public var entries: [PackageEntry]
    /// Things the user should know that do not stop archiving.
    public var warnings: [String]

    /// Checks the request and gathers the files, as torch-model-archiver lays them out: every
    /// file at the root under its own name, the contents of folders given as extra files too.
    ///
    /// Checks everything but whether the serialized file loads (that needs libtorch; `archiver`
    /// does it): names, version, runtime, handler, config, that files exist, that no two files
    /// share a name, and that files the handler spec names are included.
    /// - Throws: ``ArchiveError``.
    public static func prepare(_ request: PackRequest) throws -> ModelPackage {
        let name = try ModelName(validating: request.modelName)
        try ModelName.validateVersion(request.version)
        guard Manifest.runtimes.contains(request.runtime) else {
            throw ArchiveError.invalidInput(
                detail: "Unknown runtime \"\(request.runtime)\": use one of \(Manifest.runtimes.joined(separator: ", ")) "
                    + "(it is recorded only; this server runs no Python).")
        }
        let handler = try HandlerArgument(request.handler)
        var warnings: [String] = []
        var entries: [PackageEntry] = []

        try requireFile(request.serializedFile, role: "serialized file")
        entries.append(PackageEntry(path: request.serializedFile.lastPathComponent, source: .file(request.serializedFile)))

        let configName = request.configFile?.lastPathComponent ?? ModelConfig.defaultFileName
        let configText = try request.configFile.map { try FileIO.readText($0, role: "config file", maxBytes: YAMLDocument.maxBytes) }
        let definition = try handler.modelDefinition(configText: configText, configName: configName)
        if let definition {
            entries.append(PackageEntry(path: configName, source: .bytes(Data(definition.text.utf8))))
            warnings += definition.config.warnings.map { "\(configName):\($0.description)" }
        }
        if let modelFile = request.modelFile {
            try requireFile(modelFile, role: "model file")
            entries.append(PackageEntry(path: modelFile.lastPathComponent, source: .file(modelFile)))
            warnings.append("\(modelFile.lastPathComponent) is stored for torch-model-archiver compatibility; "
                + "this server never runs Python code, the TorchScript file is the model.")
        }
        if let requirementsFile = request.requirementsFile {
            try requireFile(requirementsFile, role: "requirements file")
            entries.append(PackageEntry(path: requirementsFile.lastPathComponent, source: .file(requirementsFile)))
            warnings.append("\(requirementsFile.lastPathComponent) is stored but never installed: this server runs no Python.")
        }
        for extra in request.extraFiles {
            entries += try extraEntries(extra, warnings: &warnings)
        }
        try checkUnique(entries)

        let spec = definition?.config.handler ?? HandlerSpec.defaults(for: handler.kind)
        let stored = Set(entries.map(\.path))
        for (key, file) in spec.referencedFiles where !stored.contains(file) {
            let referencedBy = definition?.config.handler == nil
                ? "the \(handler.kind.rawValue) handler's default \(key)" : "\(configName)'s \(key)"
            throw ArchiveError.missingFile(path: "the archive", file: file, referencedBy: referencedBy)
        }

        let manifest = Manifest(
            createdOn: Manifest.creationTimestamp(request.createdOn),
            runtime: request.runtime,
            model: Manifest.Model(
                modelName: name.rawValue, serializedFile: request.serializedFile.lastPathComponent,
                handler: handler.kind.rawValue, modelVersion: request.version,
                modelFile: request.modelFile?.lastPathComponent,
                requirementsFile: request.requirementsFile?.lastPathComponent,
                configFile: definition == nil ? nil : configName
            )
        )
        return ModelPackage(name: name, manifest: manifest, config: definition?.config, entries: entries, warnings: warnings)
    }

    private static func requireFile(_ url: URL, role: String) throws {
        switch FileIO.resolvedKind(of: url) {
        case .file: return
        case .missing: throw ArchiveError.notFound(path: url.path, role: role)
        default: throw ArchiveError.invalidInput(detail: "The \(role) \(url.path) is not a regular file.")
        }
    }

    /// A file under its own name, or a folder's files under their paths relative to it
    /// (hidden folders, `__pycache__` and `__MACOSX` skipped, as torch-model-archiver does).
    private static func extraEntries(_ url: URL, warnings: inout [String]) throws -> [PackageEntry] {
        switch FileIO.resolvedKind(of: url) {
        case .file:
            return [PackageEntry(path: url.lastPathComponent, source: .file(url))]
        case .directory:
            var entries: [PackageEntry] = []
            try collect(url, prefix: "", into: &entries, warnings: &warnings)
            return entries
        case .missing:
            throw ArchiveError.notFound(path: url.path, role: "extra file")
        case .symbolicLink, .other:
            throw ArchiveError.invalidInput(detail: "The extra file \(url.path) is not a regular file or folder.")
        }
    }

    private static func collect(_ folder: URL, prefix: String, into entries: inout [PackageEntry], warnings: inout [String]) throws {
        for name in try FileIO.contents(of: folder) {
            let url = folder.appendingPathComponent(name)
            let path = prefix + name
            switch FileIO.resolvedKind(of: url) {
            case .file:
                if path == Manifest.path {
                    warnings.append("Skipped \(url.path): the archive's manifest is written by archiver.")
                } else {
                    entries.append(PackageEntry(path: path, source: .file(url)))
                }
            case .directory:
                if name.hasPrefix(".") || name == "__pycache__" || name == "__MACOSX" { continue }
                if FileIO.kind(of: url) == .symbolicLink {
                    warnings.append("Skipped \(url.path): links to folders are not followed.")
                    continue
                }
                try collect(url, prefix: path + "/", into: &entries, warnings: &warnings)
            default:
                warnings.append("Skipped \(url.path): not a regular file.")
            }
        }
    }

    private static func checkUnique(_ entries: [PackageEntry]) throws {
        var seen: [String: PackageEntry.Source] = [:]
        for entry in entries {
            if let other = seen[entry.path] {
                func describe(_ source: PackageEntry.Source) -> String {
                    if case .file(let url) = source { return url.path }
                    return "the model definition"
                }
                throw ArchiveError.invalidInput(
                    detail: "Two files would be stored as \"\(entry.path)\": \(describe(other)) and \(describe(entry.source)). "
                        + "Rename one of them; every file is stored at the archive's root under its own name.")
            }
            seen[entry.path] = entry.source
        }
    }
}
