import Foundation
import Logging
import ServerCore
import Prometheus
import ServerHTTP
import TestFixtures

/// A temporary model store holding the tiny U-Net fixture as an unpacked archive folder.
public struct TestModelStore: Sendable {
    public let root: URL
    public let work: URL

    public init(config: String = TestModelStore.segmenterConfig) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString)", isDirectory: true)
        work = root.appendingPathComponent(".work", isDirectory: true)
        try addFolderArchive(name: "unet_tiny", model: "models/unet_tiny.pt", config: config)
    }

    public static let segmenterConfig = """
        minWorkers: 1
        handler:
          kind: image_segmenter
          inputSize: [96, 128]
          numClasses: 5
        """

    /// Writes `<name>/` with a TorchServe manifest, the model (as `modelFile`), `model-config.yaml` and `extraFiles` (name → contents).
    public func addFolderArchive(name: String, version: String = "1.0", model: String, config: String,
                                 handler: String = "image_segmenter", extraFiles: [String: String] = [:],
                                 modelFile: String = "model.pt") throws {
        let folder = root.appendingPathComponent(name, isDirectory: true)
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("MAR-INF"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Fixtures.url(model), to: folder.appendingPathComponent(modelFile))
        try config.write(to: folder.appendingPathComponent("model-config.yaml"), atomically: true, encoding: .utf8)
        for (file, contents) in extraFiles {
            try contents.write(to: folder.appendingPathComponent(file), atomically: true, encoding: .utf8)
        }
        let manifest = """
            {"createdOn": "22/11/2026 10:00:00", "runtime": "python", "archiverVersion": "0.12.0",
             "model": {"modelName": "\(name)", "serializedFile": "\(modelFile)", "handler": "\(handler)",
                       "modelVersion": "\(version)", "configFile": "model-config.yaml"}}
            """
        try manifest.write(to: folder.appendingPathComponent("MAR-INF/MANIFEST.json"), atomically: true, encoding: .utf8)
    }

    public func makeServer(queueSize: Int = 100) -> ModelServer {
        var configuration = ServerConfiguration(modelStore: root, workDirectory: work)
        configuration.jobQueueSize = queueSize
        return ModelServer(configuration: configuration, logger: quietLogger)
    }

    /// A server whose metrics go to `registry`, to read them back.
    public func makeServer(registry: PrometheusCollectorRegistry) -> ModelServer {
        ModelServer(configuration: ServerConfiguration(modelStore: root, workDirectory: work), logger: quietLogger,
                    metricsFactory: HTTPServer.metricsFactory(registry: registry))
    }

    public func remove() {
        try? FileManager.default.removeItem(at: root)
    }
}

/// The value of the first sample in `registry` whose line starts with `prefix` (a metric name
/// and, to pick one series, the start of its labels), after `server` has set its gauges.
public func sampleValue(_ server: ModelServer, _ registry: PrometheusCollectorRegistry, _ prefix: String) -> Double? {
    server.updateGauges()
    let line = registry.emitToString().split(separator: "\n").first { $0.hasPrefix(prefix) }
    return line.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) }
}

/// Polls `condition` every 20 ms for up to `seconds`.
/// How long tests wait for something a model loader thread does (load, fail, replace): loads run
/// at nice +10, and with the whole suite on two cores one took over 20 s to be scheduled (seen
/// in fresh-clone CI runs on a quiet machine).
public let loaderWait: Double = 60

public func eventually(_ seconds: Double = 20, _ condition: () throws -> Bool) async throws -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        try await Task.sleep(for: .milliseconds(20))
    }
    return try condition()
}

/// The class mask of a `{"base64_prediction": ...}` response.
public func mask(_ response: InferenceResponse) throws -> [UInt8] {
    let json = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: String]
    return [UInt8](Data(base64Encoded: json?["base64_prediction"] ?? "") ?? Data())
}

/// The expected 96×128 mask of a fixture image, made by the Python pipeline.
public func expectedMask(_ image: String) throws -> [UInt8] {
    try Fixtures.bytes("expected/\(try fixtureImage(image).stem).mask.u8")
}

/// A fixture image's entry in `images/images.json`.
public struct FixtureImage: Decodable, Sendable {
    public let file: String
    public let stem: String
    public let width: Int
    public let height: Int
}

public func fixtureImage(_ file: String) throws -> FixtureImage {
    struct Listing: Decodable { let images: [FixtureImage] }
    let listing = try JSONDecoder().decode(Listing.self, from: Data(contentsOf: Fixtures.url("images/images.json")))
    guard let found = listing.images.first(where: { $0.file == file }) else {
        throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: file])
    }
    return found
}

/// Tests log warnings and errors only.
public let quietLogger: Logger = {
    var logger = Logger(label: "test")
    logger.logLevel = .warning
    return logger
}()
