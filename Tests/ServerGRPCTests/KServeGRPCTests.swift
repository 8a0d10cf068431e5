import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Prometheus
import ServerCore
@testable import ServerGRPC
import ServerHTTP
import ServerTestSupport
import TestFixtures
import Testing

/// KServe v2 over gRPC end to end: a real listener on a loopback port, grpc-swift's generated
/// client, real libtorch, the fixture U-Net and an echo model that returns its inputs unchanged.
@Suite struct KServeGRPCTests {
    typealias KServeClient = Inference_GRPCInferenceService.Client<HTTP2ClientTransport.Posix>

    static let echoConfig = """
        minWorkers: 1
        batchSize: 4
        maxBatchDelay: 200
        handler:
          kind: image_segmenter
          inputSize: [96, 128]
        """

    /// A store with `unet_tiny` and `echo` registered, served over gRPC.
    func withServer(queueSize: Int = 100, registry: PrometheusCollectorRegistry? = nil,
                    authorization: TokenAuthorization? = nil,
                    _ body: @Sendable (KServeClient, ModelServer) async throws -> Void) async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        try store.addFolderArchive(name: "echo", model: "models/echo.pt", config: Self.echoConfig)
        var configuration = ServerConfiguration(modelStore: store.root, workDirectory: store.work)
        configuration.jobQueueSize = queueSize
        let server = registry.map {
            ModelServer(configuration: configuration, logger: quietLogger, metricsFactory: HTTPServer.metricsFactory(registry: $0))
        } ?? ModelServer(configuration: configuration, logger: quietLogger)
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "unet_tiny"), atStartup: true)
        try await server.register(RegistrationOptions(url: "echo"))
        try await Self.serve(server, authorization: authorization) { try await body($0, server) }
    }

    /// Runs the KServe gRPC listener for `server` on a free port while `body` uses a client of it.
    static func serve(_ server: ModelServer, authorization: TokenAuthorization? = nil,
                      _ body: @Sendable (KServeClient) async throws -> Void) async throws {
        let listener = KServeGRPC.listener(
            server: server, address: GRPCConfiguration.Address(host: "127.0.0.1", port: 0), authorization: authorization,
            logger: quietLogger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await listener.run() }
            let port = try await listener.listeningPort
            try await withGRPCClient(
                transport: .http2NIOPosix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)
            ) { client in
                try await body(KServeClient(wrapping: client))
            }
            group.cancelAll()
        }
    }

    static func floats(_ bytes: [UInt8]) -> [Float] {
        bytes.withUnsafeBytes { raw in (0..<(raw.count / 4)).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }
    }

    static func input(_ name: String, _ datatype: String, _ shape: [Int],
                      _ fill: (inout Inference_InferTensorContents) -> Void = { _ in }) -> Inference_ModelInferRequest.InferInputTensor {
        .with {
            $0.name = name
            $0.datatype = datatype
            $0.shape = shape.map { Int64($0) }
            fill(&$0.contents)
        }
    }

    static func request(_ model: String, _ inputs: [Inference_ModelInferRequest.InferInputTensor], raw: [Data] = []) -> Inference_ModelInferRequest {
        .with {
            $0.modelName = model
            $0.inputs = inputs
            $0.rawInputContents = raw
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

    // MARK: Health and metadata

    @Test func healthReadinessAndMetadata() async throws {
        try await withServer { client, _ in
            #expect(try await client.serverLive(Inference_ServerLiveRequest()).live)
            #expect(try await client.serverReady(Inference_ServerReadyRequest()).ready)
            let server = try await client.serverMetadata(Inference_ServerMetadataRequest())
            #expect(server.name == "serve")
            #expect(server.version.split(separator: ".").count == 3)
            #expect(try await client.modelReady(.with { $0.name = "unet_tiny" }).ready)
            #expect(try await client.modelReady(.with { $0.name = "echo"; $0.version = "1.0" }).ready)
            let metadata = try await client.modelMetadata(.with { $0.name = "unet_tiny" })
            #expect(metadata.name == "unet_tiny")
            #expect(metadata.versions == ["1.0"])
            #expect(metadata.platform == "pytorch_libtorch")
            #expect(metadata.inputs.map(\.name) == ["input__0"])
            #expect(metadata.inputs.first?.datatype == "FP32")
            #expect(metadata.outputs.map(\.name) == ["output__0"])
        }
    }

    // MARK: Inference

    @Test func numericInputTypedAndRawGiveTheForwardOutput() async throws {
        let inputBytes = try Fixtures.bytes("models/unet_input.f32")
        let expected = Self.floats(try Fixtures.bytes("models/unet_output.f32"))
        try await withServer { client, _ in
            let typed = Self.request("unet_tiny", [Self.input("x", "FP32", [1, 3, 96, 128]) { $0.fp32Contents = Self.floats(inputBytes) }])
            var raw = Self.request("unet_tiny", [Self.input("x", "FP32", [1, 3, 96, 128])], raw: [Data(inputBytes)])
            raw.id = "req-7"
            for request in [typed, raw] {
                let response = try await client.modelInfer(request)
                #expect(response.modelName == "unet_tiny")
                #expect(response.modelVersion == "1.0")
                #expect(response.id == request.id)
                #expect(response.outputs.map(\.name) == ["output__0"])
                #expect(response.outputs.first?.datatype == "FP32")
                #expect(response.outputs.first?.shape == [1, 5, 96, 128])
                // As Triton: raw output contents, whatever form the inputs came in.
                #expect(response.rawOutputContents.count == 1)
                let values = Self.floats([UInt8](response.rawOutputContents.first ?? Data()))
                #expect(values.count == expected.count)
                let difference = zip(values, expected).map { abs($0 - $1) }.max() ?? .infinity
                #expect(difference < 1e-4)
            }
            // binary_data_output=false asks for typed contents.
            var typedOut = typed
            typedOut.parameters["binary_data_output"] = .with { $0.boolParam = false }
            let response = try await client.modelInfer(typedOut)
            #expect(response.rawOutputContents.isEmpty)
            let values = response.outputs.first?.contents.fp32Contents ?? []
            #expect(values.count == expected.count)
            #expect((zip(values, expected).map { abs($0 - $1) }.max() ?? .infinity) < 1e-4)
        }
    }

    @Test func datatypesRoundTripTypedAndRaw() async throws {
        try await withServer { client, _ in
            let cases: [(String, (inout Inference_InferTensorContents) -> Void, [UInt8])] = [
                ("BOOL", { $0.boolContents = [true, false] }, [1, 0]),
                ("UINT8", { $0.uintContents = [0, 255] }, [0, 255]),
                ("INT32", { $0.intContents = [-1, 2] }, [255, 255, 255, 255, 2, 0, 0, 0]),
                ("INT64", { $0.int64Contents = [1, -2] }, [1, 0, 0, 0, 0, 0, 0, 0, 254, 255, 255, 255, 255, 255, 255, 255]),
                ("FP64", { $0.fp64Contents = [0.5, -2] }, (0.5).bitPattern.littleEndianBytes + (-2.0).bitPattern.littleEndianBytes),
            ]
            for (datatype, fill, bytes) in cases {
                let typed = try await client.modelInfer(Self.request("echo", [Self.input("a", datatype, [2], fill)]))
                let raw = try await client.modelInfer(Self.request("echo", [Self.input("a", datatype, [2])], raw: [Data(bytes)]))
                #expect(typed.outputs.first?.datatype == datatype)
                // The echo model answers its one input twice (x, x).
                #expect(typed.rawOutputContents == [Data(bytes), Data(bytes)], "\(datatype)")
                #expect(raw.rawOutputContents == [Data(bytes), Data(bytes)], "\(datatype)")
            }
        }
    }

    @Test func imageBytesInputGivesThePredictionsMask() async throws {
        try await withServer { client, _ in
            let png = try Fixtures.bytes("images/rgb.png")
            let expected = try expectedMask("rgb.png")
            let typed = Self.request("unet_tiny", [Self.input("image", "BYTES", [1]) { $0.bytesContents = [Data(png)] }])
            var prefixed = Data([UInt8(png.count & 0xFF), UInt8(png.count >> 8 & 0xFF), UInt8(png.count >> 16 & 0xFF), UInt8(png.count >> 24)])
            prefixed.append(contentsOf: png)
            let raw = Self.request("unet_tiny", [Self.input("image", "BYTES", [1])], raw: [prefixed])
            for request in [typed, raw] {
                let response = try await client.modelInfer(request)
                #expect(response.outputs.first?.datatype == "UINT8")
                #expect(response.outputs.first?.shape == [1, 96, 128])
                #expect([UInt8](response.rawOutputContents.first ?? Data()) == expected)
            }
        }
    }

    @Test func textBytesInputMatchesThePredictionsAnswer() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        let folder = store.root.appendingPathComponent("text", isDirectory: true)
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("MAR-INF"), withIntermediateDirectories: true)
        for (name, fixture) in ["model.pt": "models/text_bert_tiny.pt", "vocab.txt": "tokenizer/vocab.txt",
                                "index_to_name.json": "text/index_to_name.json"] {
            try FileManager.default.copyItem(at: Fixtures.url(fixture), to: folder.appendingPathComponent(name))
        }
        try "batchSize: 4\nhandler:\n  kind: text_classifier\n  maxLength: 32\n  labels: index_to_name.json\n"
            .write(to: folder.appendingPathComponent("model-config.yaml"), atomically: true, encoding: .utf8)
        try """
            {"runtime": "python", "model": {"modelName": "text", "serializedFile": "model.pt",
             "handler": "text_classifier", "modelVersion": "1.0", "configFile": "model-config.yaml"}}
            """.write(to: folder.appendingPathComponent("MAR-INF/MANIFEST.json"), atomically: true, encoding: .utf8)
        let server = store.makeServer()
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "text"))
        let texts = ["The team won the final", "The senator voted against the bill"]
        var answers: [[String: Double]] = []
        for text in texts {
            let answer = try await server.predict(model: "text", request: InferenceRequest(body: Array(text.utf8)))
            answers.append((try JSONSerialization.jsonObject(with: Data(answer.body))) as? [String: Double] ?? [:])
        }
        let expected = answers
        try await Self.serve(server) { client in
            var request = Self.request("text", [Self.input("text", "BYTES", [2]) { $0.bytesContents = texts.map { Data($0.utf8) } }])
            request.parameters["binary_data_output"] = .with { $0.boolParam = false }
            let response = try await client.modelInfer(request)
            #expect(response.outputs.map(\.name) == ["probabilities", "label"])
            #expect(response.outputs.last?.datatype == "BYTES")
            let classes = Int(response.outputs.first?.shape.last ?? 0)
            let probabilities = response.outputs.first?.contents.fp32Contents ?? []
            let labels = (response.outputs.last?.contents.bytesContents ?? []).map { String(decoding: $0, as: UTF8.self) }
            #expect(labels.count == 2 && probabilities.count == 2 * classes)
            for row in 0..<min(2, labels.count) where probabilities.count == 2 * classes {
                #expect(labels[row] == expected[row].max { $0.value < $1.value }?.key)
                let batched = probabilities[(row * classes)..<((row + 1) * classes)].map(Double.init).sorted()
                let alone = expected[row].values.sorted()
                for (got, want) in zip(batched, alone) {
                    #expect(abs(got - want) <= 1e-5 * max(abs(want), 1e-6), "\(got) vs \(want)")
                }
            }
        }
    }

    // MARK: Errors

    @Test func errorsCarryTheProtocolStatusAndTheMessage() async throws {
        try await withServer { client, _ in
            let good = Self.input("a", "INT32", [2]) { $0.intContents = [1, 2] }
            let cases: [(Inference_ModelInferRequest, RPCError.Code, String)] = [
                (Self.request("nope", [good]), .notFound, "nope"),
                (.with { $0.modelName = "echo"; $0.modelVersion = "9.9"; $0.inputs = [good] }, .notFound, "9.9"),
                (Self.request("echo", [Self.input("a", "FP8", [2])]), .invalidArgument, "FP8"),
                (Self.request("echo", [Self.input("a", "INT32", [3]) { $0.intContents = [1, 2] }]), .invalidArgument, "shape [3]"),
                (Self.request("echo", [Self.input("a", "UINT8", [1]) { $0.uintContents = [300] }]), .invalidArgument, "uint_contents[0]"),
                (Self.request("echo", [Self.input("a", "INT32", [2]) { $0.fp32Contents = [1, 2] }]), .invalidArgument, "int_contents"),
                (Self.request("echo", [good, good], raw: []), .invalidArgument, "twice"),
                (Self.request("echo", [Self.input("a", "INT32", [2])], raw: [Data([1, 2, 3])]), .invalidArgument, "8 bytes"),
                (Self.request("echo", [good, Self.input("b", "INT32", [1])], raw: [Data(count: 8)]), .invalidArgument, "raw_input_contents"),
                (.with { $0.modelName = "echo"; $0.inputs = [good]; $0.outputs = [.with { $0.name = "nope" }] }, .invalidArgument, "nope"),
            ]
            for (request, code, fragment) in cases {
                let error = await Self.rpcError { _ = try await client.modelInfer(request) }
                #expect(error?.code == code, "\(fragment): \(String(describing: error))")
                #expect(error?.message.contains(fragment) == true, "\(String(describing: error?.message)) lacks \(fragment)")
            }
            for call in [
                { _ = try await client.modelMetadata(.with { $0.name = "nope" }) },
                { _ = try await client.modelReady(.with { $0.name = "nope" }) },
            ] as [@Sendable () async throws -> Void] {
                #expect(await Self.rpcError(call)?.code == .notFound)
            }
        }
    }

    @Test func deadlinesBecomeDeadlineExceededAndAreCounted() async throws {
        let registry = PrometheusCollectorRegistry()
        try await withServer(registry: registry) { client, _ in
            let one = Self.input("a", "INT32", [1]) { $0.intContents = [1] }
            // The request's own timeout parameter (microseconds), as on HTTP: the server answers it.
            var request = Self.request("echo", [one])
            request.parameters["timeout"] = .with { $0.int64Param = 1 }
            let parameter = await Self.rpcError { _ = try await client.modelInfer(request) }
            #expect(parameter?.code == .deadlineExceeded)
            #expect(parameter?.message.contains("deadline") == true, "\(String(describing: parameter))")
            // The call's deadline, shorter than echo's 200 ms batch delay.
            var options = CallOptions.defaults
            options.timeout = .milliseconds(50)
            let call = await Self.rpcError { _ = try await client.modelInfer(Self.request("echo", [one]), options: options) }
            #expect(call?.code == .deadlineExceeded)
            _ = try await client.modelInfer(Self.request("echo", [one]))
        }
        let model = "model_name=\"echo\",model_version=\"1.0\""
        // The parameter's deadline is always the server's to answer. The call's 50 ms deadline
        // is the client's too: on a loaded machine the client can give up before the server has
        // even taken the call, and then nothing is counted for it. So: at least one 504, and
        // every 504 counted as a request dropped for its deadline.
        func value(_ series: String) -> Double? {
            registry.emitToString().split(separator: "\n")
                .first { $0.hasPrefix(series + " ") }
                .flatMap { Double($0.split(separator: " ").last ?? "") }
        }
        let answered504 = "ts_inference_responses_total{\(model),code=\"504\"}"
        #expect(try await eventually { (value(answered504) ?? 0) >= 1 }, "\(registry.emitToString())")
        #expect(value(answered504) == value("ts_requests_dropped_total{\(model),reason=\"deadline\"}"), "\(registry.emitToString())")
        #expect(value("ts_inference_responses_total{\(model),code=\"200\"}") == 1)
    }

    @Test func fullQueueIsResourceExhausted() async throws {
        try await withServer(queueSize: 1) { client, _ in
            let codes = await withTaskGroup(of: RPCError.Code?.self) { group in
                for index in 0..<16 {
                    group.addTask {
                        let request = Self.request("echo", [Self.input("a", "INT32", [1]) { $0.intContents = [Int32(index)] }])
                        return await Self.rpcError { _ = try await client.modelInfer(request) }?.code
                    }
                }
                var codes: [RPCError.Code?] = []
                for await code in group { codes.append(code) }
                return codes
            }
            #expect(codes.contains(.resourceExhausted), "\(codes)")
            #expect(codes.contains(nil), "\(codes)")
            #expect(codes.allSatisfy { $0 == nil || $0 == .resourceExhausted }, "\(codes)")
        }
    }

    @Test func tokenAuthorizationNeedsTheInferenceKey() async throws {
        let keyFile = FileManager.default.temporaryDirectory.appendingPathComponent("keys-\(UUID().uuidString).json")
        let authorization = try TokenAuthorization(keyFile: keyFile)
        defer { authorization.removeKeyFile() }
        try await withServer(authorization: authorization) { client, _ in
            let request = Self.request("echo", [Self.input("a", "INT32", [1]) { $0.intContents = [1] }])
            // Health needs no key.
            #expect(try await client.serverLive(Inference_ServerLiveRequest()).live)
            #expect(try await client.serverReady(Inference_ServerReadyRequest()).ready)
            let missing = await Self.rpcError { _ = try await client.modelInfer(request) }
            #expect(missing?.code == .unauthenticated)
            #expect(missing?.message.contains("authorization: Bearer") == true)
            let wrong = await Self.rpcError {
                _ = try await client.modelInfer(request, metadata: ["authorization": "Bearer \(authorization.key(.management))"])
            }
            #expect(wrong?.code == .unauthenticated)
            let metadataCall = await Self.rpcError { _ = try await client.modelMetadata(.with { $0.name = "echo" }) }
            #expect(metadataCall?.code == .unauthenticated)
            let response = try await client.modelInfer(request, metadata: ["authorization": "Bearer \(authorization.key(.inference))"])
            // The echo model answers its one input twice (x, x).
            #expect(response.rawOutputContents == [Data([1, 0, 0, 0]), Data([1, 0, 0, 0])])
        }
    }

    @Test func requestsOverMaxRequestSizeAreRefused() async throws {
        try await withServer { client, server in
            let size = server.configuration.maxRequestSize
            let request = Self.request("echo", [Self.input("a", "UINT8", [size + 1])], raw: [Data(count: size + 1)])
            let error = await Self.rpcError { _ = try await client.modelInfer(request) }
            // The transport refuses the oversized message with RESOURCE_EXHAUSTED and resets the
            // stream; a client still sending its body when the reset arrives reports the stream
            // as UNAVAILABLE instead (seen under the full suite). Either way nothing was served,
            // and the server keeps answering.
            let refused = [RPCError.Code.resourceExhausted, .unavailable].contains { $0 == error?.code }
            #expect(refused, "\(String(describing: error))")
            let live = try await client.serverLive(Inference_ServerLiveRequest()).live
            #expect(live)
        }
    }

    @Test func aPortInUseFailsWithTheKeyToChange() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        let server = store.makeServer()
        defer { server.shutdown() }
        let first = KServeGRPC.listener(server: server, address: .init(host: "127.0.0.1", port: 0), authorization: nil, logger: quietLogger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await first.run() }
            let port = try await first.listeningPort
            let second = KServeGRPC.listener(server: server, address: .init(host: "127.0.0.1", port: port), authorization: nil, logger: quietLogger)
            do {
                try await second.run()
                Issue.record("a second listener on port \(port) started")
            } catch {
                let text = "\(error)"
                #expect(text.contains("127.0.0.1:\(port)") && text.contains("grpc_kserve_address"), "\(text)")
            }
            group.cancelAll()
        }
    }

    // MARK: Configuration

    @Test func configurationKeysSetTheListeners() throws {
        let base = FileManager.default.temporaryDirectory
        func settings(_ text: String) throws -> ServerSettings {
            var settings = ServerSettings(core: ServerConfiguration(modelStore: base, workDirectory: base))
            let warnings = try settings.apply(PropertiesFile(parsing: text), relativeTo: base)
            #expect(warnings.isEmpty, "\(warnings)")
            return settings
        }
        let defaults = try settings("")
        #expect(defaults.grpc.activeKServeAddress == GRPCConfiguration.Address(host: "127.0.0.1", port: 8083))
        #expect(defaults.grpc.inferenceAddress == GRPCConfiguration.Address(host: "127.0.0.1", port: 7070))
        #expect(defaults.grpc.managementAddress == GRPCConfiguration.Address(host: "127.0.0.1", port: 7071))
        let moved = try settings("grpc_kserve_address=[::1]:9001\ngrpc_inference_address=0.0.0.0\ngrpc_inference_port=7075\n")
        #expect(moved.grpc.kserveAddress == GRPCConfiguration.Address(host: "::1", port: 9001))
        #expect(moved.grpc.kserveAddress?.description == "[::1]:9001")
        #expect(moved.grpc.inferenceAddress == GRPCConfiguration.Address(host: "0.0.0.0", port: 7075))
        #expect(try settings("grpc_kserve_address=off\n").grpc.activeKServeAddress == nil)
        #expect(try settings("grpc_kserve_address=\n").grpc.activeKServeAddress == nil)
        #expect(try settings("enable_grpc=false\n").grpc.activeKServeAddress == nil)
        for bad in ["grpc_kserve_address=http://127.0.0.1:8083", "grpc_kserve_address=127.0.0.1", "grpc_kserve_address=h:99999",
                    "grpc_management_port=70000", "enable_grpc=maybe"] {
            #expect(throws: ConfigurationError.self, "\(bad)") { try settings(bad) }
        }
    }
}

extension UInt64 {
    var littleEndianBytes: [UInt8] { withUnsafeBytes(of: littleEndian) { Array($0) } }
}
