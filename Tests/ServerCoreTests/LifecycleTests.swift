import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import ServerCore
import ServerTestSupport
import TestFixtures
import Testing

/// Worker failure and replacement, draining unregister, zero-downtime swap, URL registration.
@Suite struct LifecycleTests {
    /// A segmenter config without an input size: images keep their own size, so an odd-sized
    /// one makes the tiny U-Net's forward throw (its skip connections no longer line up).
    static let nativeSizeConfig = """
        minWorkers: 1
        handler:
          kind: image_segmenter
          numClasses: 5
        """

    func makeServer(_ store: TestModelStore, restartDelay: Duration = .milliseconds(50), allowedURLs: [String] = [],
                    downloadLimit: Int64 = 2 << 30) -> ModelServer {
        var configuration = ServerConfiguration(modelStore: store.root, workDirectory: store.work)
        configuration.allowedURLs = allowedURLs
        return ModelServer(configuration: configuration, logger: quietLogger, restartDelay: restartDelay, downloadLimit: downloadLimit)
    }


    @Test func aWorkerThatFailsToLoadIsShownFailedAndReplacedOnceTheModelLoads() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        try store.addFolderArchive(name: "flaky", model: "models/not_a_model.pt", config: TestModelStore.segmenterConfig)
        let server = makeServer(store)
        defer { server.shutdown() }

        // Not synchronous: registered at once, the worker loads (and fails) in the background.
        let registered = try await server.register(RegistrationOptions(url: "flaky"), wait: false)
        #expect(registered.modelName == "flaky")
        var failedID = 0
        #expect(try await eventually(loaderWait) {
            guard let worker = try server.describe(model: "flaky")[0].workers.first, worker.status == .failed else { return false }
            failedID = worker.id
            return worker.lastError?.contains("load failed") == true
        })
        await #expect(throws: ModelServerError.unavailable("Model flaky version 1.0 has no live worker; scale it up or check its logs")) {
            try await server.predict(model: "flaky", request: InferenceRequest(body: try Fixtures.bytes("images/rgb.png")))
        }

        // Fix the model file: the next replacement loads it and the model answers.
        let modelFile = store.root.appendingPathComponent("flaky/model.pt")
        try FileManager.default.removeItem(at: modelFile)
        try FileManager.default.copyItem(at: Fixtures.url("models/unet_tiny.pt"), to: modelFile)
        #expect(try await eventually(loaderWait) {
            try server.describe(model: "flaky")[0].workers.map(\.status) == [.ready]
        })
        let worker = try #require(try server.describe(model: "flaky")[0].workers.first)
        #expect(worker.id > failedID)
        let response = try await server.predict(model: "flaky", request: InferenceRequest(body: try Fixtures.bytes("images/rgb.png")))
        #expect(try mask(response) == (try expectedMask("rgb.png")))
    }

    @Test func aLoadPastStartupTimeoutIsGivenUpAndTheWorkerReplaced() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        try store.addFolderArchive(name: "stuck", model: "models/not_a_model.pt",
                                   config: TestModelStore.segmenterConfig + "\nstartupTimeout: 1\n")
        let server = makeServer(store)
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "stuck"), wait: false)
        #expect(try await eventually(loaderWait) { try server.describe(model: "stuck")[0].workers.first?.status == .failed })

        // The replacement opens a FIFO with no writer: its load blocks, as on a hung network mount.
        let modelFile = store.root.appendingPathComponent("stuck/model.pt")
        try FileManager.default.removeItem(at: modelFile)
        #expect(mkfifo(modelFile.path, 0o600) == 0)
        #expect(try await eventually(loaderWait) {
            try server.describe(model: "stuck")[0].workers.contains { $0.lastError?.contains("startupTimeout (1 s)") == true }
        })
        await #expect(throws: ModelServerError.unavailable("Model stuck version 1.0 has no live worker; scale it up or check its logs")) {
            try await server.predict(model: "stuck", request: InferenceRequest(body: try Fixtures.bytes("images/rgb.png")))
        }

        // Put the real model in place, then end the blocked read: the stuck load fails, a later
        // worker loads the model and serves.
        let writer = open(modelFile.path, O_WRONLY | O_NONBLOCK)
        #expect(writer >= 0, "the blocked load should hold the FIFO open for reading")
        let real = store.root.appendingPathComponent("stuck/model.real")
        try FileManager.default.copyItem(at: Fixtures.url("models/unet_tiny.pt"), to: real)
        #expect(rename(real.path, modelFile.path) == 0)
        close(writer)
        #expect(try await eventually(loaderWait) { try server.describe(model: "stuck")[0].workers.map(\.status) == [.ready] })
        let response = try await server.predict(model: "stuck", request: InferenceRequest(body: try Fixtures.bytes("images/rgb.png")))
        #expect(try mask(response) == (try expectedMask("rgb.png")))
    }

    @Test func describeReportsLoadWarmUpAndFirstRequestTimesApart() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        try store.addFolderArchive(name: "idle", model: "models/unet_tiny.pt", config: TestModelStore.segmenterConfig)
        let server = makeServer(store)
        defer { server.shutdown() }
        // A model with no worker has loaded and warmed up nothing.
        try await server.register(RegistrationOptions(url: "idle", initialWorkers: 0))
        #expect(try server.describe(model: "idle")[0].loadTimings == nil)

        // Warm-up runs two forward passes at batch sizes 1 and 32: it takes measurable time.
        try await server.register(RegistrationOptions(url: "unet_tiny", batchSize: 32))
        let loaded = try #require(try server.describe(model: "unet_tiny")[0].loadTimings)
        #expect(loaded.loadMilliseconds > 0)
        #expect(loaded.warmUpMilliseconds > 0)
        #expect(loaded.firstRequestMilliseconds == nil)
        for _ in 0..<2 {
            _ = try await server.predict(model: "unet_tiny", request: InferenceRequest(body: try Fixtures.bytes("images/rgb.png")))
        }
        let served = try #require(try server.describe(model: "unet_tiny")[0].loadTimings)
        #expect(served.loadMilliseconds == loaded.loadMilliseconds)
        #expect(served.warmUpMilliseconds == loaded.warmUpMilliseconds)
        #expect((served.firstRequestMilliseconds ?? 0) > 0)
    }

    @Test func aSynchronousRegistrationWhoseWorkersFailIsRolledBack() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        try store.addFolderArchive(name: "broken", model: "models/not_a_model.pt", config: TestModelStore.segmenterConfig)
        let server = makeServer(store)
        defer { server.shutdown() }
        await #expect { try await server.register(RegistrationOptions(url: "broken")) } throws: { error in
            guard case .modelFailure(let message)? = error as? ModelServerError else { return false }
            return message.hasPrefix("1 of 1 workers of broken failed to load: ") && message.contains("broken/model.pt is not a TorchScript module")
        }
        #expect(throws: ModelServerError.modelNotFound(model: "broken")) { try server.describe(model: "broken") }
    }

    @Test func aFailingForwardPassAnswers500AndIsShownWhileTheWorkerKeepsServing() async throws {
        let store = try TestModelStore(config: Self.nativeSizeConfig)
        defer { store.remove() }
        let server = makeServer(store)
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "unet_tiny"))

        // gray.png is 131×97: the U-Net's skip connections do not line up at that size.
        do {
            _ = try await server.predict(model: "unet_tiny", request: InferenceRequest(body: try Fixtures.bytes("images/gray.png")))
            Issue.record("a forward pass on 131×97 should fail")
        } catch let error as ModelServerError {
            guard case .modelFailure(let message) = error else { Issue.record("\(error)"); return }
            #expect(message.contains("unet_tiny"))
        }
        let worker = try #require(try server.describe(model: "unet_tiny")[0].workers.first)
        #expect(worker.status == .ready)
        #expect(worker.lastError?.contains("forward failed") == true)

        let response = try await server.predict(model: "unet_tiny", request: InferenceRequest(body: try Fixtures.bytes("images/rgb.png")))
        #expect(try mask(response).count == 160 * 120)
    }

    /// Sends `count` requests to `unet_tiny` version 1.0 at once, waits until at least `queued` of
    /// them wait behind its single worker, then runs `unregister`; returns every request's outcome.
    /// The requests name the version: one for the default version that the unregister drops is
    /// retried against the new default, and so would read 404 like one that came too late.
    func unregisterWhileQueued(_ server: ModelServer, count: Int = 60, queued: Int = 10,
                               unregister: @escaping @Sendable () async throws -> Void) async throws -> [Result<[UInt8], ModelServerError>] {
        let body = try Fixtures.bytes("images/rgb.png")
        return try await withThrowingTaskGroup(of: Result<[UInt8], ModelServerError>.self) { group in
            for _ in 0..<count {
                group.addTask {
                    do {
                        return .success(try mask(try await server.predict(model: "unet_tiny", version: "1.0", request: InferenceRequest(body: body))))
                    } catch let error as ModelServerError {
                        return .failure(error)
                    }
                }
            }
            let waiting = try await eventually { try server.describe(model: "unet_tiny")[0].pendingRequests >= queued }
            try #require(waiting, "requests should be queued behind the worker before the unregister")
            try await unregister()
            var all: [Result<[UInt8], ModelServerError>] = []
            for try await outcome in group { all.append(outcome) }
            return all
        }
    }

    @Test func unregisterLetsQueuedRequestsFinishAndRefusesNewOnes() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        let server = makeServer(store)
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "unet_tiny"))
        let expected = try expectedMask("rgb.png")

        let outcomes = try await unregisterWhileQueued(server) { try await server.unregister(model: "unet_tiny") }
        // At least the ten queued at the unregister were served in full, never answered 503;
        // a request that arrived after it found no model: 404.
        var served = 0
        for outcome in outcomes {
            switch outcome {
            case .success(let got):
                #expect(got == expected)
                served += 1
            case .failure(let error):
                #expect(error == .modelNotFound(model: "unet_tiny"))
            }
        }
        #expect(served >= 10)
        await #expect(throws: ModelServerError.modelNotFound(model: "unet_tiny")) {
            try await server.predict(model: "unet_tiny", request: InferenceRequest(body: try Fixtures.bytes("images/rgb.png")))
        }
    }

    @Test func unregisterAnswersWhatIsStillQueuedAtTheDrainTimeoutWith503() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        let server = makeServer(store)
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "unet_tiny"))
        let expected = try expectedMask("rgb.png")

        let outcomes = try await unregisterWhileQueued(server) { try await server.unregister(model: "unet_tiny", drainTimeout: .zero) }
        // Every request is answered: served (it was running), 503 (it was queued) or 404 (it came after).
        var dropped = 0
        for outcome in outcomes {
            switch outcome {
            case .success(let got): #expect(got == expected)
            case .failure(.unavailable(let message)):
                #expect(message == "Model unet_tiny version 1.0 was unregistered or the server stopped")
                dropped += 1
            case .failure(let error): #expect(error == .modelNotFound(model: "unet_tiny"))
            }
        }
        #expect(dropped >= 1, "requests still queued at the drain timeout are answered 503")
    }

    @Test func swapServesEveryRequestAcrossTheSwitchAndLeavesOnlyTheNewVersion() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        try store.addFolderArchive(name: "unet_tiny_v2", version: "2.0", model: "models/unet_tiny.pt", config: TestModelStore.segmenterConfig)
        try store.addFolderArchive(name: "unet_tiny_bad", version: "3.0", model: "models/not_a_model.pt", config: TestModelStore.segmenterConfig)
        let server = makeServer(store)
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "unet_tiny", batchSize: 2, maxBatchDelay: 5))
        let body = try Fixtures.bytes("images/rgb.png")
        let expected = try expectedMask("rgb.png")

        let stop = ManagedFlag()
        let counts: (ok: Int, failed: [String]) = try await withThrowingTaskGroup(of: (ok: Int, failed: [String]).self) { group in
            for _ in 0..<3 {
                group.addTask {
                    var ok = 0, failed: [String] = []
                    while !stop.isSet {
                        do {
                            let got = try mask(try await server.predict(model: "unet_tiny", request: InferenceRequest(body: body)))
                            if got == expected { ok += 1 } else { failed.append("wrong mask") }
                        } catch {
                            failed.append("\(error)")
                        }
                    }
                    return (ok, failed)
                }
            }
            try await Task.sleep(for: .milliseconds(100))
            // A load failure leaves the old version serving.
            await #expect { try await server.swap(model: "unet_tiny", url: "unet_tiny_bad") } throws: { error in
                guard case .modelFailure(let message)? = error as? ModelServerError else { return false }
                return message.hasPrefix("1 of 1 workers of unet_tiny failed to load: ")
                    && message.contains("unet_tiny_bad/model.pt is not a TorchScript module")
            }
            #expect(server.defaultVersion(of: "unet_tiny") == "1.0")
            let swapped = try await server.swap(model: "unet_tiny", url: "unet_tiny_v2")
            #expect(swapped.old == "1.0" && swapped.new == "2.0")
            try await Task.sleep(for: .milliseconds(100))
            stop.set()
            var ok = 0, failed: [String] = []
            for try await result in group {
                ok += result.ok
                failed += result.failed
            }
            return (ok, failed)
        }
        #expect(counts.failed.isEmpty, "\(counts.failed.prefix(3))")
        #expect(counts.ok > 0)
        let versions = try server.describe(model: "unet_tiny", version: "all")
        #expect(versions.map(\.modelVersion) == ["2.0"])
        #expect(versions[0].isDefault)
        #expect(server.snapshot().models.first?.versions.map(\.version) == ["2.0"])
    }

    @Test func aHandlerGivenAtRegistrationReplacesTheArchives() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        let spec = """
            kind: image_segmenter
            inputSize: [96, 128]
            numClasses: 5
            output: png
            """
        try spec.write(to: store.root.appendingPathComponent("as_png.yaml"), atomically: true, encoding: .utf8)
        let server = makeServer(store)
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "unet_tiny", modelName: "as_png", handler: "as_png.yaml"))
        let response = try await server.predict(model: "as_png", request: InferenceRequest(body: try Fixtures.bytes("images/rgb.png")))
        #expect(response.contentType == "image/png")
        #expect(server.snapshot().models.first { $0.name == "as_png" }?.versions.first?.handler == "as_png.yaml")

        await #expect {
            try await server.register(RegistrationOptions(url: "unet_tiny", modelName: "python", handler: "my_handler.py"))
        } throws: { error in
            guard case .invalidModel(let message)? = error as? ModelServerError else { return false }
            return message.hasPrefix("Handler \"my_handler.py\" is Python code; Python handlers are not run by this server.")
        }
        await #expect {
            try await server.register(RegistrationOptions(url: "unet_tiny", modelName: "escape", handler: "../../etc/spec.yaml"))
        } throws: { error in
            guard case .archiveURLNotAllowed(let message)? = error as? ModelServerError else { return false }
            return message.hasPrefix("../../etc/spec.yaml is outside the model store ")
        }
    }

    @Test func anAllowedURLIsDownloadedIntoTheStoreAndOthersAreRefused() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        let archive = try Fixtures.bytes("archives/tma/unet_tiny.mar")
        let router = Router()
        router.get("/archives/unet_tiny.mar") { _, _ in
            Response(status: .ok, body: .init(byteBuffer: ByteBuffer(bytes: archive)))
        }
        router.get("/archives/moved.mar") { _, _ in
            Response(status: .found, headers: [.location: "/archives/unet_tiny.mar"])
        }
        let origin = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: quietLogger)
        try await origin.test(.live) { client in
            let port = try #require(client.port)
            let base = "http://127.0.0.1:\(port)/archives"
            let server = makeServer(store, allowedURLs: [#"http://127\.0\.0\.1:\d+/archives/.*"#])
            defer { server.shutdown() }

            let described = try await server.register(RegistrationOptions(url: "\(base)/unet_tiny.mar"))
            #expect(described.modelURL == "\(base)/unet_tiny.mar")
            #expect(FileManager.default.fileExists(atPath: store.root.appendingPathComponent("unet_tiny.mar").path))
            let response = try await server.predict(model: described.modelName, request: InferenceRequest(body: try Fixtures.bytes("images/rgb.png")))
            #expect(try mask(response) == (try expectedMask("rgb.png")))

            // Already in the store: 409, not a silent overwrite.
            await #expect(throws: ModelServerError.conflict(
                "unet_tiny.mar is already in the model store; register it by name, or delete it to download it again")) {
                try await server.register(RegistrationOptions(url: "\(base)/unet_tiny.mar"))
            }
            // Not matched by allowed_urls.
            await #expect {
                try await server.register(RegistrationOptions(url: "http://127.0.0.1:\(port)/elsewhere/unet_tiny.mar"))
            } throws: { error in
                if case ModelServerError.archiveURLNotAllowed = error { return true }
                return false
            }
            // 404 and redirects fail as downloads and leave nothing behind.
            for name in ["missing.mar", "moved.mar"] {
                await #expect {
                    try await server.register(RegistrationOptions(url: "\(base)/\(name)"))
                } throws: { error in
                    if case ModelServerError.downloadFailed = error { return true }
                    return false
                }
            }
            let small = makeServer(store, allowedURLs: [#"http://127\.0\.0\.1:\d+/archives/.*"#], downloadLimit: 1000)
            defer { small.shutdown() }
            try FileManager.default.removeItem(at: store.root.appendingPathComponent("unet_tiny.mar"))
            await #expect {
                try await small.register(RegistrationOptions(url: "\(base)/unet_tiny.mar"))
            } throws: { error in
                if case ModelServerError.downloadFailed(let message) = error { return message.contains("limit") }
                return false
            }
            let left = try FileManager.default.contentsOfDirectory(atPath: store.root.path)
            #expect(!left.contains { $0.hasSuffix(".part") || $0 == "unet_tiny.mar" }, "\(left)")
        }
    }
}
