import Foundation
import ModelArchive
import Prometheus
import ServerCore
import ServerTestSupport
import TestFixtures
import Testing
import Torch

/// Versions whose serialized file is an AOTInductor package of the tiny U-Net
/// (scripts/fixtures/make_aoti_fixtures.py): served through the same handler as its TorchScript
/// version on the libtorch 2 build, refused with the reason on the Debian build.
@Suite struct AOTInductorTests {
    static let dynamic = "models/unet_tiny_aoti_dynamic.pt2"
    static let batch1 = "models/unet_tiny_aoti_batch1.pt2"
    static let images = ["rgb.png", "baseline.jpg", "palette.png", "gray.png"]

    /// The histogram's count of batches, and of batches of one request.
    func batches(_ registry: PrometheusCollectorRegistry) -> (all: Double, single: Double) {
        let lines = registry.emitToString().split(separator: "\n")
        func value(_ prefix: String, label: String? = nil) -> Double {
            let line = lines.first { line in line.hasPrefix(prefix) && (label.map { line.contains($0) } ?? true) }
            return line.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) } ?? 0
        }
        return (value("ts_batch_size_count"), value("ts_batch_size_bucket", label: "le=\"1.0\""))
    }

    /// Answers `count` requests for `model` at once, each with the mask of `image`.
    func predictTogether(_ server: ModelServer, model: String, image: String, count: Int) async throws -> [[UInt8]] {
        let body = try Fixtures.bytes("images/\(image)")
        return try await withThrowingTaskGroup(of: [UInt8].self) { group in
            for _ in 0..<count { group.addTask { try mask(try await server.predict(model: model, request: InferenceRequest(body: body))) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
    }

    @Test(.enabled(if: TorchRuntime.canLoadAOTInductor))
    func packageMasksEqualTheTorchScriptVersions() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        try store.addFolderArchive(name: "aoti", model: Self.dynamic, config: TestModelStore.segmenterConfig, modelFile: "model.pt2")
        // Told by content, not by name: the same package stored as model.pt.
        try store.addFolderArchive(name: "aoti_pt", model: Self.dynamic, config: TestModelStore.segmenterConfig)
        let server = store.makeServer()
        defer { server.shutdown() }
        for name in ["unet_tiny", "aoti", "aoti_pt"] { try await server.register(RegistrationOptions(url: name)) }
        #expect(try server.describe(model: "aoti")[0].weightBytes > 10_000)
        for image in Self.images {
            let body = try Fixtures.bytes("images/\(image)")
            let torchScript = try mask(try await server.predict(model: "unet_tiny", request: InferenceRequest(body: body)))
            #expect(torchScript == (try expectedMask(image)), "\(image): the TorchScript version")
            for model in ["aoti", "aoti_pt"] {
                let compiled = try mask(try await server.predict(model: model, request: InferenceRequest(body: body)))
                #expect(compiled == torchScript, "\(image): \(model)")
            }
        }
    }

    @Test(.enabled(if: TorchRuntime.canLoadAOTInductor))
    func dynamicBatchPackageBatchesUpToItsBound() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        try store.addFolderArchive(name: "aoti", model: Self.dynamic, config: TestModelStore.segmenterConfig, modelFile: "model.pt2")
        let registry = PrometheusCollectorRegistry()
        let server = store.makeServer(registry: registry)
        defer { server.shutdown() }
        let described = try await server.register(RegistrationOptions(url: "aoti", batchSize: 4, maxBatchDelay: 1000))
        #expect(described.settings.batchSize == 4)
        #expect(described.notes == ["the AOTInductor package takes batches of 1 to 8"])
        let masks = try await predictTogether(server, model: "aoti", image: "rgb.png", count: 2)
        #expect(masks.allSatisfy { $0 == (try? expectedMask("rgb.png")) })
        let counted = batches(registry)
        #expect(counted.all > counted.single, "a batch of 2: \(counted.single) of \(counted.all) batches held one request")

        // A batch size beyond what the package was compiled for is lowered to its bound.
        let wide = try await server.register(RegistrationOptions(url: "aoti", modelName: "wide", batchSize: 16))
        #expect(wide.settings.batchSize == 8)
    }

    @Test(.enabled(if: TorchRuntime.canLoadAOTInductor))
    func batchOnePackageIsServedWithBatchingOff() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        try store.addFolderArchive(name: "fixed", model: Self.batch1, config: TestModelStore.segmenterConfig, modelFile: "model.pt2")
        let registry = PrometheusCollectorRegistry()
        let server = store.makeServer(registry: registry)
        defer { server.shutdown() }
        let described = try await server.register(RegistrationOptions(url: "fixed", batchSize: 4, maxBatchDelay: 200))
        #expect(described.settings.batchSize == 1)
        #expect(described.notes == ["batching off: the AOTInductor package was compiled for batch 1"])
        #expect(try server.describe(model: "fixed")[0].notes == described.notes)
        let masks = try await predictTogether(server, model: "fixed", image: "baseline.jpg", count: 3)
        #expect(masks.count == 3)
        #expect(masks.allSatisfy { $0 == (try? expectedMask("baseline.jpg")) })
        let counted = batches(registry)
        #expect(counted.all == 3 && counted.single == 3, "every batch held one request: \(counted)")
    }

    @Test(.enabled(if: !TorchRuntime.canLoadAOTInductor))
    func debianBuildRefusesAPackageNamingTheBuildThatLoadsIt() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        try store.addFolderArchive(name: "aoti", model: Self.dynamic, config: TestModelStore.segmenterConfig, modelFile: "model.pt2")
        let server = store.makeServer()
        defer { server.shutdown() }
        await #expect {
            try await server.register(RegistrationOptions(url: "aoti"))
        } throws: { error in
            guard case .invalidModel(let message)? = error as? ModelServerError else { return false }
            return message.contains("model.pt2 is an AOTInductor package") && message.contains("from Debian")
                && message.contains("scripts/setup --libtorch pytorch")
        }
        #expect(throws: ModelServerError.self) { try server.describe(model: "aoti") }
    }
}
