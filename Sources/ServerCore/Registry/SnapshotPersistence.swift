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
    /// - Throws: `modelFailure` saying the change was applied but not persisted.
    func persist(_ registry: ModelRegistry) throws(ModelServerError) {
        guard let store else { return }
        try writing.withLock { _ throws(ModelServerError) in
            do {
                try store.write(Self.snapshot(of: registry))
            } catch {
                logger.error("snapshot not written: \(error)")
                throw .modelFailure("the change was applied but the snapshot could not be written: \(error)")
            }
        }
    }
}
