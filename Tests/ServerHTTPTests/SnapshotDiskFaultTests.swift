import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ServerCore
import ServerHTTP
import ServerTestSupport
import TestFixtures
import Testing

/// The management port over a real, small filesystem as the snapshot's folder: full, read-only,
/// and removed while the server runs. Needs a tmpfs mount (root with `CAP_SYS_ADMIN`); where
/// mounting is not allowed (an unprivileged container) the suite is skipped, and
/// `ServerCoreTests.FaultInjectionTests` still covers the same undo with an injected `ENOSPC`.
@Suite(.serialized, .enabled(if: SmallFilesystem.canMount, "mounting a tmpfs needs root with CAP_SYS_ADMIN"))
struct SnapshotDiskFaultTests {
    @Test func aFullReadOnlyOrVanishedSnapshotFolderAnswers507AndTheServerKeepsServing() async throws {
        let disk = try SmallFilesystem(kilobytes: 64)
        defer { disk.remove() }
        let store = try TestModelStore()
        defer { store.remove() }
        let snapshots = SnapshotStore(directory: disk.folder.appendingPathComponent("config"))
        // Registering over HTTP needs the model API on (403 otherwise).
        var configuration = ServerConfiguration(modelStore: store.root, workDirectory: store.work)
        configuration.enableModelAPI = true
        let server = ModelServer(configuration: configuration, logger: quietLogger, snapshots: snapshots)
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "unet_tiny"))
        let acknowledged = try Data(contentsOf: snapshots.file)
        let inference = HTTPServer.inferenceApplication(server: server, host: "127.0.0.1", port: 0, logger: quietLogger)
        let management = HTTPServer.managementApplication(server: server, host: "127.0.0.1", port: 0, logger: quietLogger)
        let image = ByteBuffer(bytes: try Fixtures.bytes("images/rgb.png"))

        try await inference.test(.live) { inferenceClient in
            try await management.test(.live) { client in
                @Sendable func expect507(_ uri: String, _ method: HTTPRequest.Method, reason: String) async throws {
                    try await client.execute(uri: uri, method: method) { response in
                        let body = String(buffer: response.body)
                        #expect(response.status.code == 507, "\(uri): \(body)")
                        #expect(body.contains("InsufficientStorageException") && body.contains(reason) && body.contains("was not done"), "\(body)")
                    }
                }
                @Sendable func expectServing() async throws {
                    try await inferenceClient.execute(uri: "/predictions/unet_tiny", method: .post, body: image) {
                        #expect($0.status == .ok)
                    }
                }

                // Full: the snapshot does not fit.
                try disk.fill()
                try await expect507("/models?url=unet_tiny&model_name=second", .post, reason: "ENOSPC")
                try await client.execute(uri: "/models", method: .get) {
                    #expect(!String(buffer: $0.body).contains("second"))
                }
                try await expect507("/models/unet_tiny?min_worker=2&synchronous=true", .put, reason: "ENOSPC")
                try await client.execute(uri: "/models/unet_tiny", method: .get) {
                    let described = try? JSONSerialization.jsonObject(with: Data(buffer: $0.body)) as? [[String: Any]]
                    #expect(described?.first?["minWorkers"] as? Int == 1, "\(String(buffer: $0.body))")
                }
                try await expectServing()
                #expect(try Data(contentsOf: snapshots.file) == acknowledged)
                disk.emptyFiller()
                try await client.execute(uri: "/models?url=unet_tiny&model_name=second", method: .post) { #expect($0.status == .ok) }
                #expect(try snapshots.load()?.models.map(\.name) == ["second", "unet_tiny"])

                // Read-only (root ignores file modes, a read-only mount it does not).
                try disk.remount(readOnly: true)
                try await expect507("/models/second", .delete, reason: "EROFS")
                try await expectServing()
                try disk.remount(readOnly: false)
                try await client.execute(uri: "/models/second", method: .delete) { #expect($0.status == .ok) }
                #expect(try snapshots.load()?.models.map(\.name) == ["unet_tiny"])

                // Removed while running: the next change makes the folder again.
                try FileManager.default.removeItem(at: snapshots.file.deletingLastPathComponent())
                try await expectServing()
                try await client.execute(uri: "/models?url=unet_tiny&model_name=third", method: .post) { #expect($0.status == .ok) }
                #expect(try snapshots.load()?.models.map(\.name) == ["third", "unet_tiny"])
            }
        }
    }
}

/// A tmpfs of a few kilobytes mounted on a fresh folder, to fill up and make read-only.
struct SmallFilesystem {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("small-fs-\(UUID().uuidString)")
    let size: Int
    var filler: URL { folder.appendingPathComponent("filler") }

    init(kilobytes: Int) throws {
        size = kilobytes
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        guard Self.run(["-t", "tmpfs", "-o", "size=\(kilobytes)k,mode=0700", "tmpfs", folder.path]) else {
            try? FileManager.default.removeItem(at: folder)
            throw CocoaError(.fileWriteNoPermission, userInfo: [NSLocalizedDescriptionKey: "mount -t tmpfs failed"])
        }
    }

    /// Whether this process may mount a tmpfs (tried once).
    static let canMount: Bool = {
        guard let disk = try? SmallFilesystem(kilobytes: 16) else { return false }
        disk.remove()
        return true
    }()

    /// Writes a filler file until the filesystem has no space left.
    func fill() throws {
        FileManager.default.createFile(atPath: filler.path, contents: nil)
        let handle = try FileHandle(forWritingTo: filler)
        defer { try? handle.close() }
        let block = Data(repeating: 0x55, count: 1024)
        while (try? handle.write(contentsOf: block)) != nil {}
        try? handle.synchronize()
    }

    func emptyFiller() {
        try? FileManager.default.removeItem(at: filler)
    }

    func remount(readOnly: Bool) throws {
        guard Self.run(["-o", "remount,\(readOnly ? "ro" : "rw")", folder.path]) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "remount of \(folder.path) failed"])
        }
    }

    func remove() {
        let umount = Process()
        umount.executableURL = URL(fileURLWithPath: "/bin/umount")
        umount.arguments = ["-l", folder.path]
        if (try? umount.run()) != nil { umount.waitUntilExit() }
        try? FileManager.default.removeItem(at: folder)
    }

    private static func run(_ arguments: [String]) -> Bool {
        let mount = Process()
        mount.executableURL = URL(fileURLWithPath: "/bin/mount")
        mount.arguments = arguments
        mount.standardError = FileHandle.nullDevice
        mount.standardOutput = FileHandle.nullDevice
        guard (try? mount.run()) != nil else { return false }
        mount.waitUntilExit()
        return mount.terminationStatus == 0
    }
}
