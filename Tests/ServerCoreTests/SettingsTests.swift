import Foundation
import ServerCore
import ServerTestSupport
import TestFixtures
import Testing

/// One settings model: the layers a version's settings are resolved from, and the config's
/// `models` key.
@Suite struct SettingsTests {
    @Test func layersApplyInOrderArchiveConfigRegistrationScale() async throws {
        let store = try TestModelStore(config: TestModelStore.segmenterConfig + "\nbatchSize: 2\nmaxBatchDelay: 7\nresponseTimeout: 30\n")
        defer { store.remove() }
        var configuration = ServerConfiguration(modelStore: store.root, workDirectory: store.work)
        try configuration.apply(["models": #"{"unet_tiny": {"1.0": {"batchSize": 3, "maxBatchDelay": 9, "minWorkers": 2, "maxWorkers": 3}}}"#],
                                relativeTo: store.root)
        let server = ModelServer(configuration: configuration, logger: quietLogger)
        defer { server.shutdown() }

        // Archive: responseTimeout 30; the config's models key: batchSize 3, workers 2...3; the registration: maxBatchDelay 11.
        let described = try await server.register(RegistrationOptions(url: "unet_tiny", maxBatchDelay: 11))
        #expect(described.settings.responseTimeout == 30)
        #expect(described.settings.batchSize == 3)
        #expect(described.settings.maxBatchDelay == 11)
        #expect(described.settings.minWorkers == 2 && described.settings.maxWorkers == 3)
        #expect(described.workers.count == 2)

        // A scale call is the last layer.
        try await server.scale(model: "unet_tiny", minWorkers: 1, maxWorkers: 1, wait: true)
        let scaled = try server.describe(model: "unet_tiny")[0].settings
        #expect(scaled.minWorkers == 1 && scaled.maxWorkers == 1 && scaled.batchSize == 3)
        // The snapshot records the resolved settings, in TorchServe's flat form.
        let version = try #require(server.snapshot().models.first?.versions.first)
        #expect(version.settings == ModelSettings.Override(minWorkers: 1, maxWorkers: 1, batchSize: 3, maxBatchDelay: 11,
                                                           responseTimeout: 30, startupTimeout: 120))
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(version)) as? [String: Any]
        #expect(json?["batchSize"] as? Int == 3 && json?["version"] as? String == "1.0")
    }

    @Test func theModelsKeyCanMakeAVersionTheDefault() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        try store.addFolderArchive(name: "unet_v2", version: "2.0", model: "models/unet_tiny.pt", config: TestModelStore.segmenterConfig)
        var configuration = ServerConfiguration(modelStore: store.root, workDirectory: store.work)
        try configuration.apply(["models": #"{"unet_tiny": {"2.0": {"defaultVersion": true}}}"#], relativeTo: store.root)
        let server = ModelServer(configuration: configuration, logger: quietLogger)
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "unet_tiny"))
        try await server.register(RegistrationOptions(url: "unet_v2", modelName: "unet_tiny"))
        #expect(server.defaultVersion(of: "unet_tiny") == "2.0")
    }

    @Test func theModelsKeyIsCheckedAtStart() throws {
        var configuration = ServerConfiguration(modelStore: URL(fileURLWithPath: "/tmp"), workDirectory: URL(fileURLWithPath: "/tmp"))
        #expect(throws: ConfigurationError(key: "models", message: "unet version 1.0: batchSize must be in 1...1024, got 5000")) {
            try configuration.apply(["models": #"{"unet": {"1.0": {"batchSize": 5000}}}"#], relativeTo: URL(fileURLWithPath: "/tmp"))
        }
    }
}
