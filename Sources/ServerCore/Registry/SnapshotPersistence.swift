import ModelArchive
import Foundation
import Logging
import Synchronization

/// Writes the registry to the snapshot store after every management change, one write at a
/// time, so a later state never lands before an earlier one.
final class SnapshotPersistence: Sendable {
    let store: SnapshotStore?
    let logger: Logger
    private let writing = Mutex(())

    init(store: SnapshotStore?, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    /// The registry as a snapshot: every version with the settings it runs with.
    static func snapshot(of registry: ModelRegistry) -> Snapshot {
        let models = registry.entries().map { entry in
            Snapshot.Model(name: entry.name, defaultVersion: entry.defaultVersion, versions: entry.versions.map { version in
                Snapshot.Version(version: version.version, url: version.modelURL, settings: ModelSettings.Override(version.settings),
                                 handler: version.handlerOverride, archive: version.storedArchive)
            })
        }
        return Snapshot(createdOn: Date().formatted(.iso8601), models: models)
    }

    /// Writes the current registry, if there is a store.
    /// - Parameter change: the change being persisted, as the log line names it ("register unet 1.0").
    /// - Throws: `notPersisted` saying why; the caller undoes the change, and the previous
    ///   snapshot is still the one on disk.
    func persist(_ registry: ModelRegistry, change: String) throws(ModelServerError) {
        guard let store else { return }
        try writing.withLock { _ throws(ModelServerError) in
            do throws(SnapshotError) {
                try store.write(Self.snapshot(of: registry))
            } catch {
                logger.error("\(error); the change (\(change)) is undone, the previous snapshot stays")
                throw .notPersisted("\(change) was not done: the snapshot could not be written (\(error.reason)); free space in or repair the log folder, then retry")
            }
        }
    }
}

extension SnapshotError {
    /// Why, without the file (the client's message names the snapshot without the server's folders).
    var reason: String {
        switch self {
        case .notWritten(_, let reason), .unreadable(_, let reason): return reason
        }
    }
}
