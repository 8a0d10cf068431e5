import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import ServerCore
import ServerHTTP
import ServerTestSupport
import TestFixtures
import Testing

/// End to end through a real server on a random loopback port, real libtorch and real images.
@Suite struct InferenceAPITests {
    func withServer(_ body: @Sendable (any TestClientProtocol, ModelServer) async throws -> Void) async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        let server = store.makeServer()
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "unet_tiny"), atStartup: true)
        let app = HTTPServer.inferenceApplication(server: server, host: "127.0.0.1", port: 0, logger: quietLogger)
        try await app.test(.live) { client in try await body(client, server) }
    }

    @Test func maskOfEveryFixtureImageEqualsThePythonReference() async throws {
        let images = ["rgb.png", "rgba.png", "gray.png", "palette.png", "rgb16.png", "interlaced.png",
                      "baseline.jpg", "progressive.jpg", "gray.jpg", "cmyk.jpg", "gray_alpha.png", "palette_trns.png"]
        // gray16.png is left out on purpose: PIL clips 16-bit gray to 255 where we keep the high byte.
        try await withServer { client, _ in
            for image in images {
                let body = ByteBuffer(bytes: try Fixtures.bytes("images/\(image)"))
                // Trailing slash as in the reference deployment's `http POST .../predictions/fastunet/`.
                try await client.execute(uri: "/predictions/unet_tiny/", method: .post, body: body) { response in
                    #expect(response.status == .ok, "\(image)")
                    #expect(response.headers[.contentType] == "application/json")
                    let json = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: String]
                    #expect(json?.keys.sorted() == ["base64_prediction"])
                    let mask = Data(base64Encoded: json?["base64_prediction"] ?? "").map { [UInt8]($0) }
                    #expect(mask?.count == 96 * 128, "\(image)")
                    #expect(mask == (try expectedMask(image)), "\(image): mask differs from the Python reference")
                }
            }
        }
    }

    @Test func pngAndOverlayOutputs() async throws {
        try await withServer { client, _ in
            let body = ByteBuffer(bytes: try Fixtures.bytes("images/rgb.png"))
            let expected = try expectedMask("rgb.png")
            try await client.execute(uri: "/predictions/unet_tiny", method: .post, headers: [.accept: "image/png"], body: body) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "image/png")
                #expect(Array(buffer: response.body).starts(with: [0x89, 0x50, 0x4E, 0x47]))
            }
            // The query parameter beats Accept.
            try await client.execute(uri: "/predictions/unet_tiny?output=json", method: .post, headers: [.accept: "image/png"], body: body) { response in
                #expect(response.headers[.contentType] == "application/json")
            }
            try await client.execute(uri: "/predictions/unet_tiny?output=overlay", method: .post, body: body) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "image/png")
            }
            try await client.execute(uri: "/predictions/unet_tiny?size=original", method: .post, body: body) { response in
                let json = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: String]
                let mask = Data(base64Encoded: json?["base64_prediction"] ?? "").map { [UInt8]($0) } ?? []
                let info = try fixtureImage("rgb.png")
                #expect(mask.count == info.width * info.height)
                // Nearest-neighbour: the top-left pixel keeps the model-size mask's top-left class.
                #expect(mask.first == expected.first)
            }
            try await client.execute(uri: "/predictions/unet_tiny?output=jpeg", method: .post, body: body) { response in
                #expect(response.status == .badRequest)
            }
        }
    }

    @Test func errorsAreJSONWithTorchServeTypes() async throws {
        try await withServer { client, _ in
            let png = ByteBuffer(bytes: try Fixtures.bytes("images/rgb.png"))
            let cases: [(String, HTTPRequest.Method, ByteBuffer, HTTPResponse.Status, String)] = [
                ("/predictions/nope", .post, png, .notFound, "ModelNotFoundException"),
                ("/predictions/unet_tiny/9.9", .post, png, .notFound, "ModelVersionNotFoundException"),
                ("/predictions/unet_tiny", .post, ByteBuffer(), .badRequest, "InvalidInputException"),
                ("/predictions/unet_tiny", .post, ByteBuffer(bytes: try Fixtures.bytes("images/not_an_image.txt")), .unsupportedMediaType, "UnsupportedMediaTypeException"),
                ("/predictions/unet_tiny", .post, ByteBuffer(bytes: try Fixtures.bytes("images/truncated.png")), .badRequest, "InvalidInputException"),
                ("/predictions/unet_tiny", .get, ByteBuffer(), .methodNotAllowed, "MethodNotAllowedException"),
                ("/no/such/route", .get, ByteBuffer(), .notFound, "ResourceNotFoundException"),
            ]
            for (uri, method, body, status, type) in cases {
                try await client.execute(uri: uri, method: method, body: body) { response in
                    #expect(response.status == status, "\(method) \(uri)")
                    let json = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                    #expect(json?["code"] as? Int == Int(status.code), "\(uri)")
                    #expect(json?["type"] as? String == type, "\(uri)")
                    #expect((json?["message"] as? String)?.isEmpty == false, "\(uri)")
                    #expect(response.headers[HTTPField.Name("X-Request-Id")!] != nil)
                }
            }
            // The server keeps serving after bad input.
            try await client.execute(uri: "/predictions/unet_tiny", method: .post, body: png) { response in
                #expect(response.status == .ok)
            }
        }
    }

    @Test func oversizedBodyIs413() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        var configuration = ServerConfiguration(modelStore: store.root, workDirectory: store.work)
        configuration.maxRequestSize = 1000
        let server = ModelServer(configuration: configuration, logger: quietLogger)
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "unet_tiny"))
        let app = HTTPServer.inferenceApplication(server: server, host: "127.0.0.1", port: 0, logger: quietLogger)
        try await app.test(.live) { client in
            try await client.execute(uri: "/predictions/unet_tiny", method: .post, body: ByteBuffer(repeating: 0, count: 5000)) { response in
                #expect(response.status == .contentTooLarge)
                let json = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                #expect(json?["type"] as? String == "RequestTooLargeException")
            }
        }
    }

    /// Found by fuzzing (Tests/Fuzz/corpus/requests/multipart-nonascii-header-name): a byte over
    /// 0x7F in a part's header name trapped inside MultipartKit's parser and ended the process.
    @Test func multipartNonASCIIHeaderNameIsRefused() async throws {
        try await withServer { client, _ in
            for name in ["\u{C3}ontent-Disposition", "Content-Type\u{80}", "X-\u{FF}"] {
                var body = ByteBuffer(string: "--b1\r\nContent-Disposition: form-data; name=\"data\"\r\n")
                body.writeBytes(Array(name.unicodeScalars.map { UInt8($0.value) }))
                body.writeString(": x\r\n\r\nhello\r\n--b1--\r\n")
                try await client.execute(uri: "/predictions/unet_tiny", method: .post,
                                         headers: [.contentType: "multipart/form-data; boundary=b1"], body: body) { response in
                    #expect(response.status == .badRequest, "\(name)")
                    #expect(String(buffer: response.body).contains("not ASCII"))
                }
            }
            // The server is still there.
            try await client.execute(uri: "/ping", method: .get) { response in #expect(response.status == .ok) }
        }
    }

    /// An empty boundary trapped inside MultipartKit's parser and ended the server (one request
    /// with `boundary=""`); RFC 2046 boundaries are 1 to 70 characters.
    @Test func multipartBoundaryEmptyOrOver70CharactersIsRefused() async throws {
        try await withServer { client, _ in
            let jpeg = try Fixtures.bytes("images/baseline.jpg")
            for (boundary, expected) in [("\"\"", HTTPResponse.Status.badRequest), ("\"", .badRequest),
                                         (String(repeating: "b", count: 71), .badRequest), (String(repeating: "b", count: 70), .ok)] {
                let delimiter = boundary.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                var body = ByteBuffer(string: "--\(delimiter)\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\n")
                body.writeBytes(jpeg)
                body.writeString("\r\n--\(delimiter)--\r\n")
                try await client.execute(uri: "/predictions/unet_tiny", method: .post,
                                         headers: [.contentType: "multipart/form-data; boundary=\(boundary)"], body: body) { response in
                    #expect(response.status == expected, "boundary \(boundary)")
                    if expected == .badRequest {
                        #expect(String(buffer: response.body).contains("RFC 2046 allows 1 to 70"))
                    }
                }
            }
            try await client.execute(uri: "/ping", method: .get) { response in #expect(response.status == .ok) }
        }
    }

    /// 1 MiB of delimiter and header lines with no empty line: looking for header names again from
    /// each delimiter was quadratic in the body (hours for this one; found by fuzzing), one pass
    /// takes milliseconds. MultipartKit then refuses the body as malformed.
    @Test(.timeLimit(.minutes(5))) func multipartDelimiterLinesWithoutAnEmptyLineAreReadInOnePass() async throws {
        try await withServer { client, _ in
            var body = ByteBuffer()
            while body.readableBytes < 1 << 20 { body.writeString("--b1\r\nA: b\r\n") }
            try await client.execute(uri: "/predictions/unet_tiny", method: .post,
                                     headers: [.contentType: "multipart/form-data; boundary=b1"], body: body) { response in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains("malformed"))
            }
        }
    }

    @Test func multipartDataOrFilePart() async throws {
        try await withServer { client, _ in
            let png = try Fixtures.bytes("images/baseline.jpg")
            for field in ["data", "file"] {
                var body = ByteBuffer(string: "--XyZ\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nignored\r\n")
                body.writeString("--XyZ\r\nContent-Disposition: form-data; name=\"\(field)\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n")
                body.writeBytes(png)
                body.writeString("\r\n--XyZ--\r\n")
                try await client.execute(uri: "/predictions/unet_tiny", method: .post,
                                         headers: [.contentType: "multipart/form-data; boundary=XyZ"], body: body) { response in
                    #expect(response.status == .ok, "\(field)")
                    let json = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: String]
                    let mask = Data(base64Encoded: json?["base64_prediction"] ?? "").map { [UInt8]($0) }
                    #expect(mask == (try expectedMask("baseline.jpg")))
                }
            }
            let noPart = ByteBuffer(string: "--XyZ\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nabc\r\n--XyZ--\r\n")
            try await client.execute(uri: "/predictions/unet_tiny", method: .post,
                                     headers: [.contentType: "multipart/form-data; boundary=XyZ"], body: noPart) { response in
                #expect(response.status == .badRequest)
            }
        }
    }

    @Test func pingAndRequestID() async throws {
        try await withServer { client, _ in
            try await client.execute(uri: "/ping", method: .get, headers: [HTTPField.Name("X-Request-Id")!: "abc-123"]) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == "{\"status\":\"Healthy\"}")
                #expect(response.headers[HTTPField.Name("X-Request-Id")!] == "abc-123")
            }
        }
    }
}

