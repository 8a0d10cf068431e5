import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Prometheus
import ServerCore
import ServerHTTP
import ServerTestSupport
import TestFixtures
import Testing

/// KServe v1 (`/v1/models/{m}:predict` on `{"instances": [...]}`) end to end: a real server on a
/// loopback port, real libtorch, the fixture U-Net, the echo model and the tiny BERT classifier.
@Suite struct KServeV1APITests {
    static let textConfig = "batchSize: 4\nhandler:\n  kind: text_classifier\n  maxLength: 32\n  labels: index_to_name.json\n"

    func withServer(registry: PrometheusCollectorRegistry? = nil,
                    _ body: @Sendable (any TestClientProtocol, ModelServer) async throws -> Void) async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        try store.addFolderArchive(name: "echo", model: "models/echo.pt", config: KServeAPITests.echoConfig)
        try store.addFolderArchive(
            name: "text", model: "models/text_bert_tiny.pt", config: Self.textConfig, handler: "text_classifier",
            extraFiles: ["vocab.txt": try String(contentsOf: Fixtures.url("tokenizer/vocab.txt"), encoding: .utf8),
                         "index_to_name.json": try String(contentsOf: Fixtures.url("text/index_to_name.json"), encoding: .utf8)])
        let server = registry.map { store.makeServer(registry: $0) } ?? store.makeServer()
        defer { server.shutdown() }
        for model in ["unet_tiny", "echo", "text"] { try await server.register(RegistrationOptions(url: model)) }
        let app = HTTPServer.inferenceApplication(server: server, host: "127.0.0.1", port: 0, logger: quietLogger)
        try await app.test(.live) { client in try await body(client, server) }
    }

    static func json(_ object: Any) throws -> ByteBuffer {
        ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: object))
    }

    static func object(_ buffer: ByteBuffer) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(buffer: buffer))) as? [String: Any] ?? [:]
    }

    static func predictions(_ response: TestResponse) -> [Any] {
        object(response.body)["predictions"] as? [Any] ?? []
    }

    static func mask(_ prediction: Any?) -> [UInt8] {
        ((prediction as? [String: Any])?["base64_prediction"] as? String).flatMap { Data(base64Encoded: $0) }.map { [UInt8]($0) } ?? []
    }

    // MARK: Models and readiness

    @Test func listsModelsAndAnswersReadiness() async throws {
        try await withServer { client, server in
            try await client.execute(uri: "/v1/models", method: .get) { response in
                #expect(response.status == .ok)
                #expect(Set(Self.object(response.body)["models"] as? [String] ?? []) == ["unet_tiny", "echo", "text"])
            }
            try await client.execute(uri: "/v1/models/unet_tiny", method: .get) { response in
                #expect(response.status == .ok)
                #expect(Self.object(response.body)["name"] as? String == "unet_tiny")
                #expect(Self.object(response.body)["ready"] as? Bool == true)
            }
            try await client.execute(uri: "/v1/models/nope", method: .get) { response in
                #expect(response.status == .notFound)
                #expect((Self.object(response.body)["error"] as? String)?.contains("nope") == true)
            }
            // No worker: 503 with ready false, as KServe's client reads it.
            try await server.register(RegistrationOptions(url: "echo", modelName: "idle", initialWorkers: 0))
            try await client.execute(uri: "/v1/models/idle", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(Self.object(response.body)["ready"] as? Bool == false)
                #expect((Self.object(response.body)["error"] as? String)?.contains("idle") == true)
            }
        }
    }

    @Test func theDescriptionNamesTheParameterBeforeTheColon() async throws {
        try await withServer { client, _ in
            try await client.execute(uri: "/", method: .options) { response in
                let paths = Self.object(response.body)["paths"] as? [String: [String: Any]] ?? [:]
                for (path, method) in [("/v1/models/{model_name}:predict", "post"), ("/v1/models/{model_name}:explain", "post"),
                                       ("/v1/models/{model_name}", "get")] {
                    let parameters = (paths[path]?[method] as? [String: Any])?["parameters"] as? [[String: Any]]
                    #expect(parameters?.map { $0["name"] as? String } == ["model_name"], "\(path)")
                }
            }
        }
    }

    // MARK: Predictions

    @Test func imageInstancesInEveryFormGiveThePredictionsMasks() async throws {
        let rgb = try Fixtures.bytes("images/rgb.png")
        let gray = try Fixtures.bytes("images/gray.png")
        let (rgbMask, grayMask) = (try expectedMask("rgb.png"), try expectedMask("gray.png"))
        try await withServer { client, _ in
            let predicted = try await client.execute(uri: "/predictions/unet_tiny", method: .post, body: ByteBuffer(bytes: rgb)) {
                Self.mask(Self.object($0.body))
            }
            #expect(predicted == rgbMask)
            let request = try Self.json(["instances": [
                ["data": Data(rgb).base64EncodedString()], ["b64": Data(gray).base64EncodedString()], Data(rgb).base64EncodedString(),
            ]])
            // The colon inside the last path component routes to :predict, and the model name is the part before it.
            try await client.execute(uri: "/v1/models/unet_tiny:predict", method: .post,
                                     headers: [.contentType: "application/json"], body: request) { response in
                #expect(response.status == .ok, "\(String(buffer: response.body))")
                #expect(response.headers[.contentType] == "application/json")
                let predictions = Self.predictions(response)
                #expect(predictions.count == 3)
                #expect(predictions.map(Self.mask) == [predicted, grayMask, predicted])
                #expect((predictions.first as? [String: Any])?.keys.sorted() == ["base64_prediction"])
            }
        }
    }

    @Test func aNonJSONAnswerComesBackAsB64() async throws {
        let rgb = try Fixtures.bytes("images/rgb.png")
        try await withServer { client, _ in
            let png = try await client.execute(uri: "/predictions/unet_tiny?output=png", method: .post, body: ByteBuffer(bytes: rgb)) { response in
                #expect(response.headers[.contentType] == "image/png")
                return Array(buffer: response.body)
            }
            let request = try Self.json(["instances": [["data": Data(rgb).base64EncodedString()]]])
            try await client.execute(uri: "/v1/models/unet_tiny:predict?output=png", method: .post, body: request) { response in
                #expect(response.status == .ok)
                let b64 = (Self.predictions(response).first as? [String: Any])?["b64"] as? String
                #expect(b64.flatMap { Data(base64Encoded: $0) }.map { [UInt8]($0) } == png)
            }
        }
    }

    @Test func textInstancesAndTheInputsAliasGiveThePredictionsAnswers() async throws {
        let texts = ["The team won the final", "The senator voted against the bill", "Stocks fell as markets closed"]
        try await withServer { client, _ in
            var expected: [[String: Double]] = []
            for text in texts {
                try await client.execute(uri: "/predictions/text", method: .post, body: ByteBuffer(string: text)) { response in
                    expected.append(Self.object(response.body) as? [String: Double] ?? [:])
                }
            }
            // A string, TorchServe's {"data": text}, and TensorFlow Serving's {"b64": …}, under KServe's `inputs` alias.
            let request = try Self.json(["inputs": [texts[0], ["data": texts[1]], ["b64": Data(texts[2].utf8).base64EncodedString()]]])
            try await client.execute(uri: "/v1/models/text:predict", method: .post, body: request) { response in
                #expect(response.status == .ok, "\(String(buffer: response.body))")
                let predictions = Self.predictions(response).map { $0 as? [String: Double] ?? [:] }
                #expect(predictions.count == 3)
                for (got, want) in zip(predictions, expected) {
                    #expect(got.keys.sorted() == want.keys.sorted())
                    // Batched rows may sum in another order than one text alone: equal to float32 rounding.
                    for (label, value) in want {
                        #expect(abs((got[label] ?? -1) - value) <= 1e-5 * max(abs(value), 1e-6), "\(label)")
                    }
                }
            }
        }
    }

    @Test func listsOfNumbersGoToForwardWithABatchDimension() async throws {
        let input = KServeAPITests.floats(try Fixtures.bytes("models/unet_input.f32"))
        let expected = KServeAPITests.floats(try Fixtures.bytes("models/unet_output.f32"))
        // [3][96][128]: one row of the U-Net's [-1, 3, 96, 128] input.
        let instance = (0..<3).map { channel in
            (0..<96).map { y in Array(input[(channel * 96 + y) * 128..<(channel * 96 + y + 1) * 128]).map(Double.init) }
        }
        try await withServer { client, _ in
            try await client.execute(uri: "/v1/models/unet_tiny:predict", method: .post, body: try Self.json(["instances": [instance]])) { response in
                #expect(response.status == .ok, "\(String(buffer: response.body).prefix(300))")
                // [5][96][128]: the output's row, its batch dimension gone.
                let prediction = Self.predictions(response).first as? [[[Double]]] ?? []
                #expect(prediction.count == 5 && prediction.first?.count == 96 && prediction.first?.first?.count == 128)
                let values = prediction.flatMap { $0.flatMap { $0 } }.map { Float($0) }
                #expect(values.count == expected.count)
                #expect((zip(values, expected).map { abs($0 - $1) }.max() ?? .infinity) < 1e-4)
            }
        }
    }

    @Test func concurrentInstancesBatchAndKeepTheirOrder() async throws {
        try await withServer { client, _ in
            // Rank 2 is not one less than the echo model's declared rank 4: sent as they are, [2, 3]
            // each, batched along the first dimension by the queue and split back. The model returns
            // (x, x): two outputs, so each prediction is an object by their names.
            let instances: [[[Double]]] = (0..<8).map { index in
                let row = (0..<6).map { Double(index * 10 + $0) }
                return [Array(row[0..<3]), Array(row[3..<6])]
            }
            try await client.execute(uri: "/v1/models/echo:predict", method: .post, body: try Self.json(["instances": instances])) { response in
                #expect(response.status == .ok, "\(String(buffer: response.body).prefix(300))")
                let predictions = Self.predictions(response).map { $0 as? [String: [[Double]]] ?? [:] }
                #expect(predictions == instances.map { ["output__0": $0, "output__1": $0] })
            }
        }
    }

    // MARK: Errors

    @Test func errorsHaveKServesErrorFieldAndTheRightStatus() async throws {
        let png = Data(try Fixtures.bytes("images/rgb.png")).base64EncodedString()
        try await withServer { client, _ in
            let cases: [(String, HTTPRequest.Method, ByteBuffer, HTTPResponse.Status, String)] = [
                ("/v1/models/nope:predict", .post, try Self.json(["instances": [png]]), .notFound, "nope"),
                ("/v1/models/unet_tiny:predict", .post, ByteBuffer(string: "{\"instances\": ["), .badRequest, "invalid"),
                ("/v1/models/unet_tiny:predict", .post, ByteBuffer(bytes: try Fixtures.bytes("images/rgb.png")), .badRequest, "JSON object"),
                ("/v1/models/unet_tiny:predict", .post, ByteBuffer(), .badRequest, "empty"),
                ("/v1/models/unet_tiny:predict", .post, try Self.json(["signature_name": "x"]), .badRequest, "no instances"),
                ("/v1/models/unet_tiny:predict", .post, try Self.json(["instances": [png], "inputs": [png]]), .badRequest, "both"),
                ("/v1/models/unet_tiny:predict", .post, try Self.json(["instances": []]), .badRequest, "empty"),
                ("/v1/models/unet_tiny:predict", .post, try Self.json(["instances": "x"]), .badRequest, "instances"),
                ("/v1/models/unet_tiny:predict", .post, try Self.json(["instances": [png, ["image": png]]]), .badRequest, "instances[1]"),
                ("/v1/models/unet_tiny:predict", .post, try Self.json(["instances": [png, 7]]), .badRequest, "instances[1]"),
                ("/v1/models/unet_tiny:predict", .post, try Self.json(["instances": [["data": png, "b64": png]]]), .badRequest, "instances[0]"),
                ("/v1/models/unet_tiny:predict", .post, try Self.json(["instances": [["data": 5]]]), .badRequest, "instances[0].data"),
                ("/v1/models/echo:predict", .post, try Self.json(["instances": [[[1, 2], [3]]]]), .badRequest, "rectangular"),
                ("/v1/models/echo:predict", .post, try Self.json(["instances": [[1, "two"]]]), .badRequest, "instances[0][1]"),
                ("/v1/models/echo:predict", .post, try Self.json(["instances": [[]]]), .badRequest, "instances[0]"),
                // Not base64 for an image model, and base64 of something that is no image.
                ("/v1/models/unet_tiny:predict", .post, try Self.json(["instances": [png, ["data": "not base64!"]]]), .badRequest, "instances[1]"),
                ("/v1/models/unet_tiny:predict", .post,
                 try Self.json(["instances": [png, ["b64": Data("plain text".utf8).base64EncodedString()]]]), .unsupportedMediaType, "instances[1]: "),
                // A list of the wrong size for forward: the model's refusal names the instance.
                ("/v1/models/unet_tiny:predict", .post, try Self.json(["instances": [[[[0.5, 0.5]]]]]), .badRequest, "instances[0]: "),
                ("/v1/models/unet_tiny:explain", .post, try Self.json(["instances": [png]]), .notImplemented, "unet_tiny"),
                ("/v1/models/nope:explain", .post, try Self.json(["instances": [png]]), .notFound, "nope"),
                ("/v1/models/unet_tiny:predict", .get, ByteBuffer(), .methodNotAllowed, "GET"),
                ("/v1/models", .post, ByteBuffer(), .methodNotAllowed, "POST"),
            ]
            for (uri, method, body, status, fragment) in cases {
                try await client.execute(uri: uri, method: method, body: body) { response in
                    #expect(response.status == status, "\(method) \(uri) \(fragment): \(String(buffer: response.body))")
                    let object = Self.object(response.body)
                    let error = object["error"] as? String ?? ""
                    #expect(error == object["message"] as? String)
                    #expect(error.contains(fragment), "\(uri): \(error) lacks \(fragment)")
                }
            }
        }
    }

    @Test func theDeadlineHeaderCountsAsOnTheOtherRoutes() async throws {
        let registry = PrometheusCollectorRegistry()
        try await withServer(registry: registry) { client, _ in
            // The echo model waits up to 200 ms for a batch: 1 ms passes while the instance is queued.
            let request = try Self.json(["instances": [[[1.0, 2.0]]]])
            try await client.execute(uri: "/v1/models/echo:predict", method: .post,
                                     headers: [HTTPField.Name("X-Request-Timeout-Ms")!: "1"], body: request) { response in
                #expect(response.status == .gatewayTimeout)
                #expect((Self.object(response.body)["error"] as? String)?.hasPrefix("instances[0]: ") == true)
            }
            try await client.execute(uri: "/v1/models/echo:predict", method: .post,
                                     headers: [HTTPField.Name("X-Request-Timeout-Ms")!: "soon"], body: request) { response in
                #expect(response.status == .badRequest)
            }
            try await client.execute(uri: "/v1/models/echo:predict", method: .post, body: request) { response in
                #expect(response.status == .ok)
                #expect(Self.predictions(response).first as? [String: [[Double]]] == ["output__0": [[1.0, 2.0]], "output__1": [[1.0, 2.0]]])
            }
        }
        let text = registry.emitToString()
        let model = "model_name=\"echo\",model_version=\"1.0\""
        #expect(text.contains("ts_inference_responses_total{\(model),code=\"200\"} 1"))
        #expect(text.contains("ts_inference_responses_total{\(model),code=\"504\"} 1"))
    }

    @Test func theRoutesNeedTheInferenceToken() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        let server = store.makeServer()
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "unet_tiny"))
        let authorization = try TokenAuthorization(keyFile: store.root.appendingPathComponent("key_file.json"))
        let app = HTTPServer.inferenceApplication(server: server, host: "127.0.0.1", port: 0, authorization: authorization, logger: quietLogger)
        let request = try Self.json(["instances": [Data(try Fixtures.bytes("images/rgb.png")).base64EncodedString()]])
        try await app.test(.live) { client in
            for (uri, method) in [("/v1/models", HTTPRequest.Method.get), ("/v1/models/unet_tiny", .get), ("/v1/models/unet_tiny:predict", .post)] {
                try await client.execute(uri: uri, method: method, body: request) { #expect($0.status == .unauthorized, "\(uri)") }
                try await client.execute(uri: uri, method: method, headers: [.authorization: "Bearer \(authorization.key(.inference))"],
                                         body: request) { #expect($0.status == .ok, "\(uri)") }
            }
        }
    }
}
