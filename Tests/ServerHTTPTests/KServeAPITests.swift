import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Metrics
import ServerCore
import Prometheus
import ServerHTTP
import ServerTestSupport
import TestFixtures
import Testing

/// KServe v2 (Open Inference Protocol) end to end: a real server on a loopback port, real
/// libtorch, the fixture U-Net and an echo model that returns its inputs unchanged.
@Suite struct KServeAPITests {
    static let echoConfig = """
        minWorkers: 1
        batchSize: 4
        maxBatchDelay: 200
        handler:
          kind: image_segmenter
          inputSize: [96, 128]
        """

    func withServer(registry: PrometheusCollectorRegistry? = nil,
                    _ body: @Sendable (any TestClientProtocol, ModelServer) async throws -> Void) async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        try store.addFolderArchive(name: "echo", model: "models/echo.pt", config: Self.echoConfig)
        let configuration = ServerConfiguration(modelStore: store.root, workDirectory: store.work)
        let server = registry.map {
            ModelServer(configuration: configuration, logger: quietLogger, metricsFactory: HTTPServer.metricsFactory(registry: $0))
        } ?? ModelServer(configuration: configuration, logger: quietLogger)
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "unet_tiny"), atStartup: true)
        try await server.register(RegistrationOptions(url: "echo"))
        let app = HTTPServer.inferenceApplication(server: server, host: "127.0.0.1", port: 0, logger: quietLogger)
        try await app.test(.live) { client in try await body(client, server) }
    }

    static func json(_ object: Any) throws -> ByteBuffer {
        ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: object))
    }

    static func object(_ buffer: ByteBuffer) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(buffer: buffer))) as? [String: Any] ?? [:]
    }

    static func outputs(_ buffer: ByteBuffer) -> [[String: Any]] {
        object(buffer)["outputs"] as? [[String: Any]] ?? []
    }

    static func floats(_ bytes: [UInt8]) -> [Float] {
        bytes.withUnsafeBytes { raw in (0..<(raw.count / 4)).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }
    }

    static func bytes(of floats: [Float]) -> [UInt8] {
        floats.withUnsafeBytes { Array($0) }
    }

    // MARK: Inference

    @Test func imageAsBytesGivesThePredictionsMask() async throws {
        try await withServer { client, _ in
            let png = try Fixtures.bytes("images/rgb.png")
            let predicted = try await client.execute(uri: "/predictions/unet_tiny", method: .post, body: ByteBuffer(bytes: png)) { response in
                let b64 = Self.object(response.body)["base64_prediction"] as? String ?? ""
                return Data(base64Encoded: b64).map { [UInt8]($0) } ?? []
            }
            #expect(predicted == (try expectedMask("rgb.png")))
            let request = try Self.json([
                "id": "42",
                "inputs": [["name": "image", "shape": [1], "datatype": "BYTES", "data": [Data(png).base64EncodedString()]]],
            ])
            try await client.execute(uri: "/v2/models/unet_tiny/infer", method: .post,
                                     headers: [.contentType: "application/json"], body: request) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "application/json")
                let object = Self.object(response.body)
                #expect(object["model_name"] as? String == "unet_tiny")
                #expect(object["model_version"] as? String == "1.0")
                #expect(object["id"] as? String == "42")
                let outputs = Self.outputs(response.body)
                #expect(outputs.count == 1)
                #expect(outputs.first?["name"] as? String == "mask")
                #expect(outputs.first?["datatype"] as? String == "UINT8")
                #expect(outputs.first?["shape"] as? [Int] == [1, 96, 128])
                #expect((outputs.first?["data"] as? [Int])?.map { UInt8($0) } == predicted)
            }
            // Two images in one BYTES tensor: one mask each, in order.
            let gray = try Fixtures.bytes("images/gray.png")
            let grayMask = try expectedMask("gray.png")
            let pair = try Self.json(["inputs": [[
                "name": "images", "shape": [2], "datatype": "BYTES",
                "data": [Data(gray).base64EncodedString(), Data(png).base64EncodedString()],
            ]]])
            try await client.execute(uri: "/v2/models/unet_tiny/versions/1.0/infer", method: .post, body: pair) { response in
                #expect(response.status == .ok)
                let output = Self.outputs(response.body).first
                #expect(output?["shape"] as? [Int] == [2, 96, 128])
                let data = (output?["data"] as? [Int])?.map { UInt8($0) } ?? []
                #expect(Array(data.prefix(96 * 128)) == grayMask)
                #expect(Array(data.suffix(96 * 128)) == predicted)
            }
        }
    }

    @Test func numericInputGoesStraightToForward() async throws {
        let input = Self.floats(try Fixtures.bytes("models/unet_input.f32"))
        let expected = Self.floats(try Fixtures.bytes("models/unet_output.f32"))
        try await withServer { client, _ in
            let request = try Self.json(["inputs": [["name": "x", "shape": [1, 3, 96, 128], "datatype": "FP32", "data": input.map(Double.init)]]])
            try await client.execute(uri: "/v2/models/unet_tiny/infer", method: .post,
                                     headers: [HTTPField.Name("X-Request-Id")!: "req-7"], body: request) { response in
                #expect(response.status == .ok)
                // No id in the request: the X-Request-Id is echoed.
                #expect(Self.object(response.body)["id"] as? String == "req-7")
                let output = Self.outputs(response.body).first
                #expect(output?["name"] as? String == "output__0")
                #expect(output?["datatype"] as? String == "FP32")
                #expect(output?["shape"] as? [Int] == [1, 5, 96, 128])
                let values = (output?["data"] as? [Double])?.map { Float($0) } ?? []
                #expect(values.count == expected.count)
                let difference = zip(values, expected).map { abs($0 - $1) }.max() ?? .infinity
                #expect(difference < 1e-4)
            }
        }
    }

    @Test func numericDatatypesRoundTripFlatAndNested() async throws {
        try await withServer { client, _ in
            let cases: [(String, [Any])] = [
                ("BOOL", [true, false, true, true, false, false]),
                ("UINT8", [0, 1, 127, 128, 254, 255]),
                ("INT32", [Int(Int32.min), -1, 0, 1, 65536, Int(Int32.max)]),
                ("INT64", [Int(Int64.min), -1, 0, 1, 1 << 40, Int(Int64.max)]),
                ("FP16", [0.5, -2.0, 0.0, 1024.0, 0.25, -65504.0]),
                ("FP32", [0.1, -3.5, 0.0, 1e-20, 3.4028235e38, -7.25]),
                ("FP64", [0.1, -3.5, 0.0, 1e-300, 1.7976931348623157e308, 2.0 / 3.0]),
            ]
            for (datatype, values) in cases {
                let nested = [Array(values[0..<3]), Array(values[3..<6])]
                let request = try Self.json(["inputs": [
                    ["name": "a", "shape": [2, 3], "datatype": datatype, "data": nested],
                    ["name": "b", "shape": [6], "datatype": datatype, "data": Array(values.reversed())],
                ]])
                try await client.execute(uri: "/v2/models/echo/infer", method: .post, body: request) { response in
                    #expect(response.status == .ok, "\(datatype): \(String(buffer: response.body))")
                    let outputs = Self.outputs(response.body)
                    #expect(outputs.map { $0["name"] as? String } == ["output__0", "output__1"])
                    #expect(outputs.map { $0["datatype"] as? String } == [datatype, datatype])
                    #expect(outputs.map { $0["shape"] as? [Int] } == [[2, 3], [6]])
                    let sent = try JSONSerialization.data(withJSONObject: [values, Array(values.reversed())])
                    let got = try JSONSerialization.data(withJSONObject: outputs.map { $0["data"] ?? [] })
                    #expect(NSArray(array: try JSONSerialization.jsonObject(with: sent) as? [Any] ?? [])
                        == NSArray(array: try JSONSerialization.jsonObject(with: got) as? [Any] ?? []), "\(datatype)")
                }
            }
            // `outputs` selects and orders.
            let request = try Self.json([
                "inputs": [["name": "a", "shape": [1], "datatype": "INT32", "data": [1]],
                           ["name": "b", "shape": [1], "datatype": "INT32", "data": [2]]],
                "outputs": [["name": "output__1"], ["name": "output__0"]],
            ])
            try await client.execute(uri: "/v2/models/echo/infer", method: .post, body: request) { response in
                let outputs = Self.outputs(response.body)
                #expect(outputs.map { $0["name"] as? String } == ["output__1", "output__0"])
                #expect(outputs.map { $0["data"] as? [Int] } == [[2], [1]])
            }
        }
    }

    @Test func concurrentRequestsAreBatchedAndSplitBack() async throws {
        try await withServer { client, _ in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<8 {
                    group.addTask {
                        let values = (0..<6).map { Double(index * 10 + $0) }
                        let request = try Self.json(["inputs": [["name": "x", "shape": [2, 3], "datatype": "FP64", "data": values]]])
                        try await client.execute(uri: "/v2/models/echo/infer", method: .post, body: request) { response in
                            #expect(response.status == .ok)
                            let output = Self.outputs(response.body).first
                            #expect(output?["shape"] as? [Int] == [2, 3])
                            #expect(output?["data"] as? [Double] == values, "request \(index) got another's rows")
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    @Test func binaryTensorDataRequestAndResponse() async throws {
        let input = try Fixtures.bytes("models/unet_input.f32")
        let expected = Self.floats(try Fixtures.bytes("models/unet_output.f32"))
        try await withServer { client, _ in
            let header = try JSONSerialization.data(withJSONObject: [
                "inputs": [["name": "x", "shape": [1, 3, 96, 128], "datatype": "FP32", "parameters": ["binary_data_size": input.count]]],
                "outputs": [["name": "output__0", "parameters": ["binary_data": true]]],
            ])
            try await client.execute(
                uri: "/v2/models/unet_tiny/infer", method: .post,
                headers: [HTTPField.Name("Inference-Header-Content-Length")!: String(header.count), .contentType: "application/octet-stream"],
                body: ByteBuffer(bytes: [UInt8](header) + input)
            ) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "application/octet-stream")
                let length = Int(response.headers[HTTPField.Name("Inference-Header-Content-Length")!] ?? "") ?? -1
                let body = Array(buffer: response.body)
                #expect(length > 0 && length < body.count)
                let json = try JSONSerialization.jsonObject(with: Data(body.prefix(length))) as? [String: Any]
                let output = (json?["outputs"] as? [[String: Any]])?.first
                #expect(output?["data"] == nil)
                let size = (output?["parameters"] as? [String: Any])?["binary_data_size"] as? Int
                #expect(size == expected.count * 4)
                let values = Self.floats(Array(body.dropFirst(length)))
                #expect(values.count == expected.count)
                #expect((zip(values, expected).map { abs($0 - $1) }.max() ?? .infinity) < 1e-4)
            }

            // A raw PNG as a binary BYTES element (4-byte length, then the bytes); all outputs binary.
            let png = try Fixtures.bytes("images/rgb.png")
            let mask = try expectedMask("rgb.png")
            let element = withUnsafeBytes(of: UInt32(png.count).littleEndian) { Array($0) } + png
            let bytesHeader = try JSONSerialization.data(withJSONObject: [
                "inputs": [["name": "image", "shape": [1], "datatype": "BYTES", "parameters": ["binary_data_size": element.count]]],
                "parameters": ["binary_data_output": true],
            ])
            try await client.execute(
                uri: "/v2/models/unet_tiny/infer", method: .post,
                headers: [HTTPField.Name("Inference-Header-Content-Length")!: String(bytesHeader.count)],
                body: ByteBuffer(bytes: [UInt8](bytesHeader) + element)
            ) { response in
                #expect(response.status == .ok)
                let length = Int(response.headers[HTTPField.Name("Inference-Header-Content-Length")!] ?? "") ?? 0
                #expect(Array(Array(buffer: response.body).dropFirst(length)) == mask)
            }

            // Binary sizes that do not add up.
            let short = try JSONSerialization.data(withJSONObject: [
                "inputs": [["name": "x", "shape": [1, 3, 96, 128], "datatype": "FP32", "parameters": ["binary_data_size": input.count + 4]]],
            ])
            try await client.execute(
                uri: "/v2/models/unet_tiny/infer", method: .post,
                headers: [HTTPField.Name("Inference-Header-Content-Length")!: String(short.count)],
                body: ByteBuffer(bytes: [UInt8](short) + input)
            ) { response in
                #expect(response.status == .badRequest)
                #expect((Self.object(response.body)["error"] as? String)?.contains("binary_data_size") == true)
            }
        }
    }

    // MARK: Errors

    @Test func errorsCarryTheSpecStatusAndAnErrorField() async throws {
        try await withServer { client, _ in
            let good: [String: Any] = ["name": "a", "shape": [2], "datatype": "INT32", "data": [1, 2]]
            let cases: [(String, HTTPRequest.Method, ByteBuffer, HTTPResponse.Status, String)] = [
                ("/v2/models/nope/infer", .post, try Self.json(["inputs": [good]]), .notFound, "nope"),
                ("/v2/models/nope", .get, ByteBuffer(), .notFound, "nope"),
                ("/v2/models/nope/ready", .get, ByteBuffer(), .notFound, "nope"),
                ("/v2/models/echo/versions/9.9/infer", .post, try Self.json(["inputs": [good]]), .notFound, "9.9"),
                ("/v2/models/echo/infer", .post,
                 try Self.json(["inputs": [["name": "a", "shape": [2], "datatype": "FP8", "data": [1, 2]]]]), .badRequest, "FP8"),
                ("/v2/models/echo/infer", .post,
                 try Self.json(["inputs": [["name": "a", "shape": [3], "datatype": "INT32", "data": [1, 2]]]]), .badRequest, "shape"),
                ("/v2/models/echo/infer", .post,
                 try Self.json(["inputs": [["name": "a", "shape": [2], "datatype": "INT32", "data": [1, "two"]]]]), .badRequest, "data[1]"),
                ("/v2/models/echo/infer", .post,
                 try Self.json(["inputs": [["name": "a", "shape": [1], "datatype": "UINT8", "data": [300]]]]), .badRequest, "data[0]"),
                ("/v2/models/echo/infer", .post, try Self.json(["inputs": [good], "outputs": [["name": "nope"]]]), .badRequest, "nope"),
                ("/v2/models/echo/infer", .post, try Self.json(["outputs": []]), .badRequest, "inputs"),
                ("/v2/models/echo/infer", .post, ByteBuffer(string: "{\"inputs\": ["), .badRequest, "invalid"),
                ("/v2/models/echo/infer", .post, ByteBuffer(bytes: try Fixtures.bytes("images/rgb.png")), .unsupportedMediaType, "JSON"),
                ("/v2/models/echo/infer", .get, ByteBuffer(), .methodNotAllowed, "GET"),
            ]
            for (uri, method, body, status, fragment) in cases {
                try await client.execute(uri: uri, method: method, body: body) { response in
                    #expect(response.status == status, "\(method) \(uri) \(fragment): \(String(buffer: response.body))")
                    let object = Self.object(response.body)
                    #expect(object["code"] as? Int == Int(status.code))
                    let error = object["error"] as? String ?? ""
                    #expect(error == object["message"] as? String)
                    #expect(error.contains(fragment), "\(error) lacks \(fragment)")
                }
            }
            // /predictions errors keep TorchServe's shape, without `error`.
            try await client.execute(uri: "/predictions/nope", method: .post, body: ByteBuffer(string: "x")) { response in
                #expect(Self.object(response.body)["error"] == nil)
            }
        }
    }

    @Test func expiredDeadlineIs504AndCounted() async throws {
        let registry = PrometheusCollectorRegistry()
        try await withServer(registry: registry) { client, _ in
            let request = try Self.json([
                "inputs": [["name": "a", "shape": [1], "datatype": "INT32", "data": [1]]], "parameters": ["timeout": 1],
            ])
            try await client.execute(uri: "/v2/models/echo/infer", method: .post, body: request) { response in
                #expect(response.status == .gatewayTimeout)
            }
            let fine = try Self.json(["inputs": [["name": "a", "shape": [1], "datatype": "INT32", "data": [1]]]])
            try await client.execute(uri: "/v2/models/echo/infer", method: .post, body: fine) { #expect($0.status == .ok) }
        }
        let text = registry.emitToString()
        let model = "model_name=\"echo\",model_version=\"1.0\""
        #expect(text.contains("ts_inference_responses_total{\(model),code=\"200\"} 1"))
        #expect(text.contains("ts_inference_responses_total{\(model),code=\"504\"} 1"))
        #expect(text.contains("ts_requests_dropped_total{\(model),reason=\"deadline\"} 1"))
        #expect(text.contains("ts_stage_duration_seconds_count{\(model),stage=\"forward\"} 1"))
    }

    // MARK: Health and metadata

    @Test func healthReadinessAndMetadata() async throws {
        try await withServer { client, server in
            try await client.execute(uri: "/v2", method: .get) { response in
                let object = Self.object(response.body)
                #expect(object["name"] as? String == "serve")
                #expect(object["extensions"] as? [String] == ["binary_tensor_data"])
                #expect((object["version"] as? String)?.split(separator: ".").count == 3)
            }
            try await client.execute(uri: "/v2/health/live", method: .get) { response in
                #expect(response.status == .ok)
                #expect(Self.object(response.body)["live"] as? Bool == true)
            }
            try await client.execute(uri: "/v2/health/ready", method: .get) { response in
                #expect(response.status == .ok)
                #expect(Self.object(response.body)["ready"] as? Bool == true)
            }
            try await client.execute(uri: "/v2/models/unet_tiny/ready", method: .get) { response in
                #expect(response.status == .ok)
                #expect(Self.object(response.body)["name"] as? String == "unet_tiny")
                #expect(Self.object(response.body)["ready"] as? Bool == true)
            }
            try await client.execute(uri: "/v2/models/unet_tiny/versions/1.0", method: .get) { response in
                #expect(response.status == .ok)
                let object = Self.object(response.body)
                #expect(object["name"] as? String == "unet_tiny")
                #expect(object["versions"] as? [String] == ["1.0"])
                #expect(object["platform"] as? String == "pytorch_libtorch")
                let inputs = object["inputs"] as? [[String: Any]]
                #expect(inputs?.first?["datatype"] as? String == "FP32")
                #expect(inputs?.first?["shape"] as? [Int] == [-1, 3, 96, 128])
                let outputs = object["outputs"] as? [[String: Any]]
                #expect(outputs?.first?["shape"] as? [Int] == [-1, 5, -1, -1])
            }

            // A model without workers is not ready; the server stays ready (it was not declared at start).
            try await server.register(RegistrationOptions(url: "echo", modelName: "idle", initialWorkers: 0))
            try await client.execute(uri: "/v2/models/idle/ready", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(Self.object(response.body)["ready"] as? Bool == false)
            }
            try await client.execute(uri: "/v2/health/ready", method: .get) { #expect($0.status == .ok) }

            // Draining: readiness 503 with the reason, liveness still 200.
            server.beginDraining()
            try await client.execute(uri: "/v2/health/ready", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(Self.object(response.body)["ready"] as? Bool == false)
                #expect((Self.object(response.body)["reason"] as? String)?.contains("draining") == true)
            }
            try await client.execute(uri: "/v2/health/live", method: .get) { #expect($0.status == .ok) }
        }
    }

    @Test func healthNeedsNoTokenButInferenceDoes() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        let server = store.makeServer()
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "unet_tiny"))
        let authorization = try TokenAuthorization(keyFile: store.root.appendingPathComponent("key_file.json"))
        let app = HTTPServer.inferenceApplication(server: server, host: "127.0.0.1", port: 0, authorization: authorization, logger: quietLogger)
        try await app.test(.live) { client in
            for uri in ["/v2/health/live", "/v2/health/ready", "/v2/health/live/"] {
                try await client.execute(uri: uri, method: .get) { #expect($0.status == .ok, "\(uri)") }
            }
            for uri in ["/v2", "/v2/models/unet_tiny", "/v2/models/unet_tiny/ready"] {
                try await client.execute(uri: uri, method: .get) { #expect($0.status == .unauthorized, "\(uri)") }
                try await client.execute(uri: uri, method: .get, headers: [.authorization: "Bearer \(authorization.key(.inference))"]) {
                    #expect($0.status == .ok, "\(uri)")
                }
            }
            let request = try Self.json(["inputs": [["name": "x", "shape": [1], "datatype": "FP32", "data": [1]]]])
            try await client.execute(uri: "/v2/models/unet_tiny/infer", method: .post, body: request) { response in
                #expect(response.status == .unauthorized)
                #expect(Self.object(response.body)["error"] as? String != nil)
            }
        }
    }

    // MARK: Text

    @Test func textAsBytesGivesProbabilitiesAndLabels() async throws {
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
        let app = HTTPServer.inferenceApplication(server: server, host: "127.0.0.1", port: 0, logger: quietLogger)
        let texts = ["The team won the final", "The senator voted against the bill"]
        try await app.test(.live) { client in
            var expected: [[String: Double]] = []
            for text in texts {
                try await client.execute(uri: "/predictions/text", method: .post, body: ByteBuffer(string: text)) { response in
                    expected.append(Self.object(response.body) as? [String: Double] ?? [:])
                }
            }
            let request = try Self.json(["inputs": [["name": "text", "shape": [2], "datatype": "BYTES", "data": texts]]])
            try await client.execute(uri: "/v2/models/text/infer", method: .post, body: request) { response in
                #expect(response.status == .ok)
                let outputs = Self.outputs(response.body)
                #expect(outputs.map { $0["name"] as? String } == ["probabilities", "label"])
                let shape = outputs.first?["shape"] as? [Int] ?? []
                #expect(shape.count == 2 && shape[0] == 2)
                let classes = shape.last ?? 0
                let probabilities = outputs.first?["data"] as? [Double] ?? []
                let labels = outputs.last?["data"] as? [String] ?? []
                #expect(outputs.last?["datatype"] as? String == "BYTES")
                for row in 0..<2 {
                    let best = expected[row].max { $0.value < $1.value }
                    #expect(labels[row] == best?.key)
                    let rowValues = probabilities[(row * classes)..<((row + 1) * classes)]
                    // A batch of two may sum in another order than one text alone: equal to float32 rounding.
                    let batched = rowValues.sorted()
                    let alone = expected[row].values.sorted()
                    #expect(batched.count == alone.count)
                    for (got, want) in zip(batched, alone) {
                        #expect(abs(got - want) <= 1e-5 * max(abs(want), 1e-6), "\(got) vs \(want)")
                    }
                }
            }
        }
    }
}
