import Foundation

/// `MAR-INF/MANIFEST.json`, with torch-model-archiver's field names and meaning.
public struct Manifest: Equatable, Sendable, Codable {
    /// The `model` object.
    public struct Model: Equatable, Sendable, Codable {
        public var modelName: String
        /// The weights file at the archive's root (a TorchScript module).
        public var serializedFile: String?
        /// A built-in handler name (this server runs no other).
        public var handler: String
        public var modelVersion: String?
        /// A Python model file; stored for torch-model-archiver compatibility, never run.
        public var modelFile: String?
        public var requirementsFile: String?
        /// The model definition, normally `model-config.yaml`.
        public var configFile: String?

        public init(
            modelName: String, serializedFile: String?, handler: String, modelVersion: String?,
            modelFile: String? = nil, requirementsFile: String? = nil, configFile: String? = nil
        ) {
            self.modelName = modelName
            self.serializedFile = serializedFile
            self.handler = handler
            self.modelVersion = modelVersion
            self.modelFile = modelFile
            self.requirementsFile = requirementsFile
            self.configFile = configFile
        }
    }

    /// `dd/MM/yyyy HH:mm:ss`, local time, as torch-model-archiver writes it.
    public var createdOn: String?
    /// `python`, `python3` or `LSP`; recorded only.
    public var runtime: String
    public var model: Model
    public var archiverVersion: String?

    public init(createdOn: String?, runtime: String = "python", model: Model, archiverVersion: String? = Manifest.formatVersion) {
        self.createdOn = createdOn
        self.runtime = runtime
        self.model = model
        self.archiverVersion = archiverVersion
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        createdOn = try container.decodeIfPresent(String.self, forKey: .createdOn)
        runtime = try container.decodeIfPresent(String.self, forKey: .runtime) ?? "python"
        model = try container.decode(Model.self, forKey: .model)
        archiverVersion = try container.decodeIfPresent(String.self, forKey: .archiverVersion)
    }

    /// The torch-model-archiver release whose manifest format and `archiverVersion` this writes.
    public static let formatVersion = "0.12.0"
    /// `MAR-INF/MANIFEST.json`.
    public static let path = "MAR-INF/MANIFEST.json"
    /// The runtimes torch-model-archiver accepts (TorchServe parses the field into an enum).
    public static let runtimes = ["python", "python3", "LSP"]

    /// `createdOn` for `date`: `dd/MM/yyyy HH:mm:ss` in the local time zone.
    public static func creationTimestamp(_ date: Date = Date()) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = .current
        formatter.dateFormat = "dd/MM/yyyy HH:mm:ss"
        return formatter.string(from: date)
    }

    /// The largest manifest read (1 MiB); torch-model-archiver's are a few hundred bytes.
    public static let maxBytes = 1 << 20

    /// Decodes a manifest; throws ``ArchiveError/invalidManifest(path:detail:)`` saying what is missing.
    public static func decode(_ data: Data, path: String) throws -> Manifest {
        guard data.count <= maxBytes else {
            throw ArchiveError.invalidManifest(path: path, detail: "it is \(data.count) bytes, more than the \(maxBytes) read")
        }
        do {
            return try JSONDecoder().decode(Manifest.self, from: data)
        } catch DecodingError.keyNotFound(let key, let context) {
            let at = (context.codingPath.map(\.stringValue) + [key.stringValue]).joined(separator: ".")
            throw ArchiveError.invalidManifest(path: path, detail: "\(at) is missing")
        } catch DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context) {
            let at = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw ArchiveError.invalidManifest(path: path, detail: "\(at) has the wrong type (expected a string)")
        } catch {
            throw ArchiveError.invalidManifest(path: path, detail: "it is not valid JSON")
        }
    }

    /// The manifest as torch-model-archiver writes it: Python's `json.dumps(indent=2)`, fields in
    /// its order, non-ASCII escaped, no final newline.
    public var jsonText: String {
        var modelFields: [(String, String)] = [("modelName", model.modelName)]
        if let value = model.serializedFile { modelFields.append(("serializedFile", value)) }
        modelFields.append(("handler", model.handler))
        if let value = model.modelFile { modelFields.append(("modelFile", value)) }
        if let value = model.modelVersion { modelFields.append(("modelVersion", value)) }
        if let value = model.requirementsFile { modelFields.append(("requirementsFile", value)) }
        if let value = model.configFile { modelFields.append(("configFile", value)) }

        var lines = ["{"]
        var top: [String] = []
        if let createdOn { top.append("  \"createdOn\": \(Self.quoted(createdOn))") }
        top.append("  \"runtime\": \(Self.quoted(runtime))")
        let modelBody = modelFields.map { "    \(Self.quoted($0.0)): \(Self.quoted($0.1))" }.joined(separator: ",\n")
        top.append("  \"model\": {\n\(modelBody)\n  }")
        if let archiverVersion { top.append("  \"archiverVersion\": \(Self.quoted(archiverVersion))") }
        lines.append(top.joined(separator: ",\n"))
        lines.append("}")
        return lines.joined(separator: "\n")
    }

    /// A JSON string as Python's `json.dumps` writes it with `ensure_ascii=True`.
    static func quoted(_ string: String) -> String {
        var result = "\""
        for unit in string.utf16 {
            switch unit {
            case 0x22: result += "\\\""
            case 0x5C: result += "\\\\"
            case 0x0A: result += "\\n"
            case 0x0D: result += "\\r"
            case 0x09: result += "\\t"
            case 0x08: result += "\\b"
            case 0x0C: result += "\\f"
            case 0x20..<0x7F: result.unicodeScalars.append(Unicode.Scalar(UInt8(unit)))
            default: result += String(format: "\\u%04x", unit)
            }
        }
        return result + "\""
    }
}
