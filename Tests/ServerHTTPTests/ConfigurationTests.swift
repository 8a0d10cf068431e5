import Foundation
import ServerCore
import ServerHTTP
import ServerTestSupport
import TestFixtures
import Testing

@Suite struct ConfigurationTests {
    let base = URL(fileURLWithPath: "/srv/serve", isDirectory: true)

    func configuration() -> ServerSettings {
        ServerSettings(core: ServerConfiguration(modelStore: URL(fileURLWithPath: "/tmp/store"), workDirectory: URL(fileURLWithPath: "/tmp/work")))
    }

    @Test func propertiesSyntax() {
        let file = PropertiesFile(parsing: """
            # comment
            ! another comment
            inference_address=http://0.0.0.0:9000
            job_queue_size : 7
              allowed_urls = https://models\\\\.example\\\\.com/.*, \\
                 https://other/.*
            empty=
            """)
        #expect(file["inference_address"] == "http://0.0.0.0:9000")
        #expect(file["job_queue_size"] == "7")
        #expect(file["allowed_urls"] == "https://models\\\\.example\\\\.com/.*, https://other/.*")
        #expect(file["empty"] == "")
        #expect(file.entries.map(\.line) == [3, 4, 5, 7])
    }

    @Test func knownKeysAreApplied() throws {
        var config = configuration()
        let warnings = try config.apply(PropertiesFile(parsing: """
            inference_address=http://0.0.0.0:9000
            management_address=http://127.0.0.1:9001
            model_store=models
            load_models=unet.mar, text=text.mar
            job_queue_size=7
            default_workers_per_model=2
            number_of_gpu=0
            enable_model_api=TRUE
            disable_token_authorization=true
            allowed_urls=https://example\\.com/.*
            models={"unet": {"1.0": {"minWorkers": 2, "batchSize": 4}}}
            mystery=1
            """), relativeTo: base)
        #expect(config.http.inferenceAddress == .init(host: "0.0.0.0", port: 9000))
        #expect(config.http.managementAddress.port == 9001)
        #expect(config.core.modelStore.path == "/srv/serve/models")
        #expect(config.core.loadModels == ["unet.mar", "text=text.mar"])
        #expect(config.core.jobQueueSize == 7)
        #expect(config.core.defaultWorkersPerModel == 2)
        #expect(config.core.numberOfGPU == 0)
        #expect(config.core.enableModelAPI)
        #expect(!config.http.tokenAuthorization)
        #expect(config.core.allowedURLs == ["https://example\\.com/.*"])
        #expect(config.core.modelSettings["unet"]?["1.0"]?.settings.batchSize == 4)
        #expect(warnings.count == 1)
        #expect(warnings.first?.contains("mystery") == true)
        #expect(warnings.first?.contains("line 12") == true)
    }

    @Test func invalidValuesNameTheKey() {
        for (line, key) in [("job_queue_size=many", "job_queue_size"), ("inference_address=localhost:80", "inference_address"),
                            ("enable_model_api=yes", "enable_model_api"), ("models={", "models"),
                            ("allowed_urls=([", "allowed_urls"), ("max_request_size=0", "max_request_size")] {
            var config = configuration()
            do {
                try config.apply(PropertiesFile(parsing: line), relativeTo: base)
                Issue.record("\(line) was accepted")
            } catch {
                #expect(error.key == key, "\(line)")
            }
        }
    }

    @Test func environmentOverridesOnlyWhenEnabled() throws {
        var config = configuration()
        try config.apply(PropertiesFile(parsing: "job_queue_size=5"), environment: ["TS_JOB_QUEUE_SIZE": "9"], relativeTo: base)
        #expect(config.core.jobQueueSize == 5)
        try config.apply(PropertiesFile(parsing: "enable_envvars_config=true\njob_queue_size=5"),
                         environment: ["TS_JOB_QUEUE_SIZE": "9"], relativeTo: base)
        #expect(config.core.jobQueueSize == 9)
    }

    @Test func networkLimitKeysAreApplied() throws {
        var config = configuration()
        let warnings = try config.apply(PropertiesFile(parsing: """
            connection_idle_timeout=90
            request_read_timeout=12
            min_request_body_rate=0
            request_body_rate_grace=4
            max_connections=100
            health_connection_reserve=3
            max_inflight_body_bytes=1048576
            """), relativeTo: base)
        #expect(warnings.isEmpty)
        let limits = config.http.networkLimits
        #expect(limits.idleTimeout == .seconds(90))
        #expect(limits.readTimeout == .seconds(12))
        #expect(limits.minBodyRate == 0)
        #expect(limits.bodyRateGrace == .seconds(4))
        #expect(limits.maxConnections == 100)
        #expect(limits.healthConnectionReserve == 3)
        #expect(config.http.inflightBodyLimit(maxRequestSize: config.core.maxRequestSize) == 1_048_576)
    }

    @Test func networkLimitDefaults() throws {
        var config = configuration()
        let limits = config.http.networkLimits
        #expect(limits.idleTimeout == .seconds(75))
        #expect(limits.readTimeout == .seconds(30))
        #expect(limits.minBodyRate == 1024)
        #expect(limits.bodyRateGrace == .seconds(10))
        #expect(limits.healthConnectionReserve == 16)
        // The in-flight body bound follows max_request_size unless it is set.
        #expect(config.http.inflightBodyLimit(maxRequestSize: config.core.maxRequestSize) == 512 << 20)
        try config.apply(PropertiesFile(parsing: "max_request_size=100000000"), relativeTo: base)
        #expect(config.http.inflightBodyLimit(maxRequestSize: config.core.maxRequestSize) == 1_600_000_000)
        // max_connections stays below what the open-file limit holds for three listeners.
        #expect(HTTPConfiguration.NetworkLimits.defaultMaxConnections(openFileLimit: nil) == 1000)
        #expect(HTTPConfiguration.NetworkLimits.defaultMaxConnections(openFileLimit: 1_048_576) == 1000)
        #expect(HTTPConfiguration.NetworkLimits.defaultMaxConnections(openFileLimit: 1024) == 240)
        #expect(HTTPConfiguration.NetworkLimits.defaultMaxConnections(openFileLimit: 100) == 16)
        if let openFiles = HTTPConfiguration.NetworkLimits.openFileLimit(), openFiles >= 1024 {
            #expect(3 * (limits.maxConnections + limits.healthConnectionReserve) + 256 <= openFiles)
        }
    }

    @Test func invalidNetworkLimitsNameTheKey() {
        for line in ["connection_idle_timeout=0", "request_read_timeout=-1", "min_request_body_rate=fast",
                     "request_body_rate_grace=99999", "max_connections=0", "health_connection_reserve=-2",
                     "max_inflight_body_bytes=0"] {
            var config = configuration()
            do {
                try config.apply(PropertiesFile(parsing: line), relativeTo: base)
                Issue.record("\(line) was accepted")
            } catch {
                #expect(line.hasPrefix(error.key + "="), "\(line)")
                #expect(error.description.contains("is not an integer in"), "\(error)")
            }
        }
    }

    @Test func maxConnectionsOverTheOpenFileLimitWarns() throws {
        guard let openFiles = HTTPConfiguration.NetworkLimits.openFileLimit(), openFiles < 300_000 else { return }
        var config = configuration()
        let warnings = try config.apply(PropertiesFile(parsing: "max_connections=\(openFiles)"), relativeTo: base)
        #expect(warnings.count == 1)
        #expect(warnings.first?.contains("raise `ulimit -n` or lower max_connections") == true, "\(warnings)")
    }
}

extension ConfigurationTests {
    @Test func theConfigurationReferenceIsGeneratedFromTheKeyTables() throws {
        let repository = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent()
        let committed = try String(contentsOf: repository.appendingPathComponent("docs/configuration.md"), encoding: .utf8)
        #expect(committed == ServerSettings.referenceMarkdown(),
                "docs/configuration.md is stale: run `swift run serve --print-config-reference > docs/configuration.md`")
        #expect(ServerSettings.knownKeys.count == ServerConfiguration.keys.count + HTTPConfiguration.keys.count + GRPCConfiguration.keys.count)
        for key in ServerSettings.knownKeys { #expect(committed.contains("| `\(key)` |")) }
    }
}

@Suite struct SnapshotStoreTests {
    @Test func writeIsAtomicAndReadsBack() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("snap-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = SnapshotStore(directory: folder)
        #expect(try store.load() == nil)
        let snapshot = Snapshot(createdOn: "2026-11-22T10:00:00Z", models: [
            .init(name: "unet", defaultVersion: "2.0", versions: [
                .init(version: "1.0", url: "unet.mar", minWorkers: 1, maxWorkers: 1, batchSize: 4, maxBatchDelay: 50, responseTimeout: 120, startupTimeout: 120),
                .init(version: "2.0", url: "unet2.mar", minWorkers: 2, maxWorkers: 2, batchSize: 1, maxBatchDelay: 100, responseTimeout: 60, startupTimeout: 120),
            ]),
        ])
        try store.write(snapshot)
        try store.write(snapshot)
        #expect(try store.load() == snapshot)
        // No temporary files are left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["snapshot.json"])
        let attributes = try FileManager.default.attributesOfItem(atPath: store.file.path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
    }

    @Test func serverSnapshotsEveryChangeAndRestores() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        let snapshots = SnapshotStore(directory: store.root.appendingPathComponent("snapshots"))
        var configuration = ServerConfiguration(modelStore: store.root, workDirectory: store.work)
        configuration.enableModelAPI = true
        do {
            let server = ModelServer(configuration: configuration, logger: quietLogger, snapshots: snapshots)
            defer { server.shutdown() }
            try await server.register(RegistrationOptions(url: "unet_tiny", batchSize: 3))
            #expect(try snapshots.load()?.models.first?.versions.first?.settings.batchSize == 3)
            try await server.scale(model: "unet_tiny", minWorkers: 2, maxWorkers: 2, wait: true)
            #expect(try snapshots.load()?.models.first?.versions.first?.settings.minWorkers == 2)
        }
        let restoredServer = ModelServer(configuration: configuration, logger: quietLogger)
        defer { restoredServer.shutdown() }
        let failures = await restoredServer.restore(try #require(try snapshots.load()))
        #expect(failures.isEmpty)
        let described = try restoredServer.describe(model: "unet_tiny")[0]
        #expect(described.settings.batchSize == 3)
        #expect(described.workers.filter { $0.status == .ready }.count == 2)
    }
}
