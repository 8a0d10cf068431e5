import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Prometheus
import ServerCore
import ServerHTTP
import ServerTestSupport
import Synchronization
import TestFixtures
import Testing

/// Images by URL (`{"url": …}`) end to end: a real server on a random loopback port with the
/// fixture U-Net and the sample classifier, fetching from a stand-in image host on 127.0.0.1 that
/// counts every request it sees, so each refusal is shown to fetch nothing it should not.
@Suite struct ImageURLTests {
    static let modelStore = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("model_store", isDirectory: true)

    /// The image host: real images under `/ok/`, and the ways a host can misbehave.
    final class ImageHost: Sendable {
        let images: [String: [UInt8]]
        private let seen = Mutex<[String: Int]>([:])
        /// Bytes a too-large image has: a PNG signature, then more than `max_request_size` of zeros.
        static let oversized = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + [UInt8](repeating: 0, count: 150_000)

        init() throws {
            images = [
                "rgb.png": try Fixtures.bytes("images/rgb.png"),
                "baseline.jpg": try Fixtures.bytes("images/baseline.jpg"),
                "dominant_car.png": try [UInt8](Data(contentsOf: ImageURLTests.modelStore.appendingPathComponent("samples/dominant_car.png"))),
                "scene_0.png": try [UInt8](Data(contentsOf: ImageURLTests.modelStore.appendingPathComponent("samples/scene_0.png"))),
                "target.png": try Fixtures.bytes("images/rgb.png"),
                "text.png": try Fixtures.bytes("images/not_an_image.txt"),
            ]
        }

        /// Requests that reached the host for `path`.
        func requests(_ path: String) -> Int {
            seen.withLock { $0[path] ?? 0 }
        }

        var totalRequests: Int {
            seen.withLock { $0.values.reduce(0, +) }
        }

        func record(_ path: String) {
            seen.withLock { $0[path, default: 0] += 1 }
        }

        func router() -> Router<BasicRequestContext> {
            let router = Router()
            router.add(middleware: Counting(host: self))
            let images = images
            let png = { @Sendable (bytes: [UInt8]) in
                Response(status: .ok, headers: [.contentType: "image/png"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
            }
            router.get("/ok/moved.png") { _, _ in Response(status: .found, headers: [.location: "/ok/target.png"]) }
            router.get("/ok/slow.png") { _, _ in
                // Far later than the deadline that cuts it, so that a loaded machine still tells them apart.
                try await Task.sleep(for: .seconds(6))
                return png(images["rgb.png"] ?? [])
            }
            router.get("/ok/big.png") { _, _ in png(Self.oversized) }
            router.get("/ok/big-stream.png") { _, _ in
                // Chunked, no Content-Length: the cap has to stop the reading.
                Response(status: .ok, headers: [.contentType: "image/png"], body: ResponseBody { writer in
                    for offset in stride(from: 0, to: Self.oversized.count, by: 10_000) {
                        try await writer.write(ByteBuffer(bytes: Self.oversized[offset..<min(offset + 10_000, Self.oversized.count)]))
                    }
                    try await writer.finish(nil)
                })
            }
            router.get("/ok/missing.png") { _, _ in Response(status: .notFound) }
            router.get("/ok/{file}") { _, context in
                guard let bytes = images[try context.parameters.require("file")] else { return Response(status: .notFound) }
                return png(bytes)
            }
            router.get("/private/{file}") { _, context in png(images[try context.parameters.require("file")] ?? []) }
            return router
        }

        struct Counting: RouterMiddleware {
            let host: ImageHost

            func handle(_ request: Request, context: BasicRequestContext,
                        next: (Request, BasicRequestContext) async throws -> Response) async throws -> Response {
                host.record(request.uri.path)
                return try await next(request, context)
            }
        }
    }

    /// A model server (the fixture U-Net, the sample classifier `scenes`, a text classifier) whose `allowed_urls` admits `/ok/` on 127.0.0.1 (also spelled 2130706433)
    /// and on a name that never resolves, with `max_request_size` 100000; `allowed_fetch_addresses`
    /// lists 127.0.0.1 unless `listLoopback` is false.
    func withServer(listLoopback: Bool = true,
                    _ body: @Sendable (any TestClientProtocol, ImageHost, Int, PrometheusCollectorRegistry) async throws -> Void) async throws {
        let host = try ImageHost()
        let origin = Application(router: host.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: quietLogger)
        try await origin.test(.live) { originClient in
            let port = try #require(originClient.port)
            let store = try TestModelStore()
            defer { store.remove() }
            try FileManager.default.copyItem(at: Self.modelStore.appendingPathComponent("scenes.mar"), to: store.root.appendingPathComponent("scenes.mar"))
            try store.addFolderArchive(
                name: "text", model: "models/text_bert_tiny.pt", config: KServeV1APITests.textConfig, handler: "text_classifier",
                extraFiles: ["vocab.txt": try String(contentsOf: Fixtures.url("tokenizer/vocab.txt"), encoding: .utf8),
                             "index_to_name.json": try String(contentsOf: Fixtures.url("text/index_to_name.json"), encoding: .utf8)])
            var configuration = ServerConfiguration(modelStore: store.root, workDirectory: store.work)
            configuration.allowedURLs = [#"https?://(127\.0\.0\.1|2130706433|no-such-host\.invalid):\d+/ok/.*"#]
            configuration.allowedFetchAddresses = listLoopback ? [try #require(AddressRange("127.0.0.1"))] : []
            configuration.maxRequestSize = 100_000
            let registry = PrometheusCollectorRegistry()
            let server = ModelServer(configuration: configuration, logger: quietLogger, metricsFactory: HTTPServer.metricsFactory(registry: registry))
            defer { server.shutdown() }
            try await server.register(RegistrationOptions(url: "unet_tiny"))
            for model in ["scenes.mar", "text"] { try await server.register(RegistrationOptions(url: model)) }
            let app = HTTPServer.inferenceApplication(server: server, host: "127.0.0.1", port: 0, logger: quietLogger)
            try await app.test(.live) { client in try await body(client, host, port, registry) }
        }
    }

    static func json(_ object: Any) throws -> ByteBuffer {
        ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: object))
    }

    /// A JSON body as a comparable value.
    static func parsed(_ buffer: ByteBuffer) -> NSObject? {
        (try? JSONSerialization.jsonObject(with: Data(buffer: buffer), options: [.fragmentsAllowed])) as? NSObject
    }

    static func urlBody(_ url: String) -> ByteBuffer {
        ByteBuffer(string: "{\"url\": \"\(url)\"}")
    }

    // MARK: Answers

    /// `{"url": …}` answers exactly as the image's bytes do, on every route: `/predictions`,
    /// a multipart `url` part, `/invocations`, a KServe v1 instance and a KServe v2 BYTES element.
    @Test func aURLAnswersAsTheImageItNamesOnEveryRoute() async throws {
        try await withServer { client, host, port, _ in
            for (model, image) in [("unet_tiny", "rgb.png"), ("unet_tiny", "baseline.jpg"), ("scenes", "dominant_car.png"), ("scenes", "scene_0.png")] {
                let bytes = try #require(host.images[image])
                let url = "http://127.0.0.1:\(port)/ok/\(image)"
                let raw = try await client.execute(uri: "/predictions/\(model)", method: .post, body: ByteBuffer(bytes: bytes)) { response in
                    #expect(response.status == .ok, "\(image)")
                    return response.body
                }
                if model == "unet_tiny" {
                    let mask = Data(base64Encoded: (Self.parsed(raw) as? [String: String])?["base64_prediction"] ?? "").map { [UInt8]($0) }
                    #expect(mask == (try expectedMask(image)), "\(image): the raw answer itself is right")
                }

                try await client.execute(uri: "/predictions/\(model)", method: .post, headers: [.contentType: "application/json"],
                                         body: Self.urlBody(url)) { response in
                    #expect(response.status == .ok, "\(image): \(String(buffer: response.body))")
                    #expect(response.body == raw, "\(image) by URL on /predictions")
                }
                var form = ByteBuffer(string: "--XyZ\r\nContent-Disposition: form-data; name=\"url\"\r\n\r\n\(url)\r\n--XyZ--\r\n")
                try await client.execute(uri: "/predictions/\(model)", method: .post,
                                         headers: [.contentType: "multipart/form-data; boundary=XyZ"], body: form) { response in
                    #expect(response.status == .ok, "\(image): \(String(buffer: response.body))")
                    #expect(response.body == raw, "\(image) by URL in a multipart url part")
                }
                form.clear()
                try await client.execute(uri: "/invocations", method: .post,
                                         headers: [HTTPField.Name("X-Amzn-SageMaker-Target-Model")!: "\(model).tar.gz", .contentType: "application/json"],
                                         body: Self.urlBody(url)) { response in
                    #expect(response.status == .ok, "\(image): \(String(buffer: response.body))")
                    #expect(response.body == raw, "\(image) by URL on /invocations")
                }
                try await client.execute(uri: "/v1/models/\(model):predict", method: .post,
                                         body: try Self.json(["instances": [["url": url]]])) { response in
                    #expect(response.status == .ok, "\(image): \(String(buffer: response.body))")
                    let predictions = (Self.parsed(response.body) as? [String: Any])?["predictions"] as? [NSObject]
                    #expect(predictions?.count == 1)
                    #expect(predictions?.first == Self.parsed(raw), "\(image) by URL as a KServe v1 instance")
                }
                let bytesOutputs = try await client.execute(
                    uri: "/v2/models/\(model)/infer", method: .post,
                    body: try Self.json(["inputs": [["name": "image", "shape": [1], "datatype": "BYTES", "data": [Data(bytes).base64EncodedString()]]]])
                ) { response in
                    #expect(response.status == .ok, "\(image): \(String(buffer: response.body))")
                    return (Self.parsed(response.body) as? [String: Any])?["outputs"] as? NSObject
                }
                try await client.execute(uri: "/v2/models/\(model)/infer", method: .post,
                                         body: try Self.json(["inputs": [["name": "image", "shape": [1], "datatype": "BYTES",
                                                                          "data": [String(buffer: Self.urlBody(url))]]]])) { response in
                    #expect(response.status == .ok, "\(image): \(String(buffer: response.body))")
                    #expect(bytesOutputs != nil)
                    #expect((Self.parsed(response.body) as? [String: Any])?["outputs"] as? NSObject == bytesOutputs,
                            "\(image) by URL as a KServe v2 BYTES element")
                }
                #expect(host.requests("/ok/\(image)") == 5, "one fetch per request by URL")
            }
        }
    }

    /// Only models whose handler takes images fetch: a text model reads `{"url": …}` as its own
    /// input, and a KServe v1 `url` instance for it is refused.
    @Test func onlyImageHandlersFetch() async throws {
        try await withServer { client, host, port, _ in
            let url = "http://127.0.0.1:\(port)/ok/rgb.png"
            try await client.execute(uri: "/predictions/text", method: .post, headers: [.contentType: "application/json"],
                                     body: Self.urlBody(url)) { response in
                // The text handler's own answer to JSON without text: nothing was fetched.
                #expect(response.status == .badRequest)
                let message = (Self.parsed(response.body) as? [String: Any])?["message"] as? String ?? ""
                #expect(message == "the JSON body has neither \"text\" nor \"inputs\"", "\(message)")
            }
            try await client.execute(uri: "/v1/models/text:predict", method: .post, body: try Self.json(["instances": [["url": url]]])) { response in
                #expect(response.status == .badRequest)
                let message = (Self.parsed(response.body) as? [String: Any])?["message"] as? String ?? ""
                #expect(message.contains("this model takes text"), "\(message)")
            }
            #expect(host.totalRequests == 0)
        }
    }

    // MARK: Refusals

    /// Every refusal and failure has its own status, type and message, and the image host sees
    /// no request it should not: nothing outside `allowed_urls`, no redirect target, no more than
    /// `max_request_size` read.
    @Test func refusalsAndFailuresAreSpecificAndFetchNothingTheyShouldNot() async throws {
        try await withServer { client, host, port, registry in
            let base = "http://127.0.0.1:\(port)/ok"
            let cases: [(url: String, status: HTTPResponse.Status, type: String, says: String, result: String)] = [
                ("http://127.0.0.1:\(port)/private/rgb.png", .forbidden, "ImageURLNotAllowedException", "allowed_urls", "url_not_allowed"),
                ("file:///etc/passwd", .forbidden, "ImageURLNotAllowedException", "allowed_urls", "url_not_allowed"),
                ("\(base)/moved.png", .badRequest, "ImageFetchException", "answered 302, a redirect to /ok/target.png; redirects are not followed", "redirect"),
                ("\(base)/text.png", .badRequest, "ImageFetchException", "is not a PNG or JPEG image", "not_image"),
                ("\(base)/big.png", .contentTooLarge, "RequestTooLargeException", "more than max_request_size (100000 bytes)", "too_large"),
                ("\(base)/big-stream.png", .contentTooLarge, "RequestTooLargeException", "larger than max_request_size (100000 bytes)", "too_large"),
                ("\(base)/missing.png", .badRequest, "ImageFetchException", "host 127.0.0.1 answered 404", "status"),
                ("http://127.0.0.1:1/ok/rgb.png", .badRequest, "ImageFetchException", "could not connect to host 127.0.0.1 on port 1", "unreachable"),
                ("https://127.0.0.1:\(port)/ok/rgb.png", .badRequest, "ImageFetchException", "TLS with host 127.0.0.1 failed", "bad_response"),
            ]
            for (url, status, type, says, _) in cases {
                try await client.execute(uri: "/predictions/unet_tiny", method: .post, body: Self.urlBody(url)) { response in
                    #expect(response.status == status, "\(url): \(String(buffer: response.body))")
                    let json = Self.parsed(response.body) as? [String: Any]
                    #expect(json?["type"] as? String == type, "\(url)")
                    let message = json?["message"] as? String ?? ""
                    #expect(message.contains(says), "\(url): \(message)")
                }
            }
            #expect(host.requests("/private/rgb.png") == 0, "outside allowed_urls: never requested")
            #expect(host.requests("/ok/moved.png") == 1)
            #expect(host.requests("/ok/target.png") == 0, "a redirect's target is never fetched")
            #expect(host.requests("/ok/big.png") == 1)
            #expect(host.requests("/ok/big-stream.png") == 1)

            // A name that does not resolve: 400 naming the host (or 504 where the resolver is slower than the deadline).
            try await client.execute(uri: "/predictions/unet_tiny", method: .post, headers: [HTTPField.Name("X-Request-Timeout-Ms")!: "3000"],
                                     body: Self.urlBody("http://no-such-host.invalid:\(port)/ok/rgb.png")) { response in
                let message = (Self.parsed(response.body) as? [String: Any])?["message"] as? String ?? ""
                #expect(response.status == .badRequest || response.status == .gatewayTimeout, "\(message)")
                #expect(response.status != .badRequest || message.contains("host no-such-host.invalid could not be resolved"), "\(message)")
            }

            // Past the request's deadline: 504 at the deadline, not when the host answers.
            let started = ContinuousClock.now
            try await client.execute(uri: "/predictions/unet_tiny", method: .post, headers: [HTTPField.Name("X-Request-Timeout-Ms")!: "300"],
                                     body: Self.urlBody("\(base)/slow.png")) { response in
                #expect(response.status == .gatewayTimeout, "\(String(buffer: response.body))")
                let json = Self.parsed(response.body) as? [String: Any]
                #expect(json?["type"] as? String == "DeadlineExceededException")
                #expect((json?["message"] as? String)?.contains("passed the request's deadline") == true)
            }
            #expect(ContinuousClock.now - started < .seconds(5))

            // Each failure is counted by its reason, and the time spent in the fetch stage.
            let metrics = registry.emitToString()
            let model = "model_name=\"unet_tiny\",model_version=\"1.0\""
            for (result, count) in [("url_not_allowed", 2), ("redirect", 1), ("not_image", 1), ("too_large", 2), ("status", 1), ("unreachable", 1),
                                    ("bad_response", 1), ("deadline", 1)] {
                #expect(metrics.contains("ts_image_fetches_total{\(model),result=\"\(result)\"} \(count)"), "\(result)")
            }
            #expect(metrics.contains("ts_stage_duration_seconds_count{\(model),stage=\"fetch\"} 11"), "\(metrics)")
            #expect(!metrics.contains("ts_image_fetches_total{\(model),result=\"ok\"}"))
        }
    }

    /// Without `allowed_fetch_addresses`, a loopback host is refused once resolved, however the
    /// URL spells it, and the host sees no request at all.
    @Test func aLoopbackAddressNotListedIsRefusedBeforeAnyConnection() async throws {
        try await withServer(listLoopback: false) { client, host, port, _ in
            for url in ["http://127.0.0.1:\(port)/ok/rgb.png", "http://2130706433:\(port)/ok/rgb.png"] {
                for route in ["/predictions/scenes", "/invocations?model_name=scenes"] {
                    try await client.execute(uri: route, method: .post, body: Self.urlBody(url)) { response in
                        #expect(response.status == .forbidden, "\(url) on \(route): \(String(buffer: response.body))")
                        let json = Self.parsed(response.body) as? [String: Any]
                        #expect(json?["type"] as? String == "ImageURLNotAllowedException")
                        let message = json?["message"] as? String ?? ""
                        #expect(message.contains("allowed_fetch_addresses"), "\(message)")
                        #expect(!message.contains("127.0.0.1") || url.contains("127.0.0.1"), "the address is not revealed: \(message)")
                    }
                }
            }
            try await client.execute(uri: "/v1/models/scenes:predict", method: .post,
                                     body: try Self.json(["instances": [["url": "http://127.0.0.1:\(port)/ok/rgb.png"]]])) { response in
                #expect(response.status == .forbidden, "\(String(buffer: response.body))")
            }
            #expect(host.totalRequests == 0, "a refused address is never connected to")
        }
    }
}
