import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ServerCore
@testable import ServerGRPC
import ServerHTTP
import ServerTestSupport
import SwiftProtobuf
import TestFixtures
import Testing

/// TorchServe's gRPC inference and management APIs end to end: real listeners on loopback
/// ports, grpc-swift's generated clients, real libtorch, and the REST API of the same server
/// beside them to compare answers with.
@Suite struct TorchServeGRPCTests {
    typealias InferenceClient = Org_Pytorch_Serve_Grpc_Inference_InferenceAPIsService.Client<HTTP2ClientTransport.Posix>
    typealias ManagementClient = Org_Pytorch_Serve_Grpc_Management_ManagementAPIsService.Client<HTTP2ClientTransport.Posix>

    static let modelStore = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("model_store", isDirectory: true)

    static func sample(_ name: String) throws -> Data {
        try Data(contentsOf: modelStore.appendingPathComponent("samples/\(name)"))
    }

    /// Runs `listener` on a free port while `body` uses a gRPC client of it.
    static func serve(_ listener: GRPCListener, _ body: @Sendable (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await listener.run() }
            let port = try await listener.listeningPort
            try await withGRPCClient(
                transport: .http2NIOPosix(target: .ipv4(host: "127.0.0.1", port: port), transportSecurity: .plaintext)
            ) { client in
                try await body(client)
            }
            group.cancelAll()
        }
    }

    /// The sample segmenter (`unet.mar`) and text classifier (`fortunes.mar`), served by the gRPC
    /// inference listener and by the REST inference port.
    func withSamples(_ body: @Sendable (InferenceClient, any TestClientProtocol) async throws -> Void) async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("tsgrpc-\(UUID().uuidString)", isDirectory: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let server = ModelServer(configuration: ServerConfiguration(modelStore: Self.modelStore, workDirectory: work), logger: quietLogger)
        defer { server.shutdown() }
        for archive in ["unet.mar", "fortunes.mar"] { try await server.register(RegistrationOptions(url: archive), atStartup: true) }
        let listener = TorchServeGRPC.inferenceListener(
            server: server, address: GRPCConfiguration.Address(host: "127.0.0.1", port: 0), authorization: nil, logger: quietLogger)
        let app = HTTPServer.inferenceApplication(server: server, host: "127.0.0.1", port: 0, logger: quietLogger)
        try await app.test(.live) { http in
            try await Self.serve(listener) { client in try await body(InferenceClient(wrapping: client), http) }
        }
    }

    /// A store with the tiny U-Net fixture as `unet_tiny` 1.0 and as `unet_tiny_v2` 2.0 (to
    /// register under the name `unet_tiny`), nothing registered, the model API on; served by the
    /// gRPC management listener and by the REST management port.
    func withManagement(_ body: @Sendable (ManagementClient, any TestClientProtocol, ModelServer) async throws -> Void) async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        try store.addFolderArchive(name: "unet_tiny_v2", version: "2.0", model: "models/unet_tiny.pt", config: TestModelStore.segmenterConfig)
        var configuration = ServerConfiguration(modelStore: store.root, workDirectory: store.work)
        configuration.enableModelAPI = true
        let server = ModelServer(configuration: configuration, logger: quietLogger)
        defer { server.shutdown() }
        let listener = TorchServeGRPC.managementListener(
            server: server, address: GRPCConfiguration.Address(host: "127.0.0.1", port: 0), authorization: nil, logger: quietLogger)
        let app = HTTPServer.managementApplication(server: server, host: "127.0.0.1", port: 0, logger: quietLogger)
        try await app.test(.live) { http in
            try await Self.serve(listener) { client in try await body(ManagementClient(wrapping: client), http, server) }
        }
    }

    static func predictions(_ model: String, version: String = "", _ input: [String: Data]) -> PredictionsRequest {
        .with {
            $0.modelName = model
            $0.modelVersion = version
            $0.input = input
        }
    }

    /// The REST answer's status and body.
    static func rest(_ http: any TestClientProtocol, _ uri: String, method: HTTPRequest.Method = .get,
                     body: Data? = nil) async throws -> (status: Int, body: Data) {
        try await http.execute(uri: uri, method: method, body: body.map { ByteBuffer(bytes: $0) }) { response in
            (response.status.code, Data(buffer: response.body))
        }
    }

    /// The RPC error `body` ends with, or nil when it succeeds.
    static func rpcError(_ body: () async throws -> Void) async -> RPCError? {
        do {
            try await body()
            return nil
        } catch let error as RPCError {
            return error
        } catch {
            return RPCError(code: .unknown, message: "\(error)")
        }
    }

    // MARK: Inference

    @Test func pingAnswersTheRESTHealthJSON() async throws {
        try await withSamples { client, http in
            let health = try await client.ping(Google_Protobuf_Empty()).health
            #expect(health == "{\"status\":\"Healthy\"}")
            #expect(Data(health.utf8) == (try await Self.rest(http, "/ping")).body)
        }
    }

    @Test func predictionsEqualTheRESTAnswerForEverySampleInput() async throws {
        let scene = try Self.sample("scene_0.png")
        let sentence = Data("The compiler crashed and the kernel panicked".utf8)
        let list = Data(#"{"inputs": ["The senator voted against the bill", "Add two cups of flour"]}"#.utf8)
        try await withSamples { client, http in
            let cases: [(request: PredictionsRequest, uri: String, body: Data)] = [
                (Self.predictions("unet", ["data": scene]), "/predictions/unet", scene),
                (Self.predictions("unet", version: "1.0", ["body": scene]), "/predictions/unet/1.0", scene),
                // Entries besides the payload are the route's query parameters.
                (Self.predictions("unet", ["data": scene, "output": Data("overlay".utf8)]), "/predictions/unet?output=overlay", scene),
                (Self.predictions("fortunes", ["data": sentence]), "/predictions/fortunes", sentence),
                (Self.predictions("fortunes", ["data": list]), "/predictions/fortunes", list),
            ]
            for (request, uri, body) in cases {
                let expected = try await Self.rest(http, uri, method: .post, body: body)
                #expect(expected.status == 200)
                let answer = try await client.predictions(request)
                #expect(answer.prediction == expected.body, "\(uri)")
                let streamed = try await client.streamPredictions(request) { response in
                    var messages: [Data] = []
                    for try await message in response.messages { messages.append(message.prediction) }
                    return messages
                }
                #expect(streamed == [expected.body], "\(uri) streamed")
            }
        }
    }

    @Test func badRequestsGetTorchServesCodesWithTheServersMessages() async throws {
        let scene = try Self.sample("scene_0.png")
        try await withSamples { client, http in
            let unknown = await Self.rpcError { _ = try await client.predictions(Self.predictions("nope", ["data": scene])) }
            #expect(unknown?.code == .notFound)
            #expect(unknown?.message == "Model not found: nope")
            let restUnknown = try await Self.rest(http, "/predictions/nope", method: .post, body: scene)
            #expect(restUnknown.status == 404)
            #expect(String(decoding: restUnknown.body, as: UTF8.self).contains(unknown?.message ?? "?"))

            let version = await Self.rpcError { _ = try await client.predictions(Self.predictions("unet", version: "9.9", ["data": scene])) }
            #expect(version?.code == .notFound)
            #expect(version?.message.contains("9.9") == true)

            let noName = await Self.rpcError { _ = try await client.predictions(Self.predictions("", ["data": scene])) }
            #expect(noName?.code == .invalidArgument)
            #expect(noName?.message.contains("model_name") == true)

            let noPayload = await Self.rpcError { _ = try await client.predictions(Self.predictions("unet", ["image": scene])) }
            #expect(noPayload?.code == .invalidArgument)
            #expect(noPayload?.message.contains("'data'") == true)

            let notAnImage = await Self.rpcError { _ = try await client.predictions(Self.predictions("unet", ["data": Data("hello".utf8)])) }
            #expect(notAnImage?.code == .invalidArgument)

            let emptyText = await Self.rpcError { _ = try await client.predictions(Self.predictions("fortunes", ["data": Data("   ".utf8)])) }
            #expect(emptyText?.code == .invalidArgument)
            #expect(emptyText?.message.contains("empty") == true)

            let sequence = await Self.rpcError {
                _ = try await client.streamPredictions2(requestProducer: { writer in
                    try await writer.write(Self.predictions("unet", ["data": scene]))
                }, onResponse: { response in
                    for try await _ in response.messages {}
                })
            }
            #expect(sequence?.code == .unimplemented)
        }
    }

    // MARK: Management

    @Test func registerListDescribeScaleSetDefaultUnregister() async throws {
        try await withManagement { client, http, _ in
            let registered = try await client.registerModel(.with {
                $0.url = "unet_tiny"
                $0.initialWorkers = 1
                $0.synchronous = true
            })
            #expect(registered.msg == "Model \"unet_tiny\" Version: 1.0 registered with 1 initial workers")
            let second = try await client.registerModel(.with {
                $0.url = "unet_tiny_v2"
                $0.modelName = "unet_tiny"
                $0.initialWorkers = 1
                $0.synchronous = true
            })
            #expect(second.msg == "Model \"unet_tiny\" Version: 2.0 registered with 1 initial workers")

            let list = try await client.listModels(.with { _ in })
            #expect(Data(list.msg.utf8) == (try await Self.rest(http, "/models")).body)
            #expect(list.msg.contains("\"modelName\":\"unet_tiny\""))

            let described = try await client.describeModel(.with { $0.modelName = "unet_tiny" })
            #expect(Data(described.msg.utf8) == (try await Self.rest(http, "/models/unet_tiny")).body)
            let all = try await client.describeModel(.with { $0.modelName = "unet_tiny"; $0.modelVersion = "all" })
            #expect(Data(all.msg.utf8) == (try await Self.rest(http, "/models/unet_tiny/all")).body)
            let versions = (try JSONSerialization.jsonObject(with: Data(all.msg.utf8)) as? [[String: Any]])?.compactMap { $0["modelVersion"] as? String }
            #expect(versions?.sorted() == ["1.0", "2.0"])

            let defaulted = try await client.setDefault(.with { $0.modelName = "unet_tiny"; $0.modelVersion = "2.0" })
            #expect(defaulted.msg == "Default version successfully updated for model \"unet_tiny\" to \"2.0\"")
            let now = try await client.describeModel(.with { $0.modelName = "unet_tiny" })
            #expect(now.msg.contains("\"modelVersion\":\"2.0\""))

            let scaled = try await client.scaleWorker(.with {
                $0.modelName = "unet_tiny"
                $0.modelVersion = "2.0"
                $0.minWorker = 2
                $0.synchronous = true
            })
            #expect(scaled.msg == "Workers scaled to 2 for model: unet_tiny, version: 2.0")
            let workers = try await client.describeModel(.with { $0.modelName = "unet_tiny"; $0.modelVersion = "2.0" })
            #expect(workers.msg.contains("\"minWorkers\":2"))

            let removed = try await client.unregisterModel(.with { $0.modelName = "unet_tiny"; $0.modelVersion = "1.0" })
            #expect(removed.msg == "Model \"unet_tiny\" unregistered")
            let gone = await Self.rpcError { _ = try await client.describeModel(.with { $0.modelName = "unet_tiny"; $0.modelVersion = "1.0" }) }
            #expect(gone?.code == .notFound)
        }
    }

    @Test func managementRefusalsGetTorchServesCodes() async throws {
        try await withManagement { client, _, _ in
            let unknown = await Self.rpcError { _ = try await client.describeModel(.with { $0.modelName = "nope" }) }
            #expect(unknown?.code == .notFound)
            #expect(unknown?.message == "Model not found: nope")
            let noURL = await Self.rpcError { _ = try await client.registerModel(.with { $0.modelName = "x" }) }
            #expect(noURL?.code == .invalidArgument)
            #expect(noURL?.message.contains("url is required") == true)
            let missing = await Self.rpcError { _ = try await client.registerModel(.with { $0.url = "absent.mar" }) }
            #expect(missing?.code == .notFound)
            let batch = await Self.rpcError { _ = try await client.registerModel(.with { $0.url = "unet_tiny"; $0.batchSize = 5000 }) }
            #expect(batch?.code == .invalidArgument)
            #expect(batch?.message == "batch_size must be in 1...1024, got 5000")
            let runtime = await Self.rpcError { _ = try await client.registerModel(.with { $0.url = "unet_tiny"; $0.runtime = "java" }) }
            #expect(runtime?.code == .invalidArgument)
            let scale = await Self.rpcError { _ = try await client.scaleWorker(.with { $0.modelName = "nope"; $0.minWorker = 1 }) }
            #expect(scale?.code == .notFound)
            let noVersion = await Self.rpcError { _ = try await client.setDefault(.with { $0.modelName = "unet_tiny" }) }
            #expect(noVersion?.code == .invalidArgument)
            let unregister = await Self.rpcError { _ = try await client.unregisterModel(.with { $0.modelName = "nope" }) }
            #expect(unregister?.code == .notFound)
        }
    }

    // MARK: Token authorization

    @Test func eachServiceNeedsItsOwnKey() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        let server = store.makeServer()
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "unet_tiny"), atStartup: true)
        let keys = try TokenAuthorization(keyFile: store.root.appendingPathComponent("key_file.json"))
        let any = GRPCConfiguration.Address(host: "127.0.0.1", port: 0)
        let inference = TorchServeGRPC.inferenceListener(server: server, address: any, authorization: keys, logger: quietLogger)
        let management = TorchServeGRPC.managementListener(server: server, address: any, authorization: keys, logger: quietLogger)
        let image = try Fixtures.bytes("images/rgb.png")
        try await Self.serve(inference) { channel in
            let client = InferenceClient(wrapping: channel)
            // Health needs no key, as GET /ping.
            #expect(try await client.ping(Google_Protobuf_Empty()).health == "{\"status\":\"Healthy\"}")
            let request = Self.predictions("unet_tiny", ["data": Data(image)])
            let missing = await Self.rpcError { _ = try await client.predictions(request) }
            #expect(missing?.code == .unauthenticated)
            #expect(missing?.message.contains("inference key") == true)
            let wrongKey = await Self.rpcError {
                _ = try await client.predictions(request, metadata: ["authorization": "Bearer \(keys.key(.management))"])
            }
            #expect(wrongKey?.code == .unauthenticated)
            let answer = try await client.predictions(request, metadata: ["authorization": "Bearer \(keys.key(.inference))"])
            #expect(!answer.prediction.isEmpty)
        }
        try await Self.serve(management) { channel in
            let client = ManagementClient(wrapping: channel)
            let missing = await Self.rpcError { _ = try await client.listModels(.with { _ in }) }
            #expect(missing?.code == .unauthenticated)
            let wrongKey = await Self.rpcError {
                _ = try await client.listModels(.with { _ in }, metadata: ["authorization": "Bearer \(keys.key(.inference))"])
            }
            #expect(wrongKey?.code == .unauthenticated)
            let list = try await client.listModels(.with { _ in }, metadata: ["authorization": "Bearer \(keys.key(.management))"])
            #expect(list.msg.contains("unet_tiny"))
        }
    }
}
