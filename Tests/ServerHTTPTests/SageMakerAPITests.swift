import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ServerCore
import ServerHTTP
import ServerTestSupport
import TestFixtures
import Testing

/// SageMaker's container contract: `/invocations` routing, `/models/{m}/invoke`, a
/// `model.tar.gz` without a manifest, `SAGEMAKER_BIND_TO_PORT` and `invocations_model`.
@Suite struct SageMakerAPITests {
    /// The mask a `/predictions`-style response carries.
    static func mask(_ response: TestResponse) -> [UInt8] {
        let object = (try? JSONSerialization.jsonObject(with: Data(buffer: response.body))) as? [String: Any]
        return (object?["base64_prediction"] as? String).flatMap { Data(base64Encoded: $0) }.map { [UInt8]($0) } ?? []
    }

    func withServer(models: [String], invocationsModel: String? = nil,
                    _ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        try store.addFolderArchive(name: "echo", model: "models/echo.pt", config: KServeAPITests.echoConfig)
        let configuration = ServerConfiguration(modelStore: store.root, workDirectory: store.work)
        let server = ModelServer(configuration: configuration, logger: quietLogger)
        defer { server.shutdown() }
        for model in models { try await server.register(RegistrationOptions(url: model)) }
        let app = HTTPServer.inferenceApplication(server: server, host: "127.0.0.1", port: 0, invocationsModel: invocationsModel,
                                                  logger: quietLogger)
        try await app.test(.live) { client in try await body(client) }
    }

    @Test func invocationsRunsTheOnlyModelAsPredictionsDoes() async throws {
        let png = ByteBuffer(bytes: try Fixtures.bytes("images/rgb.png"))
        let expected = try expectedMask("rgb.png")
        try await withServer(models: ["unet_tiny"]) { client in
            try await client.execute(uri: "/invocations", method: .post, body: png) { response in
                #expect(response.status == .ok)
                #expect(Self.mask(response) == expected)
            }
            try await client.execute(uri: "/models/unet_tiny/invoke", method: .post, body: png) { response in
                #expect(Self.mask(response) == expected)
            }
            // The same handler options as /predictions.
            try await client.execute(uri: "/invocations", method: .post, headers: [.accept: "image/png"], body: png) { response in
                #expect(response.headers[.contentType] == "image/png")
            }
            try await client.execute(uri: "/invocations", method: .post, body: ByteBuffer(string: "not an image")) { response in
                #expect(response.status == .unsupportedMediaType)
            }
            try await client.execute(uri: "/models/nope/invoke", method: .post, body: png) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/invocations", method: .get) { #expect($0.status == .methodNotAllowed) }
            try await client.execute(uri: "/ping", method: .get) { #expect($0.status == .ok) }
        }
    }

    @Test func targetModelHeaderThenQueryThenConfigChooseAmongSeveral() async throws {
        let png = ByteBuffer(bytes: try Fixtures.bytes("images/rgb.png"))
        let unet = try expectedMask("rgb.png")
        let target = HTTPField.Name("X-Amzn-SageMaker-Target-Model")!
        try await withServer(models: ["unet_tiny", "echo"]) { client in
            // Two models and nothing names one.
            try await client.execute(uri: "/invocations", method: .post, body: png) { response in
                #expect(response.status == .badRequest)
                let object = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                #expect((object?["message"] as? String)?.contains("X-Amzn-SageMaker-Target-Model") == true)
            }
            for (value, isUNet) in [("unet_tiny.tar.gz", true), ("models/unet_tiny.mar", true), ("echo.tar.gz", false), ("echo", false)] {
                try await client.execute(uri: "/invocations", method: .post, headers: [target: value], body: png) { response in
                    #expect(response.status == .ok, "\(value)")
                    #expect((Self.mask(response) == unet) == isUNet, "\(value)")
                }
            }
            try await client.execute(uri: "/invocations", method: .post, headers: [target: "missing.tar.gz"], body: png) { response in
                #expect(response.status == .notFound)
            }
            try await client.execute(uri: "/invocations?model_name=unet_tiny", method: .post, body: png) { response in
                #expect(Self.mask(response) == unet)
            }
            // The header beats the query parameter.
            try await client.execute(uri: "/invocations?model_name=unet_tiny", method: .post, headers: [target: "echo.tar.gz"], body: png) { response in
                #expect(response.status == .ok)
                #expect(Self.mask(response) != unet)
            }
        }
        try await withServer(models: ["unet_tiny", "echo"], invocationsModel: "unet_tiny") { client in
            try await client.execute(uri: "/invocations", method: .post, body: png) { response in
                #expect(response.status == .ok)
                #expect(Self.mask(response) == unet)
            }
        }
    }

    @Test func sageMakerModelTarGzLoadsWithoutAMar() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        // SageMaker's layout: the TorchScript file and model-config.yaml at the root, no MAR-INF.
        let staging = store.root.appendingPathComponent("staging", isDirectory: true)
        try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Fixtures.url("models/unet_tiny.pt"), to: staging.appendingPathComponent("model.pt"))
        try TestModelStore.segmenterConfig.write(to: staging.appendingPathComponent("model-config.yaml"), atomically: true, encoding: .utf8)
        let tar = Process()
        tar.executableURL = URL(fileURLWithPath: "/usr/bin/tar")
        tar.arguments = ["-czf", store.root.appendingPathComponent("model.tar.gz").path, "-C", staging.path, "model.pt", "model-config.yaml"]
        try tar.run()
        tar.waitUntilExit()
        #expect(tar.terminationStatus == 0)
        try FileManager.default.removeItem(at: staging)

        let server = store.makeServer()
        defer { server.shutdown() }
        let description = try await server.register(RegistrationOptions(url: "model.tar.gz"))
        #expect(description.modelName == "model" && description.modelVersion == "1.0" && description.handler == "image_segmenter")
        let app = HTTPServer.inferenceApplication(server: server, host: "127.0.0.1", port: 0, logger: quietLogger)
        let png = ByteBuffer(bytes: try Fixtures.bytes("images/rgb.png"))
        let expected = try expectedMask("rgb.png")
        try await app.test(.live) { client in
            try await client.execute(uri: "/invocations", method: .post,
                                     headers: [HTTPField.Name("X-Amzn-SageMaker-Target-Model")!: "model.tar.gz"], body: png) { response in
                #expect(response.status == .ok)
                #expect(Self.mask(response) == expected)
            }
        }
    }

    @Test func bindToPortEnvironmentAndInvocationsModelKey() throws {
        let base = FileManager.default.temporaryDirectory
        var settings = ServerSettings(core: ServerConfiguration(modelStore: base, workDirectory: base))
        var configuration = settings.http
        try configuration.applyPlatformEnvironment([:])
        #expect(configuration.inferenceAddress == .init(host: "127.0.0.1", port: 8080))
        try configuration.applyPlatformEnvironment(["SAGEMAKER_BIND_TO_PORT": "9091"])
        #expect(configuration.inferenceAddress == .init(host: "0.0.0.0", port: 9091))
        #expect(configuration.managementAddress.port == 8081)
        for bad in ["", "http", "0", "70000"] {
            #expect(throws: ConfigurationError(key: "SAGEMAKER_BIND_TO_PORT", message: "'\(bad)' is not a port number in 1...65535")) {
                try configuration.applyPlatformEnvironment(["SAGEMAKER_BIND_TO_PORT": bad])
            }
        }
        let warnings = try settings.apply(PropertiesFile(parsing: "invocations_model=unet\n"), relativeTo: base)
        #expect(warnings.isEmpty)
        #expect(settings.http.invocationsModel == "unet")
    }
}
