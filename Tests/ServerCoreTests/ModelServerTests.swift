import Foundation
import Logging
import Prometheus
import ServerCore
import ServerTestSupport
import TestFixtures
import Testing

/// The core without HTTP: registration, batching, errors, describe.
@Suite struct ModelServerTests {
    static let batchedConfig = """
        minWorkers: 1
        batchSize: 4
        maxBatchDelay: 200
        handler:
          kind: image_segmenter
          inputSize: [96, 128]
        """

    @Test func batchedRequestsEachGetTheirOwnMaskAndABadOneFailsAlone() async throws {
        let store = try TestModelStore(config: Self.batchedConfig)
        defer { store.remove() }
        let server = store.makeServer()
        defer { server.shutdown() }
        let description = try await server.register(RegistrationOptions(url: "unet_tiny"))
        #expect(description.settings.batchSize == 4)

        let images = ["rgb.png", "gray.jpg", "truncated.png", "palette.png", "baseline.jpg", "cmyk.jpg", "gray.png"]
        let results = try await withThrowingTaskGroup(of: (String, Result<[UInt8], ModelServerError>).self) { group in
            for image in images {
                let body = try Fixtures.bytes("images/\(image)")
                group.addTask {
                    do {
                        let response = try await server.predict(model: "unet_tiny", request: InferenceRequest(body: body))
                        let json = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: String]
                        return (image, .success([UInt8](Data(base64Encoded: json?["base64_prediction"] ?? "") ?? Data())))
                    } catch let error as ModelServerError {
                        return (image, .failure(error))
                    }
                }
            }
            var collected: [String: Result<[UInt8], ModelServerError>] = [:]
            for try await (image, result) in group { collected[image] = result }
            return collected
        }
        for image in images {
            switch results[image] {
            case .success(let mask)?:
                #expect(image != "truncated.png")
                #expect(mask == (try expectedMask(image)), "\(image)")
            case .failure(let error)?:
                #expect(image == "truncated.png", "\(image): \(error)")
                guard case .invalidInput = error else { Issue.record("truncated.png: \(error)"); continue }
            case nil:
                Issue.record("no result for \(image)")
            }
        }
    }

    /// The same TorchScript file packed by torch-model-archiver (.mar, .tar.gz, folder) serves
    /// the same masks as our own folder archive.
    @Test func torchModelArchiverArchivesServeTheSameMasks() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        for name in ["unet_tiny.mar", "unet_tiny.tar.gz"] {
            try FileManager.default.copyItem(at: Fixtures.url("archives/tma/\(name)"), to: store.root.appendingPathComponent("tma-\(name)"))
        }
        let server = store.makeServer()
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "unet_tiny"))
        try await server.register(RegistrationOptions(url: "tma-unet_tiny.mar", modelName: "tma_mar"))
        try await server.register(RegistrationOptions(url: "tma-unet_tiny.tar.gz", modelName: "tma_tgz"))
        let body = try Fixtures.bytes("images/baseline.jpg")
        let expected = try expectedMask("baseline.jpg")
        for model in ["unet_tiny", "tma_mar", "tma_tgz"] {
            let response = try await server.predict(model: model, request: InferenceRequest(body: body))
            let json = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: String]
            #expect(Data(base64Encoded: json?["base64_prediction"] ?? "").map { [UInt8]($0) } == expected, "\(model)")
        }
    }

    @Test func describeShowsReadyWorkersAndSharedWeights() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        let server = store.makeServer()
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "unet_tiny", initialWorkers: 2))
        let described = try server.describe(model: "unet_tiny")
        #expect(described.count == 1)
        let version = try #require(described.first)
        #expect(version.isDefault)
        #expect(version.workers.count == 2)
        #expect(version.workers.allSatisfy { $0.status == .ready && $0.device == .cpu })
        #expect(Set(version.workers.map(\.id)).count == 2)
        #expect(version.weightBytes > 10_000)
        #expect(server.listModels().map(\.name) == ["unet_tiny"])
    }

    @Test func registrationRefusals() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        let server = store.makeServer()
        defer { server.shutdown() }
        await #expect(throws: ModelServerError.archiveNotFound("Model archive not found in the model store: missing.mar")) {
            try await server.register(RegistrationOptions(url: "missing.mar"))
        }
        await #expect(throws: ModelServerError.archiveURLNotAllowed("file:// URLs are not allowed; name an archive in the model store")) {
            try await server.register(RegistrationOptions(url: "file:///etc/passwd"))
        }
        do {
            try await server.register(RegistrationOptions(url: "../../etc"))
            Issue.record("a path outside the store was accepted")
        } catch let error as ModelServerError {
            guard case .archiveURLNotAllowed = error else { Issue.record("got \(error)"); return }
        }
        try await server.register(RegistrationOptions(url: "unet_tiny"))
        do {
            try await server.register(RegistrationOptions(url: "unet_tiny"))
            Issue.record("a duplicate registration was accepted")
        } catch let error as ModelServerError {
            guard case .conflict = error else { Issue.record("got \(error)"); return }
        }
    }

    @Test func unknownModelAndVersion() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        let server = store.makeServer()
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "unet_tiny"))
        let body = try Fixtures.bytes("images/rgb.png")
        await #expect(throws: ModelServerError.modelNotFound(model: "other")) {
            try await server.predict(model: "other", request: InferenceRequest(body: body))
        }
        await #expect(throws: ModelServerError.versionNotFound(model: "unet_tiny", version: "2.0")) {
            try await server.predict(model: "unet_tiny", version: "2.0", request: InferenceRequest(body: body))
        }
    }

    @Test func deadlinePassedWhileQueuedIs504AndOthersAreServed() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        let registry = PrometheusCollectorRegistry()
        let server = store.makeServer(registry: registry)
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "unet_tiny"))
        let body = try Fixtures.bytes("images/rgb.png")
        try await withThrowingTaskGroup(of: Bool.self) { group in
            // One worker: requests queued ahead keep it busy far longer than the last one's 1 ms
            // deadline. Sent only once they are queued: on a busy machine the tasks that send them
            // may start after it, and a request first in line can be answered within 1 ms.
            for _ in 0..<30 {
                group.addTask {
                    _ = try await server.predict(model: "unet_tiny", request: InferenceRequest(body: body))
                    return true
                }
            }
            #expect(try await eventually { (sampleValue(server, registry, "ts_queue_pending{") ?? 0) >= 5 })
            do {
                _ = try await server.predict(model: "unet_tiny", request: InferenceRequest(body: body, timeout: .milliseconds(1)))
                Issue.record("a request past its deadline was answered")
            } catch let error as ModelServerError {
                guard case .deadlineExceeded = error else { Issue.record("got \(error)"); return }
            }
            var served = 0
            for try await ok in group where ok { served += 1 }
            #expect(served == 30)
        }
    }

    @Test func zeroWorkersIsUnavailable() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        let server = store.makeServer()
        defer { server.shutdown() }
        let described = try await server.register(RegistrationOptions(url: "unet_tiny", initialWorkers: 0))
        #expect(described.workers.isEmpty)
        do {
            _ = try await server.predict(model: "unet_tiny", request: InferenceRequest(body: try Fixtures.bytes("images/rgb.png")))
            Issue.record("a model without workers answered")
        } catch let error as ModelServerError {
            guard case .unavailable = error else { Issue.record("got \(error)"); return }
        }
    }
}
