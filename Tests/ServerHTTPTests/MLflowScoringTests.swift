import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Prometheus
import ServerCore
@testable import ServerHTTP
import ServerTestSupport
import TestFixtures
import Testing

/// MLflow's scoring protocol on `/invocations` end to end: a real server on a loopback port, the
/// sample text classifier (`fortunes.mar`) and image classifier (`scenes.mar`) from model_store/,
/// every JSON form and CSV, MLflow's error forms, and the bodies that keep going to the handler.
@Suite struct MLflowScoringTests {
    static let modelStore = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("model_store", isDirectory: true)
    static let texts = ["The compiler crashed and the kernel panicked", "Add two cups of flour and stir",
                        "The senator voted against the bill, \"again\",\nsaid the paper"]
    static let queueSize = 8

    /// `fortunes` and `scenes` registered; `/invocations` runs `fortunes` unless `model_name` says otherwise.
    func withServer(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
                    _ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("mlflow-\(UUID().uuidString)", isDirectory: true)
        defer { try? FileManager.default.removeItem(at: work) }
        var configuration = ServerConfiguration(modelStore: Self.modelStore, workDirectory: work)
        configuration.jobQueueSize = Self.queueSize
        let server = ModelServer(configuration: configuration, logger: quietLogger, metricsFactory: HTTPServer.metricsFactory(registry: registry))
        defer { server.shutdown() }
        for archive in ["fortunes.mar", "scenes.mar"] { try await server.register(RegistrationOptions(url: archive)) }
        let app = HTTPServer.inferenceApplication(server: server, host: "127.0.0.1", port: 0, invocationsModel: "fortunes",
                                                  logger: quietLogger)
        try await app.test(.live) { client in try await body(client) }
    }

    static func json(_ object: Any) throws -> ByteBuffer {
        ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: object))
    }

    static func object(_ buffer: ByteBuffer) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(buffer: buffer))) as? [String: Any] ?? [:]
    }

    /// The `/predictions` answer of each input, as label → probability.
    static func reference(_ client: any TestClientProtocol, model: String, inputs: [ByteBuffer]) async throws -> [[String: Double]] {
        var answers: [[String: Double]] = []
        for input in inputs {
            try await client.execute(uri: "/predictions/\(model)", method: .post, body: input) { response in
                #expect(response.status == .ok)
                answers.append(object(response.body) as? [String: Double] ?? [:])
            }
        }
        return answers
    }

    /// Posts `body` to `/invocations` and checks that the predictions are `expected`, in order
    /// (probabilities to float32 rounding: rows run batched).
    static func expectPredictions(_ client: any TestClientProtocol, _ uri: String = "/invocations", contentType: String = "application/json",
                                  body: ByteBuffer, _ expected: [[String: Double]], _ form: String) async throws {
        try await client.execute(uri: uri, method: .post, headers: [.contentType: contentType], body: body) { response in
            #expect(response.status == .ok, "\(form): \(String(buffer: response.body).prefix(300))")
            #expect(response.headers[.contentType] == "application/json", "\(form)")
            let predictions = object(response.body)["predictions"] as? [[String: Double]] ?? []
            #expect(predictions.count == expected.count, "\(form)")
            for (row, (got, want)) in zip(predictions, expected).enumerated() {
                #expect(got.keys.sorted() == want.keys.sorted(), "\(form) row \(row)")
                for (label, value) in want {
                    #expect(abs((got[label] ?? -1) - value) <= 1e-5 * max(abs(value), 1e-6), "\(form) row \(row) \(label)")
                }
            }
        }
    }

    /// Posts `body` and checks MLflow's error form: the status, and `error_code` (nil: the plain-text 415).
    static func expectError(_ client: any TestClientProtocol, _ uri: String = "/invocations", contentType: String? = "application/json",
                            body: ByteBuffer, status: HTTPResponse.Status, code: String?, mentions: [String] = [],
                            _ form: String) async throws {
        var headers: HTTPFields = [:]
        if let contentType { headers[.contentType] = contentType }
        try await client.execute(uri: uri, method: .post, headers: headers, body: body) { response in
            let text = String(buffer: response.body)
            #expect(response.status == status, "\(form): \(text.prefix(300))")
            if let code {
                let object = object(response.body)
                #expect(response.headers[.contentType] == "application/json", "\(form)")
                #expect(object["error_code"] as? String == code, "\(form): \(text.prefix(300))")
                #expect(Set(object.keys) == ["error_code", "message"], "\(form)")
                for word in mentions { #expect((object["message"] as? String)?.contains(word) == true, "\(form): \(word) in \(text)") }
            } else {
                #expect(response.headers[.contentType]?.hasPrefix("text/plain") == true, "\(form)")
                for word in mentions { #expect(text.contains(word), "\(form): \(word) in \(text)") }
            }
        }
    }

    // MARK: Every form

    @Test func textClassifierAnswersEveryJSONFormAsPredictionsDoes() async throws {
        let texts = Self.texts
        try await withServer { client in
            let expected = try await Self.reference(client, model: "fortunes", inputs: texts.map { ByteBuffer(string: $0) })
            let forms: [(String, Any)] = [
                ("dataframe_split", ["dataframe_split": ["columns": ["text"], "data": texts.map { [$0] }]]),
                ("dataframe_split with index and an extra column",
                 ["dataframe_split": ["index": [7, 8, 9], "columns": ["id", "text"], "data": texts.enumerated().map { [$0.offset, $0.element] }]]),
                ("dataframe_split with bare values", ["dataframe_split": ["columns": ["text"], "data": texts]]),
                ("dataframe_records", ["dataframe_records": texts.map { ["text": $0] }]),
                ("instances of values", ["instances": texts]),
                ("instances of records", ["instances": texts.map { ["text": $0] }]),
                ("instances of columns", ["instances": ["text": texts]]),
                ("inputs of values", ["inputs": texts]),
                ("inputs of records", ["inputs": texts.map { ["text": $0] }]),
                ("inputs of columns", ["inputs": ["text": texts]]),
                ("inputs with params", ["inputs": texts, "params": ["top_k": 1]]),
            ]
            for (form, body) in forms {
                try await Self.expectPredictions(client, body: try Self.json(body), expected, form)
            }
            // One text as a column value applies to its one row.
            try await Self.expectPredictions(client, body: try Self.json(["inputs": ["text": texts[0]]]), [expected[0]], "inputs of one value")
            try await Self.expectPredictions(client, contentType: "application/json; charset=UTF-8",
                                             body: try Self.json(["instances": texts]), expected, "charset=UTF-8")
            // No content type: an object with one of MLflow's fields is MLflow's.
            try await client.execute(uri: "/invocations", method: .post, body: try Self.json(["inputs": texts])) { response in
                #expect((Self.object(response.body)["predictions"] as? [Any])?.count == texts.count)
            }
            try await Self.expectPredictions(client, body: try Self.json(["instances": [String]()]), [], "no rows")
        }
    }

    @Test func textClassifierReadsCSVAsPandasDoes() async throws {
        let texts = Self.texts
        try await withServer { client in
            let expected = try await Self.reference(client, model: "fortunes", inputs: texts.map { ByteBuffer(string: $0) })
            // pandas' to_csv(): the index as an unnamed first column, quotes doubled, the line break kept in quotes.
            let quoted = texts.map { "\"" + $0.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
            let csv = ",text\n" + quoted.enumerated().map { "\($0.offset),\($0.element)" }.joined(separator: "\n") + "\n"
            try await Self.expectPredictions(client, contentType: "text/csv", body: ByteBuffer(string: csv), expected, "to_csv()")
            // CRLF, a byte order mark, blank lines, unquoted fields, a short record, a repeated column name (pandas' text.1).
            let plain = "\u{FEFF}text,text,id\r\n\(texts[0]),ignored,1\r\n\r\n\(texts[1])\r\n\(quoted[2]),x,3\r\n"
            try await Self.expectPredictions(client, contentType: "text/csv; charset=utf-8", body: ByteBuffer(string: plain), expected, "CRLF")
            try await Self.expectPredictions(client, contentType: "text/csv", body: ByteBuffer(string: "text\n"), [], "header only")
            // Text after a closing quote joins the field, as pandas reads it.
            let joined = try await Self.reference(client, model: "fortunes", inputs: [ByteBuffer(string: "The compiler crashed")])
            try await Self.expectPredictions(client, contentType: "text/csv", body: ByteBuffer(string: "text\n\"The compiler\" crashed\n"),
                                             joined, "text after a quote")
        }
    }

    @Test func imageModelTakesBase64DataB64AndBareValues() async throws {
        let images = try ["dominant_person.png", "dominant_car.png"].map {
            try [UInt8](Data(contentsOf: Self.modelStore.appendingPathComponent("samples/\($0)")))
        }
        let encoded = images.map { Data($0).base64EncodedString() }
        try await withServer { client in
            let expected = try await Self.reference(client, model: "scenes", inputs: images.map { ByteBuffer(bytes: $0) })
            #expect(expected.map { $0.max { $0.value < $1.value }?.key } == ["person", "car"])
            let uri = "/invocations?model_name=scenes"
            let forms: [(String, Any)] = [
                ("dataframe_split of data", ["dataframe_split": ["columns": ["data"], "data": encoded.map { [$0] }]]),
                ("dataframe_records of b64", ["dataframe_records": encoded.map { ["b64": $0] }]),
                ("instances of values", ["instances": encoded]),
                ("inputs of records, data and b64", ["inputs": [["data": encoded[0]], ["b64": encoded[1]]]]),
                ("inputs of columns", ["inputs": ["data": encoded]]),
            ]
            for (form, body) in forms {
                try await Self.expectPredictions(client, uri, body: try Self.json(body), expected, form)
            }
            let csv = "data\n" + encoded.joined(separator: "\n") + "\n"
            try await Self.expectPredictions(client, uri, contentType: "text/csv", body: ByteBuffer(string: csv), expected, "CSV")
            // The target-model header chooses the model as for any /invocations body.
            try await client.execute(uri: "/invocations", method: .post,
                                     headers: [.contentType: "application/json", HTTPField.Name("X-Amzn-SageMaker-Target-Model")!: "scenes.tar.gz"],
                                     body: try Self.json(["instances": [encoded[0]]])) { response in
                #expect(response.status == .ok)
                #expect(((Self.object(response.body)["predictions"] as? [[String: Double]])?.first?["person"] ?? 0) > 0.9)
            }
        }
    }

    @Test func aNonJSONAnswerIsB64() async throws {
        let png = try Fixtures.bytes("images/rgb.png")
        let store = try TestModelStore()
        defer { store.remove() }
        let server = store.makeServer()
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "unet_tiny"))
        let app = HTTPServer.inferenceApplication(server: server, host: "127.0.0.1", port: 0, logger: quietLogger)
        try await app.test(.live) { client in
            let answer = try await client.execute(uri: "/predictions/unet_tiny?output=png", method: .post, body: ByteBuffer(bytes: png)) {
                Array(buffer: $0.body)
            }
            let body = try Self.json(["dataframe_split": ["columns": ["data"], "data": [[Data(png).base64EncodedString()]]]])
            try await client.execute(uri: "/invocations?output=png", method: .post, headers: [.contentType: "application/json"], body: body) { response in
                #expect(response.status == .ok)
                let b64 = ((Self.object(response.body)["predictions"] as? [[String: String]])?.first?["b64"]).flatMap { Data(base64Encoded: $0) }
                #expect(b64.map { [UInt8]($0) } == answer)
            }
        }
    }

    // MARK: Errors

    @Test func malformedBodiesGetMLflowsErrors() async throws {
        let text = Self.texts[0]
        try await withServer { client in
            let badRequest: [(String, String)] = [
                ("not JSON", "{\"inputs\": ["),
                ("empty", ""),
                ("a list", "[\"\(text)\"]"),
                ("two input fields", "{\"inputs\": [\"a\"], \"instances\": [\"b\"]}"),
                ("split without data", "{\"dataframe_split\": {\"columns\": [\"text\"]}}"),
                ("split with another key", "{\"dataframe_split\": {\"columns\": [\"text\"], \"data\": [[\"a\"]], \"rows\": 1}}"),
                ("split as a list", "{\"dataframe_split\": [[\"a\"]]}"),
                ("split row of another width", "{\"dataframe_split\": {\"columns\": [\"text\"], \"data\": [[\"a\", \"b\"]]}}"),
                ("split index of another length", "{\"dataframe_split\": {\"columns\": [\"text\"], \"data\": [[\"a\"]], \"index\": [1, 2]}}"),
                ("split column named twice", "{\"dataframe_split\": {\"columns\": [\"text\", \"text\"], \"data\": [[\"a\", \"b\"]]}}"),
                ("records as an object", "{\"dataframe_records\": {\"text\": \"a\"}}"),
                ("a record that is not an object", "{\"dataframe_records\": [{\"text\": \"a\"}, \"b\"]}"),
                ("records mixed with values", "{\"instances\": [{\"text\": \"a\"}, \"b\"]}"),
                ("more rows than the queue holds", "{\"instances\": \(Array(repeating: "\"a\"", count: Self.queueSize + 1))}"),
            ]
            for (form, body) in badRequest {
                try await Self.expectError(client, body: ByteBuffer(string: body), status: .badRequest, code: "BAD_REQUEST", form)
            }
            let invalid: [(String, String, [String])] = [
                ("no text column", "{\"dataframe_records\": [{\"txt\": \"a\"}]}", ["text", "'txt'"]),
                ("split without columns", "{\"dataframe_split\": {\"data\": [[\"a\"]]}}", ["text"]),
                ("no records", "{\"dataframe_records\": []}", ["text"]),
                ("a number", "{\"dataframe_records\": [{\"text\": 3}]}", ["row 0", "text"]),
                ("null", "{\"inputs\": {\"text\": [\"a\", null]}}", ["row 1", "text"]),
                ("a row without text", "{\"instances\": [{\"text\": \"a\"}, {\"id\": 2}]}", ["row 1"]),
                ("nested lists", "{\"instances\": [[\"a\"]]}", ["row 0"]),
                ("a bare string", "{\"inputs\": \"\(text)\"}", ["inputs"]),
                ("inputs columns of different lengths", "{\"inputs\": {\"text\": [\"a\", \"b\"], \"id\": [1]}}", ["length"]),
                ("instances columns of different lengths", "{\"instances\": {\"text\": [\"a\", \"b\"], \"id\": [1]}}", ["length"]),
            ]
            for (form, body, mentions) in invalid {
                try await Self.expectError(client, body: ByteBuffer(string: body), status: .badRequest, code: "INVALID_PARAMETER_VALUE",
                                           mentions: mentions, form)
            }
            let csv: [(String, ByteBuffer)] = [
                ("an unterminated quote", ByteBuffer(string: "text\n\"abc\n")),
                ("more fields than the header", ByteBuffer(string: "text,id\na,1\nb,2,3\n")),
                ("nothing", ByteBuffer()),
                ("not UTF-8", ByteBuffer(bytes: Array("text\n".utf8) + [0xFF, 0xFE])),
            ]
            for (form, body) in csv {
                try await Self.expectError(client, contentType: "text/csv", body: body, status: .badRequest, code: "BAD_REQUEST", "CSV: \(form)")
            }
            try await Self.expectError(client, contentType: "text/csv", body: ByteBuffer(string: "id\n1\n"), status: .badRequest,
                                       code: "INVALID_PARAMETER_VALUE", mentions: ["text", "'id'"], "CSV without text")
            // A content type MLflow does not take: its plain-text 415.
            let inputs = try Self.json(["inputs": [text]])
            for (contentType, mentions) in [("text/plain", ["text/csv", "application/json", "text/plain"]),
                                            ("application/x-www-form-urlencoded", ["application/json"]),
                                            ("application/json; charset=latin-1", ["UTF-8"]), ("text/csv; header=present", ["header"])] {
                try await Self.expectError(client, contentType: contentType, body: inputs, status: .unsupportedMediaType, code: nil,
                                           mentions: mentions, contentType)
            }
            try await Self.expectError(client, "/invocations?model_name=nope", body: inputs, status: .notFound, code: "RESOURCE_DOES_NOT_EXIST",
                                       mentions: ["nope"], "unknown model")
            // What the handler refuses is a 400 naming the row.
            try await Self.expectError(client, body: try Self.json(["instances": [text, " "]]), status: .badRequest, code: "BAD_REQUEST",
                                       mentions: ["row 1"], "an empty text")
        }
    }

    @Test func imageModelErrorsNameItsColumns() async throws {
        try await withServer { client in
            let uri = "/invocations?model_name=scenes"
            try await Self.expectError(client, uri, body: try Self.json(["dataframe_records": [["text": "a"]]]), status: .badRequest,
                                       code: "INVALID_PARAMETER_VALUE", mentions: ["data", "b64", "url", "'text'"], "no image column")
            try await Self.expectError(client, uri, body: try Self.json(["dataframe_records": [["data": "aGk=", "b64": "aGk="]]]),
                                       status: .badRequest, code: "INVALID_PARAMETER_VALUE", mentions: ["row 0", "data and b64"], "two image columns")
            try await Self.expectError(client, uri, body: try Self.json(["instances": ["%%%"]]), status: .badRequest, code: "BAD_REQUEST",
                                       mentions: ["row 0", "base64"], "not base64")
            // A url row is the body {"url": …} on /predictions: the same refusal (no allowed_urls), naming the row.
            let url = "http://127.0.0.1:9/street.png"
            let refusal = try await client.execute(uri: "/predictions/scenes", method: .post, headers: [.contentType: "application/json"],
                                                   body: try Self.json(["url": url])) { response in
                (response.status, Self.object(response.body)["message"] as? String ?? "")
            }
            #expect(refusal.0 != .ok)
            try await client.execute(uri: uri, method: .post, headers: [.contentType: "application/json"],
                                     body: try Self.json(["dataframe_records": [["url": url]]])) { response in
                #expect(response.status == (refusal.0 == .unsupportedMediaType ? .badRequest : refusal.0))
                #expect(Self.object(response.body)["message"] as? String == "row 0: \(refusal.1)")
            }
            // Base64 of something that is no image: the handler's 415 on /predictions, a 400 here.
            try await Self.expectError(client, uri, body: try Self.json(["instances": [Data("not an image".utf8).base64EncodedString()]]),
                                       status: .badRequest, code: "BAD_REQUEST", mentions: ["row 0"], "not an image")
        }
    }

    @Test func aRequestCountsOnceAndEachRowHasTheDeadline() async throws {
        let registry = PrometheusCollectorRegistry()
        try await withServer(registry: registry) { client in
            try await client.execute(uri: "/invocations", method: .post, headers: [.contentType: "application/json"],
                                     body: try Self.json(["instances": Self.texts])) { response in
                #expect(response.status == .ok)
            }
            try await Self.expectError(client, body: try Self.json(["dataframe_records": [["txt": "a"]]]), status: .badRequest,
                                       code: "INVALID_PARAMETER_VALUE", "no text column")
            // fortunes waits up to 10 ms for a batch: 1 ms passes while the row is queued.
            try await client.execute(uri: "/invocations", method: .post,
                                     headers: [.contentType: "application/json", HTTPField.Name("X-Request-Timeout-Ms")!: "1"],
                                     body: try Self.json(["instances": [Self.texts[0]]])) { response in
                #expect(response.status == .gatewayTimeout)
                #expect(Self.object(response.body)["error_code"] as? String == "DEADLINE_EXCEEDED")
                #expect((Self.object(response.body)["message"] as? String)?.hasPrefix("row 0: ") == true)
            }
            try await client.execute(uri: "/invocations", method: .post,
                                     headers: [.contentType: "application/json", HTTPField.Name("X-Request-Timeout-Ms")!: "soon"],
                                     body: try Self.json(["instances": Self.texts])) { response in
                #expect(response.status == .badRequest)
                #expect(Self.object(response.body)["error_code"] as? String == "BAD_REQUEST")
                #expect((Self.object(response.body)["message"] as? String)?.contains("X-Request-Timeout-Ms") == true)
            }
        }
        let text = registry.emitToString()
        let model = "model_name=\"fortunes\",model_version=\"1.0\""
        for code in [200, 400, 504] {
            #expect(text.contains("ts_inference_responses_total{\(model),code=\"\(code)\"} 1"), "\(code)")
        }
    }

    /// Bodies made to hurt the parsers are refused with a 400 (or read), never crash or hang the server.
    @Test func hostileBodiesAreRefused() async throws {
        try await withServer { client in
            let wide = (0..<2000).map { "c\($0)" }
            let hostile: [(String, String, ByteBuffer)] = [
                ("2000 CSV columns", "text/csv", ByteBuffer(string: wide.joined(separator: ",") + "\n")),
                ("2000 fields in a CSV record", "text/csv", ByteBuffer(string: "text\n" + String(repeating: ",", count: 2000) + "\n")),
                ("10000 CSV rows", "text/csv", ByteBuffer(string: "text\n" + String(repeating: "a\n", count: 10_000))),
                ("2000 JSON columns", "application/json", try Self.json(["inputs": Dictionary(uniqueKeysWithValues: wide.map { ($0, "a") })])),
                ("records with 2000 keys", "application/json",
                 try Self.json(["dataframe_records": wide.map { [$0: "a"] }])),
                ("lists nested 100000 deep", "application/json",
                 ByteBuffer(string: "{\"inputs\": " + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "}")),
                ("10000 rows", "application/json", try Self.json(["instances": Array(repeating: "a", count: 10_000)])),
            ]
            for (form, contentType, body) in hostile {
                try await client.execute(uri: "/invocations", method: .post, headers: [.contentType: contentType], body: body) { response in
                    #expect(response.status == .badRequest, "\(form): \(String(buffer: response.body).prefix(200))")
                    #expect(Self.object(response.body)["error_code"] is String, "\(form)")
                }
            }
            // Random bytes as CSV and as JSON: read or refused, nothing else.
            var state: UInt64 = 0x9E37_79B9_7F4A_7C15
            let alphabet = Array("text,\"\r\n ab\u{00e9}{}[]:".utf8) + [0xFF, 0xC3]
            for round in 0..<200 {
                var bytes: [UInt8] = []
                for _ in 0..<(round % 60) {
                    state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                    bytes.append(alphabet[Int(state >> 33) % alphabet.count])
                }
                let contentType = round.isMultiple(of: 2) ? "text/csv" : "application/json"
                try await client.execute(uri: "/invocations", method: .post, headers: [.contentType: contentType],
                                         body: ByteBuffer(bytes: bytes)) { response in
                    #expect([.ok, .badRequest].contains(response.status), "\(contentType) \(bytes): \(String(buffer: response.body).prefix(200))")
                }
            }
            try await client.execute(uri: "/ping", method: .get) { #expect($0.status == .ok) }
        }
    }

    // MARK: What stays as it was

    @Test func otherBodiesAndPredictionsKeepTheirForms() async throws {
        let text = Self.texts[0]
        let image = try [UInt8](Data(contentsOf: Self.modelStore.appendingPathComponent("samples/dominant_person.png")))
        try await withServer { client in
            let expected = try await Self.reference(client, model: "fortunes", inputs: [ByteBuffer(string: text)])[0]
            // /predictions keeps TorchServe's `inputs`: a bare array.
            try await client.execute(uri: "/predictions/fortunes", method: .post, headers: [.contentType: "application/json"],
                                     body: try Self.json(["inputs": [text]])) { response in
                #expect(response.status == .ok)
                let answer = (try? JSONSerialization.jsonObject(with: Data(buffer: response.body))) as? [[String: Double]]
                #expect(answer?.first?.keys.sorted() == expected.keys.sorted())
            }
            // /invocations: plain text and {"text": …} go to the handler, a bare object back.
            for (contentType, body) in [("text/plain", ByteBuffer(string: text)), ("application/json", try Self.json(["text": text]))] {
                try await client.execute(uri: "/invocations", method: .post, headers: [.contentType: contentType], body: body) { response in
                    #expect(response.status == .ok, "\(contentType)")
                    #expect((Self.object(response.body) as? [String: Double])?.keys.sorted() == expected.keys.sorted(), "\(contentType)")
                }
            }
            // A raw image, with or without a content type (a wrong one too), answers as /predictions does.
            let scenes = try await Self.reference(client, model: "scenes", inputs: [ByteBuffer(bytes: image)])[0]
            let headerSets: [HTTPFields] = [[:], [.contentType: "image/png"], [.contentType: "application/octet-stream"],
                                            [.contentType: "application/json"]]
            for headers in headerSets {
                try await client.execute(uri: "/invocations?model_name=scenes", method: .post, headers: headers, body: ByteBuffer(bytes: image)) { response in
                    #expect(response.status == .ok)
                    #expect(Self.object(response.body) as? [String: Double] == scenes)
                }
            }
            // {"url": …} is the image handler's: its answer or error is TorchServe's, never MLflow's.
            try await client.execute(uri: "/invocations?model_name=scenes", method: .post, headers: [.contentType: "application/json"],
                                     body: try Self.json(["url": "http://127.0.0.1:9/x.png"])) { response in
                #expect(response.status != .ok)
                #expect(Self.object(response.body)["type"] is String)
                #expect(Self.object(response.body)["error_code"] == nil)
            }
            // /models/{m}/invoke is /predictions/{m}: `inputs` answers a bare array there.
            try await client.execute(uri: "/models/fortunes/invoke", method: .post, headers: [.contentType: "application/json"],
                                     body: try Self.json(["inputs": [text]])) { response in
                #expect(response.status == .ok)
                #expect(((try? JSONSerialization.jsonObject(with: Data(buffer: response.body))) as? [Any])?.count == 1)
            }
        }
    }
}

/// Found by FuzzRequestBodies: a Content-Type parameter that is only `=` trapped (index out of
/// range) and killed the server; it is now an empty-named parameter, refused like any other.
@Suite struct MLflowContentTypeRegressionTests {
    @Test func aParameterWithoutANameIsReadNotTrapped() {
        let parsed = MLflowRequest.mediaTypeAndParameters("application/json;= ;;;;charset=utf-8")
        #expect(parsed.mediaType == "application/json")
        #expect(parsed.parameters.map(\.name) == ["", "charset"])
        #expect(throws: MLflowError.self) { try MLflowRequest.checkParameters("application/json;=") }
    }
}
