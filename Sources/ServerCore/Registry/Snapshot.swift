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

    public init(directory: URL) {
        file = directory.appendingPathComponent("snapshot.json")
    }

    /// Writes the snapshot atomically (``AtomicFile``): readable only by this user, never torn.
    public func write(_ snapshot: Snapshot) throws {
        let directory = file.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do {
            try AtomicFile.write(try encoder.encode(snapshot), to: file)
        } catch let error as AtomicFileError {
            throw SnapshotError.io(error.description)
        }
    }

    /// The last snapshot written, or nil when there is none.
    public func load() throws -> Snapshot? {
        guard FileManager.default.fileExists(atPath: file.path) else { return nil }
        do {
            return try JSONDecoder().decode(Snapshot.self, from: Data(contentsOf: file))
        } catch {
            throw SnapshotError.io("snapshot \(file.path) is unreadable: \(error); start with --ncs to ignore it")
        }
    }
}

public enum SnapshotError: Error, Sendable, CustomStringConvertible {
    case io(String)

    public var description: String {
        switch self {
        case .io(let message): return message
        }
    }
}
