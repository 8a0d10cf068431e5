import Foundation
import Logging
@testable import ServerCore
import ServerTestSupport
import Synchronization
import TestFixtures
import Testing

/// Faults around persistence and archives: a snapshot that cannot be written undoes the change
/// it was for, a corrupt snapshot at start is kept aside, and an archive that vanishes from the
/// store or the work folder while its model is registered fails cleanly.
@Suite struct FaultInjectionTests {
    /// A snapshot store whose writes fail with `ENOSPC` while `failing` is set.
    struct FailingStore {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("snapshots-\(UUID().uuidString)")
        let failing = Failing()
        var store: SnapshotStore {
            SnapshotStore(directory: folder) { [failing] data, file throws(AtomicFileError) in
                if failing.on { throw AtomicFileError(path: file.path, operation: "write", errno: ENOSPC) }
                try AtomicFile.write(data, to: file)
            }
        }
    }

    final class Failing: Sendable {
        private let state = Mutex(false)
        var on: Bool {
            get { state.withLock { $0 } }
            set { state.withLock { $0 = newValue } }
        }
    }

    static func expectNotPersisted(_ error: ModelServerError?, sourceLocation: SourceLocation = #_sourceLocation) {
        guard case .notPersisted(let message) = error else {
            Issue.record("expected notPersisted, got \(String(describing: error))", sourceLocation: sourceLocation)
            return
        }
        #expect(message.contains("No space left on device (ENOSPC)") && message.contains("was not done"), "\(message)",
                sourceLocation: sourceLocation)
    }

    @Test func aChangeWhoseSnapshotCannotBeWrittenIsUndoneAndTheServerKeepsServing() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        try store.addFolderArchive(name: "unet_v2", version: "2.0", model: "models/unet_tiny.pt", config: TestModelStore.segmenterConfig)
        try store.addFolderArchive(name: "unet_v3", version: "3.0", model: "models/unet_tiny.pt", config: TestModelStore.segmenterConfig)
        let snapshots = FailingStore()
        defer { try? FileManager.default.removeItem(at: snapshots.folder) }
        let log = CapturedLog()
        let server = ModelServer(configuration: ServerConfiguration(modelStore: store.root, workDirectory: store.work),
                                 logger: log.logger, snapshots: snapshots.store)
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "unet_tiny"))
        try await server.register(RegistrationOptions(url: "unet_v2", modelName: "unet_tiny"))
        let written = try #require(try snapshots.store.load())
        let body = try Fixtures.bytes("images/rgb.png")

        snapshots.failing.on = true
        Self.expectNotPersisted(await #expect(throws: ModelServerError.self) { try await server.register(RegistrationOptions(url: "unet_v3", modelName: "other")) })
        #expect(throws: ModelServerError.modelNotFound(model: "other")) { try server.describe(model: "other") }
        Self.expectNotPersisted(await #expect(throws: ModelServerError.self) { try await server.register(RegistrationOptions(url: "unet_v3", modelName: "other"), wait: false) })
        #expect(throws: ModelServerError.modelNotFound(model: "other")) { try server.describe(model: "other") }

        Self.expectNotPersisted(await #expect(throws: ModelServerError.self) { try await server.scale(model: "unet_tiny", minWorkers: 2, maxWorkers: 2, wait: true) })
        #expect(try server.describe(model: "unet_tiny")[0].settings.minWorkers == 1)
        #expect(try server.describe(model: "unet_tiny")[0].workers.count == 1)

        Self.expectNotPersisted(#expect(throws: ModelServerError.self) { try server.setDefault(model: "unet_tiny", version: "2.0") })
        #expect(try server.describe(model: "unet_tiny")[0].modelVersion == "1.0")

        Self.expectNotPersisted(await #expect(throws: ModelServerError.self) { try await server.unregister(model: "unet_tiny", version: "2.0") })
        #expect(try server.describe(model: "unet_tiny", version: "all").map(\.modelVersion) == ["1.0", "2.0"])
        #expect(try await server.predict(model: "unet_tiny", version: "2.0", request: InferenceRequest(body: body)).version == "2.0")

        Self.expectNotPersisted(await #expect(throws: ModelServerError.self) { _ = try await server.swap(model: "unet_tiny", url: "unet_v3") })
        #expect(try server.describe(model: "unet_tiny", version: "all").map(\.modelVersion) == ["1.0", "2.0"])
        #expect(try server.describe(model: "unet_tiny")[0].modelVersion == "1.0")

        // The model keeps answering; the file on disk is still the last snapshot acknowledged.
        #expect(try await server.predict(model: "unet_tiny", request: InferenceRequest(body: body)).version == "1.0")
        #expect(try snapshots.store.load()?.models == written.models)
        #expect(server.snapshot().models == written.models)
        #expect(log.lines.contains { $0.contains("not written") && $0.contains("ENOSPC") && $0.contains("set the default of unet_tiny to version 2.0") && $0.contains("undone") },
                "\(log.lines)")

        // Space again: the next change is written.
        snapshots.failing.on = false
        try server.setDefault(model: "unet_tiny", version: "2.0")
        #expect(try snapshots.store.load()?.models.first?.defaultVersion == "2.0")
    }

    @Test(arguments: ["truncated", "empty", "garbage", "wrong shape"])
    func aCorruptSnapshotAtStartIsKeptAsideAndTheNextChangeWritesAFreshOne(kind: String) async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("snapshots-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let snapshots = SnapshotStore(directory: folder)
        try snapshots.write(Snapshot(createdOn: "2026-12-07T00:00:00Z", models: [
            .init(name: "unet_tiny", defaultVersion: "1.0", versions: [
                .init(version: "1.0", url: "unet_tiny", minWorkers: 1, maxWorkers: 1, batchSize: 1, maxBatchDelay: 100,
                      responseTimeout: 120, startupTimeout: 120)])]))
        let good = try Data(contentsOf: snapshots.file)
        let bad: Data
        switch kind {
        case "truncated": bad = good.prefix(good.count / 2)
        case "empty": bad = Data()
        case "garbage": bad = Data([0x00, 0xFF, 0x7B, 0x13] + Array("not json".utf8))
        default: bad = Data(#"{"formatVersion": 1, "createdOn": "2026-12-07T00:00:00Z", "models": "unet_tiny"}"#.utf8)
        }
        try bad.write(to: snapshots.file)
        // A write the last process did not finish.
        try Data("{".utf8).write(to: folder.appendingPathComponent(".snapshot.json-\(UUID().uuidString).tmp"))

        let (restored, setAside) = try snapshots.loadAtStart(now: Date(timeIntervalSince1970: 1_796_601_600))
        #expect(restored == nil)
        let message = try #require(setAside)
        #expect(message.contains(snapshots.file.path) && message.contains("snapshot.json.corrupt-"), "\(message)")
        if kind == "empty" { #expect(message.contains("it is empty")) }
        if kind == "wrong shape" { #expect(message.contains("models"), "\(message)") }
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        let kept = try #require(names.first { $0.hasPrefix("snapshot.json.corrupt-") })
        #expect(names == [kept])
        #expect(try Data(contentsOf: folder.appendingPathComponent(kept)) == bad)

        let server = ModelServer(configuration: ServerConfiguration(modelStore: store.root, workDirectory: store.work),
                                 logger: quietLogger, snapshots: snapshots)
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "unet_tiny"))
        #expect(try snapshots.load()?.models.map(\.name) == ["unet_tiny"])
        #expect(try Data(contentsOf: folder.appendingPathComponent(kept)) == bad)
    }

    @Test func restoringASnapshotDoesNotRewriteItHalfWay() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("snapshots-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let snapshots = SnapshotStore(directory: folder)
        let version = Snapshot.Version(version: "1.0", url: "unet_tiny", minWorkers: 1, maxWorkers: 1, batchSize: 1, maxBatchDelay: 100,
                                       responseTimeout: 120, startupTimeout: 120)
        let snapshot = Snapshot(createdOn: "2026-12-07T00:00:00Z", models: [
            .init(name: "a", defaultVersion: "1.0", versions: [version]),
            .init(name: "gone", defaultVersion: "1.0", versions: [Snapshot.Version(
                version: "1.0", url: "gone.mar", minWorkers: 1, maxWorkers: 1, batchSize: 1, maxBatchDelay: 100,
                responseTimeout: 120, startupTimeout: 120)]),
        ])
        try snapshots.write(snapshot)
        let before = try Data(contentsOf: snapshots.file)
        let server = ModelServer(configuration: ServerConfiguration(modelStore: store.root, workDirectory: store.work),
                                 logger: quietLogger, snapshots: snapshots)
        defer { server.shutdown() }
        let failures = await server.restore(snapshot)
        #expect(failures.map(\.model) == ["gone"])
        #expect(failures.first?.reason.contains("gone.mar") == true, "\(failures)")
        // The archive of "gone" may come back; until the next change the file still names it.
        #expect(try Data(contentsOf: snapshots.file) == before)
    }

    /// What the loader reads when it replaces or adds a worker is the unpacked copy in the work
    /// folder: the archive in the store may go (restarts then report it), but a missing
    /// TorchScript file makes the new worker FAILED with the reason, while the others serve.
    @Test func anArchiveThatVanishesWhileRegisteredFailsNewWorkersCleanly() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        try FileManager.default.copyItem(at: Fixtures.url("archives/tma/unet_tiny.mar"), to: store.root.appendingPathComponent("packed.mar"))
        try store.addFolderArchive(name: "own", model: "models/unet_tiny.pt", config: TestModelStore.segmenterConfig + "\nshareModule: false\n")
        let log = CapturedLog()
        let server = ModelServer(configuration: ServerConfiguration(modelStore: store.root, workDirectory: store.work),
                                 logger: log.logger, restartDelay: .seconds(30))
        defer { server.shutdown() }
        let body = try Fixtures.bytes("images/rgb.png")

        // The .mar deleted, then truncated, in the store: its unpacked copy keeps serving and scaling.
        let packed = try await server.register(RegistrationOptions(url: "packed.mar", modelName: "packed"))
        try FileManager.default.removeItem(at: store.root.appendingPathComponent("packed.mar"))
        try await server.scale(model: "packed", minWorkers: 2, maxWorkers: 2, wait: true)
        try Data(try Fixtures.bytes("archives/tma/unet_tiny.mar").prefix(100)).write(to: store.root.appendingPathComponent("packed.mar"))
        try await server.scale(model: "packed", minWorkers: 3, maxWorkers: 3, wait: true)
        #expect(try server.describe(model: "packed")[0].workers.allSatisfy { $0.status == .ready })
        #expect(try await server.predict(model: "packed", request: InferenceRequest(body: body)).version == packed.modelVersion)

        // A folder archive (read in place) whose model file goes, with a module per worker.
        try await server.register(RegistrationOptions(url: "own"))
        try FileManager.default.removeItem(at: store.root.appendingPathComponent("own/model.pt"))
        await #expect(throws: ModelServerError.self) { try await server.scale(model: "own", minWorkers: 2, maxWorkers: 2, wait: true) }
        let workers = try server.describe(model: "own")[0].workers
        #expect(workers.map(\.status) == [.ready, .failed], "\(workers)")
        #expect(workers.last?.lastError?.contains("model.pt") == true, "\(workers)")
        #expect(log.lines.contains { $0.contains("failed to load") && $0.contains("model.pt") }, "\(log.lines)")
        #expect(try await server.predict(model: "own", request: InferenceRequest(body: body)).body.isEmpty == false)

        // The unpacked copy of the .mar truncated in the work folder: its workers share the
        // module loaded at registration, so a new one does not read the file again.
        let unpacked = try server.resolve(model: "packed", version: nil).archive.serializedFile
        try Data("truncated".utf8).write(to: unpacked)
        try await server.scale(model: "packed", minWorkers: 4, maxWorkers: 4, wait: true)
        #expect(try await server.predict(model: "packed", request: InferenceRequest(body: body)).version == packed.modelVersion)
    }
}

/// A logger that keeps every line, to check what an operator would read.
final class CapturedLog: Sendable {
    private let stored = Mutex<[String]>([])

    var lines: [String] { stored.withLock { $0 } }

    var logger: Logger {
        Logger(label: "test") { _ in Handler(log: self) }
    }

    func append(_ line: String) {
        stored.withLock { $0.append(line) }
    }

    struct Handler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            log.append("\(event.level): \(event.message)")
        }
    }
}
