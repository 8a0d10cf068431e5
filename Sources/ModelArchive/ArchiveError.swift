/// Why an archive could not be read, unpacked or written; one case per thing a user can fix.
///
/// `description` says what was wrong and what to do about it, in a form fit for a log line,
/// an HTTP error message or a command-line error.
public enum ArchiveError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The source is neither a zip (`.mar`), a gzip-compressed tar (`.tar.gz`) nor a folder.
    case unrecognizedFormat(path: String)
    /// A file the caller named does not exist; `role` says what it was for ("serialized file").
    case notFound(path: String, role: String)
    /// The archive's bytes are damaged or cut short.
    case corrupt(path: String, detail: String)
    /// The archive uses a feature this reader does not implement (encryption, a compression method, sparse files).
    case unsupported(path: String, entry: String?, detail: String)
    /// An entry would write outside the target folder or is not a plain file or folder.
    case unsafeEntry(path: String, entry: String, reason: UnsafeEntryReason)
    /// Unpacking would write more than `limit` bytes in total.
    case tooLarge(path: String, entry: String?, limit: Int64)
    /// The archive holds more than `limit` entries.
    case tooManyEntries(path: String, limit: Int)
    /// An entry unpacks to more than `limit` times its compressed size.
    case compressionRatioExceeded(path: String, entry: String, limit: Int)
    /// The archive has no `MAR-INF/MANIFEST.json` and is not a SageMaker-style folder either.
    case missingManifest(path: String)
    /// `MAR-INF/MANIFEST.json` is not valid.
    case invalidManifest(path: String, detail: String)
    /// A file the manifest or the model definition names is not in the archive.
    case missingFile(path: String, file: String, referencedBy: String)
    /// A model name with characters outside `A-Z a-z 0-9 _ - .`, or too long.
    case invalidModelName(String)
    /// A model version with characters outside `A-Z a-z 0-9 _ - .`, or too long.
    case invalidModelVersion(String)
    /// A handler name that is not one of the built-in handlers.
    case unknownHandler(String)
    /// A Python handler (`x.py`, `module:function`); this server never runs Python code.
    case pythonHandler(String)
    /// `model-config.yaml` (or a handler spec) has errors; each issue names its key and line.
    case invalidConfig(file: String, issues: [ConfigIssue])
    /// Two places name different handlers (manifest and config, or spec file and config).
    case handlerConflict(detail: String)
    /// The output file or folder exists and overwriting was not asked for.
    case outputExists(path: String)
    /// Arguments that cannot make a valid archive (two files with the same name, a bad runtime).
    case invalidInput(detail: String)
    /// A file-system operation failed.
    case io(path: String, operation: String, detail: String)

    public var description: String {
        switch self {
        case .unrecognizedFormat(let path):
            return "\(path) is not a model archive: expected a .mar (zip) file, a .tar.gz file or a folder. "
                + "Create one with `archiver --model-name NAME --serialized-file MODEL.pt --handler HANDLER`."
        case .notFound(let path, let role):
            return "The \(role) \(path) does not exist. Check the path."
        case .corrupt(let path, let detail):
            return "\(path) is damaged: \(detail). Copy or download it again, or re-create it with `archiver`."
        case .unsupported(let path, let entry, let detail):
            let at = entry.map { " (entry \"\(Excerpt.of($0))\")" } ?? ""
            return "\(path)\(at) uses something this server cannot read: \(detail). "
                + "Re-create the archive with `archiver` or torch-model-archiver."
        case .unsafeEntry(let path, let entry, let reason):
            return "\(path) was refused: entry \"\(Excerpt.of(entry))\" \(reason). Nothing was unpacked. "
                + "Archives may only hold plain files and folders inside the archive; re-create it with `archiver`."
        case .tooLarge(let path, let entry, let limit):
            let at = entry.map { " at entry \"\(Excerpt.of($0))\"" } ?? ""
            return "\(path) unpacks to more than \(limit) bytes\(at), the configured limit. Nothing was kept. "
                + "If the model is really that large, raise the unpacked-size limit."
        case .tooManyEntries(let path, let limit):
            return "\(path) holds more than \(limit) entries, the configured limit. Nothing was unpacked. "
                + "Pack fewer files (put many small files in one), or raise the entry-count limit."
        case .compressionRatioExceeded(let path, let entry, let limit):
            return "\(path) was refused: entry \"\(Excerpt.of(entry))\" unpacks to more than \(limit) times its compressed size, "
                + "which is how zip bombs look. Nothing was kept. If the archive is trusted, raise the compression-ratio limit."
        case .missingManifest(let path):
            return "\(path) has no MAR-INF/MANIFEST.json, and its top folder does not hold exactly one "
                + ".pt/.pth/.torchscript file with a model-config.yaml naming `handler: {kind: ...}`. "
                + "Create the archive with `archiver`."
        case .invalidManifest(let path, let detail):
            return "\(path): MAR-INF/MANIFEST.json is invalid: \(detail). Re-create the archive with `archiver`."
        case .missingFile(let path, let file, let referencedBy):
            let file = Excerpt.of(file)
            return "\(path) does not contain \"\(file)\", which \(referencedBy) names. "
                + "Add it to the archive (archiver --extra-files \(file)) or fix the name."
        case .invalidModelName(let name):
            return "Invalid model name \"\(Excerpt.of(name))\": use 1 to 64 characters from A-Z a-z 0-9 _ - ., "
                + "starting with a letter or digit (no path separators)."
        case .invalidModelVersion(let version):
            return "Invalid model version \"\(Excerpt.of(version))\": use 1 to 64 characters from A-Z a-z 0-9 _ - ., "
                + "starting with a letter or digit, for example 1.0."
        case .unknownHandler(let name):
            return "Unknown handler \"\(Excerpt.of(name))\". Use a built-in handler (\(HandlerKind.builtInList)) "
                + "or a handler spec file such as handlers/image_segmenter.yaml."
        case .pythonHandler(let name):
            return "Handler \"\(Excerpt.of(name))\" is Python code; Python handlers are not run by this server. "
                + "Use a built-in handler (\(HandlerKind.builtInList)) and describe pre- and post-processing "
                + "in the handler: section of model-config.yaml (see handlers/*.yaml)."
        case .invalidConfig(let file, let issues):
            let lines = issues.map { "  \(file):\($0.description)" }.joined(separator: "\n")
            let noun = issues.count == 1 ? "error" : "errors"
            return "\(file) has \(issues.count) \(noun):\n\(lines)"
        case .handlerConflict(let detail):
            return "Conflicting handlers: \(detail)."
        case .outputExists(let path):
            return "\(path) already exists. Pass -f/--force to overwrite it, or choose another --export-path or --model-name."
        case .invalidInput(let detail):
            return detail
        case .io(let path, let operation, let detail):
            return "Could not \(operation) \(path): \(detail). Check that the path exists, is writable and the disk is not full."
        }
    }
}

/// Why an archive entry was refused.
public enum UnsafeEntryReason: Equatable, Sendable, CustomStringConvertible {
    /// A path component is `..`.
    case parentTraversal
    /// The path starts at the file-system root (or a drive letter).
    case absolutePath
    /// The name is empty, has a NUL byte or is not valid UTF-8.
    case invalidName
    /// A symbolic link; links are refused whatever they point to.
    case symbolicLink(target: String)
    /// A hard link; links are refused whatever they point to.
    case hardLink(target: String)
    /// A device, FIFO or socket.
    case specialFile
    /// Two entries unpack to the same path (or a file and a folder share one).
    case duplicate
    /// Entries share compressed bytes, the construction of overlapping zip bombs.
    case overlappingData

    public var description: String {
        switch self {
        case .parentTraversal: return "climbs out of the target folder with \"..\""
        case .absolutePath: return "has an absolute path"
        case .invalidName: return "has an empty or invalid name"
        case .symbolicLink(let target): return "is a symbolic link (to \"\(Excerpt.of(target))\")"
        case .hardLink(let target): return "is a hard link (to \"\(Excerpt.of(target))\")"
        case .specialFile: return "is a device, FIFO or socket"
        case .duplicate: return "appears twice, or clashes with a folder of the same name"
        case .overlappingData: return "shares its compressed data with another entry (an overlapping zip bomb)"
        }
    }
}
