import Foundation
import ServerCore
import Prometheus
import ServerTestSupport
import TestFixtures
import Testing

/// How a version's module is held: shared or one per worker, float32 or converted to bfloat16.
@Suite struct ModuleFormTests {
    func deviceMemory(_ server: ModelServer, _ registry: PrometheusCollectorRegistry) -> Int? {
        sampleValue(server, registry, "ts_device_memory_bytes{device=\"cpu\"}").map { Int($0) }
    }

    @Test func workersShareOneModuleUnlessTheConfigSaysNot() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        try store.addFolderArchive(name: "private", model: "models/unet_tiny.pt",
                                   config: TestModelStore.segmenterConfig + "\nshareModule: false\n")
        let registry = PrometheusCollectorRegistry()
        let server = store.makeServer(registry: registry)
        defer { server.shutdown() }

        try await server.register(RegistrationOptions(url: "unet_tiny", initialWorkers: 3))
        let weights = try server.describe(model: "unet_tiny")[0].weightBytes
        #expect(deviceMemory(server, registry) == weights, "three workers, one shared copy")

        try await server.register(RegistrationOptions(url: "private", initialWorkers: 3))
        #expect(deviceMemory(server, registry) == weights * 4, "three private copies beside the shared one")
        let body = try Fixtures.bytes("images/rgb.png")
        let masks = try await withThrowingTaskGroup(of: [UInt8].self) { group in
            for _ in 0..<6 { group.addTask { try mask(try await server.predict(model: "private", request: InferenceRequest(body: body))) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(masks.allSatisfy { $0 == (try? expectedMask("rgb.png")) })

        // A retired private worker frees its copy.
        try await server.scale(model: "private", minWorkers: 1, maxWorkers: 1, wait: true)
        #expect(try await eventually { deviceMemory(server, registry) == weights * 2 })
    }

    @Test func bfloat16HalvesTheWeightsAndKeepsTheMask() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        try store.addFolderArchive(name: "half", model: "models/unet_tiny.pt",
                                   config: TestModelStore.segmenterConfig + "\nprecision: bfloat16\n")
        let registry = PrometheusCollectorRegistry()
        let server = store.makeServer(registry: registry)
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "unet_tiny"))
        try await server.register(RegistrationOptions(url: "half"))
        let full = try server.describe(model: "unet_tiny")[0].weightBytes
        let half = try server.describe(model: "half")[0].weightBytes
        // The load-time check decides: it converts when bfloat16 keeps the output (the weights
        // halve), and keeps float32 when this CPU's bfloat16 kernels move too many of the random
        // fixture's near-tied argmaxes on its check input (CPUs without AVX512-BF16 round otherwise).
        let converted = half < full * 6 / 10
        if converted {
            #expect(half > full * 4 / 10, "float32 \(full) bytes, bfloat16 \(half) bytes")
        } else {
            #expect(half == full, "float32 \(full) bytes, kept float32 \(half) bytes")
        }

        for image in ["rgb.png", "baseline.jpg", "palette.png"] {
            let got = try mask(try await server.predict(model: "half", request: InferenceRequest(body: try Fixtures.bytes("images/\(image)"))))
            let expected = try expectedMask(image)
            #expect(got.count == expected.count)
            let same = zip(got, expected).filter { $0 == $1 }.count
            #expect(Double(same) / Double(expected.count) >= (converted ? 0.99 : 1), "\(image): \(same) of \(expected.count) pixels agree")
        }
    }
}
