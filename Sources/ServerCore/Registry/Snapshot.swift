import ModelArchive
import Foundation

/// The registry's state, written after every successful management change and restored at start.
public struct Snapshot: Codable, Sendable, Equatable {
    public struct Version: Codable, Sendable, Equatable {
        public var version: String
        public var url: String
        /// Every setting of the version as it ran (coded beside `version`, flat, as TorchServe's snapshot).
        public var settings: ModelSettings.Override
        /// The `handler` given at registration, when it replaced the archive's.
        public var handler: String?
        /// For a version registered from an `http(s)` URL: the file in the model store the
        /// download was saved as, which a restart opens instead of downloading again.
        public var archive: String?

        public init(version: String, url: String, settings: ModelSettings.Override, handler: String? = nil, archive: String? = nil) {
            self.version = version
            self.url = url
            self.settings = settings
            self.handler = handler
            self.archive = archive
        }

        public init(version: String, url: String, minWorkers: Int, maxWorkers: Int, batchSize: Int,
                    maxBatchDelay: Int, responseTimeout: Int, startupTimeout: Int, handler: String? = nil,
                    archive: String? = nil) {
            self.init(version: version, url: url, settings: ModelSettings.Override(
                minWorkers: minWorkers, maxWorkers: maxWorkers, batchSize: batchSize, maxBatchDelay: maxBatchDelay,
                responseTimeout: responseTimeout, startupTimeout: startupTimeout), handler: handler, archive: archive)
        }

        private enum CodingKeys: String, CodingKey {
            case version, url, handler, archive
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            version = try container.decode(String.self, forKey: .version)
            url = try container.decode(String.self, forKey: .url)
            handler = try container.decodeIfPresent(String.self, forKey: .handler)
            archive = try container.decodeIfPresent(String.self, forKey: .archive)
            settings = try ModelSettings.Override(from: decoder)
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(version, forKey: .version)
            try container.encode(url, forKey: .url)
            try container.encodeIfPresent(handler, forKey: .handler)
            try container.encodeIfPresent(archive, forKey: .archive)
            try settings.encode(to: encoder)
        }

        /// The registration that brings this version back: its settings, its handler, and the
        /// stored download (snapshots written before `archive` existed name the file the
        /// download was saved as, the URL's last component).
        func registration(model: String) -> RegistrationOptions {
            var options = RegistrationOptions(url: url, modelName: model, handler: handler, settings: settings)
            options.storedArchive = archive ?? URL(string: url)?.lastPathComponent
            return options
        }
    }

    public struct Model: Codable, Sendable, Equatable {
        public var name: String
        public var defaultVersion: String
        /// In registration order.
        public var versions: [Version]

        public init(name: String, defaultVersion: String, versions: [Version]) {
            self.name = name
            self.defaultVersion = defaultVersion
            self.versions = versions
        }
    }

    public var formatVersion = 1
    public var createdOn: String
    public var models: [Model]

    public init(createdOn: String, models: [Model]) {
        self.createdOn = createdOn
        self.models = models
    }
}

/// Writes and reads the snapshot file atomically: a crash at any instant leaves either the old
/// or the new snapshot, never a torn one.
public struct SnapshotStore: Sendable {
    public let file: URL
    /// Replaces a file with data; ``AtomicFile/write(_:to:)`` except in tests that make it fail.
    let replaceFile: @Sendable (Data, URL) throws(AtomicFileError) -> Void

    public init(directory: URL) {
        self.init(directory: directory, replaceFile: { data, file throws(AtomicFileError) in try AtomicFile.write(data, to: file) })
    }

    init(directory: URL, replaceFile: @escaping @Sendable (Data, URL) throws(AtomicFileError) -> Void) {
        file = directory.appendingPathComponent("snapshot.json")
        self.replaceFile = replaceFile
    }

    /// Writes the snapshot atomically (``AtomicFile``): readable only by this user, never torn.
    /// A folder that vanished is made again.
    /// - Throws: ``SnapshotError/notWritten(file:reason:)``; the previous snapshot is then unchanged.
    public func write(_ snapshot: Snapshot) throws(SnapshotError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data: Data
        do {
            data = try encoder.encode(snapshot)
        } catch {
            throw .notWritten(file: file.path, reason: "cannot encode it: \(error)")
        }
        let directory = file.deletingLastPathComponent()
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            let code = ((error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError)?.code
            throw .notWritten(file: file.path, reason: "cannot create its folder: \(code.map { Self.reason(errno: Int32($0)) } ?? "\(error)")")
        }
        do throws(AtomicFileError) {
            try replaceFile(data, file)
        } catch {
            throw .notWritten(file: file.path, reason: "cannot \(error.operation) \(error.path): \(Self.reason(errno: error.code))")
        }
    }

    /// The last snapshot written, or nil when there is none.
    /// - Throws: ``SnapshotError/unreadable(file:reason:)`` when it cannot be read or decoded.
    public func load() throws(SnapshotError) -> Snapshot? {
        guard FileManager.default.fileExists(atPath: file.path) else { return nil }
        let data: Data
        do {
            data = try Data(contentsOf: file)
        } catch {
            throw .unreadable(file: file.path, reason: "\(error)")
        }
        do {
            return try JSONDecoder().decode(Snapshot.self, from: data)
        } catch {
            let reason = data.isEmpty ? "it is empty" : "it is not a snapshot (\(data.count) bytes): \(Self.describe(error))"
            throw .unreadable(file: file.path, reason: reason)
        }
    }

    /// What a server restores at start: the last snapshot, or nil. A snapshot that cannot be read
    /// or decoded (truncated, corrupt) is moved aside to `snapshot.json.corrupt-<time>`, kept for
    /// inspection and never overwritten, and the server starts without it; temporary files that a
    /// crash during a write left behind are removed.
    /// - Returns: the snapshot, and what was wrong with the file when it was moved aside.
    /// - Throws: ``SnapshotError/unreadable(file:reason:)`` when a bad snapshot cannot even be
    ///   moved aside: a start that went on would overwrite it.
    public func loadAtStart(now: Date = Date()) throws(SnapshotError) -> (snapshot: Snapshot?, setAside: String?) {
        removeTemporaryFiles()
        do throws(SnapshotError) {
            return (try load(), nil)
        } catch {
            guard case .unreadable(_, let reason) = error else { throw error }
            let stamp = now.formatted(.iso8601).replacingOccurrences(of: ":", with: "")
            let kept = file.deletingLastPathComponent().appendingPathComponent("\(file.lastPathComponent).corrupt-\(stamp)")
            guard rename(file.path, kept.path) == 0 else {
                throw .unreadable(file: file.path, reason: "\(reason); moving it aside to \(kept.lastPathComponent) failed too (\(Self.reason(errno: errno))); fix or remove it, or start with --ncs")
            }
            return (nil, "snapshot \(file.path) is unusable (\(reason)); starting without it, the file is kept as \(kept.path)")
        }
    }

    /// Deletes `.snapshot.json-*.tmp` files: a write the process did not finish (killed, power cut).
    private func removeTemporaryFiles() {
        let directory = file.deletingLastPathComponent()
        let prefix = ".\(file.lastPathComponent)-"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        for name in names where name.hasPrefix(prefix) && name.hasSuffix(".tmp") {
            try? FileManager.default.removeItem(at: directory.appendingPathComponent(name))
        }
    }

    /// A decoding error in one line: what is wrong, and where in the document.
    private static func describe(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        switch error {
        case .dataCorrupted(let context), .keyNotFound(_, let context), .typeMismatch(_, let context), .valueNotFound(_, let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            let key: String
            if case .keyNotFound(let missing, _) = error { key = "missing key \(missing.stringValue)" } else { key = context.debugDescription }
            return path.isEmpty ? key : "\(key) at \(path)"
        @unknown default:
            return "\(error)"
        }
    }

    /// The system's message for an error number, with its name where it is one a full or
    /// read-only disk gives (`No space left on device (ENOSPC)`).
    static func reason(errno code: Int32) -> String {
        let names: [Int32: String] = [ENOSPC: "ENOSPC", EDQUOT: "EDQUOT", EROFS: "EROFS", EACCES: "EACCES", EPERM: "EPERM",
                                      ENOENT: "ENOENT", EIO: "EIO"]
        let text = String(cString: strerror(code))
        return names[code].map { "\(text) (\($0))" } ?? text
    }
}

public enum SnapshotError: Error, Sendable, CustomStringConvertible {
    /// The snapshot could not be written; the previous one is unchanged.
    case notWritten(file: String, reason: String)
    /// The snapshot at start could not be read or decoded.
    case unreadable(file: String, reason: String)

    public var description: String {
        switch self {
        case .notWritten(let file, let reason): return "snapshot \(file) not written: \(reason)"
        case .unreadable(let file, let reason): return "snapshot \(file) is unreadable: \(reason); start with --ncs to ignore it"
        }
    }
}
