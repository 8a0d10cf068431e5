import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ServerCore
import ServerHTTP
import ServerTestSupport
import TestFixtures
import Testing

/// Routing, error rendering, request ids and authorization of the inference and management
/// applications, built as the server builds them and driven in process through Hummingbird's
/// router test mode: no sockets, and no per-connection channel handlers (the network edge).
@Suite struct RouterTests {
    /// The JSON every port answers an error with.
    struct ErrorBody: Decodable, Equatable {
        var code: Int
        var type: String
        var message: String
    }

    static let requestID = HTTPField.Name("X-Request-Id")!

    /// A server over a fresh store holding `unet_tiny` (registered when `register` is set).
    func withServer(enableModelAPI: Bool = true, register: Bool = false,
                    _ body: (ModelServer, TestModelStore) async throws -> Void) async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        var configuration = ServerConfiguration(modelStore: store.root, workDirectory: store.work)
        configuration.enableModelAPI = enableModelAPI
        let server = ModelServer(configuration: configuration, logger: quietLogger)
        defer { server.shutdown() }
        if register { try await server.register(RegistrationOptions(url: "unet_tiny")) }
        try await body(server, store)
    }

    func inference(_ server: ModelServer, authorization: TokenAuthorization? = nil) -> some ApplicationProtocol {
        HTTPServer.inferenceApplication(server: server, host: "127.0.0.1", port: 0, authorization: authorization, logger: quietLogger)
    }

    func management(_ server: ModelServer, authorization: TokenAuthorization? = nil) -> some ApplicationProtocol {
        HTTPServer.managementApplication(server: server, host: "127.0.0.1", port: 0, authorization: authorization, logger: quietLogger)
    }

    /// The error a response carries; fails the test when the body is not the error JSON.
    func error(_ response: TestResponse) throws -> ErrorBody {
        #expect(response.headers[.contentType] == "application/json")
        return try JSONDecoder().decode(ErrorBody.self, from: Data(buffer: response.body))
    }

    // MARK: Routing

    @Test func anUnknownRouteIs404ResourceNotFoundOnEveryPort() async throws {
        try await withServer { server, _ in
            try await inference(server).test(.router) { client in
                try await client.execute(uri: "/nothing/here", method: .get) { response in
                    #expect(response.status == .notFound)
                    try #expect(error(response) == ErrorBody(
                        code: 404, type: "ResourceNotFoundException", message: "Requested resource is not found: GET /nothing/here"))
                }
                // Open Inference Protocol clients read `error` as well.
                try await client.execute(uri: "/v2/nothing", method: .post) { response in
                    #expect(response.status == .notFound)
                    let json = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                    #expect(json?["type"] as? String == "ResourceNotFoundException")
                    #expect(json?["error"] as? String == "Requested resource is not found: POST /v2/nothing")
                }
            }
            try await management(server).test(.router) { client in
                try await client.execute(uri: "/predictions/unet_tiny", method: .post) { response in
                    #expect(response.status == .notFound)
                    try #expect(error(response).type == "ResourceNotFoundException")
                }
            }
        }
    }

    @Test func aMethodThePathDoesNotServeIs405WithAllow() async throws {
        try await withServer { server, _ in
            try await inference(server).test(.router) { client in
                try await client.execute(uri: "/predictions/unet_tiny", method: .get) { response in
                    #expect(response.status == .methodNotAllowed)
                    #expect(response.headers[.allow] == "POST, PUT")
                    try #expect(error(response) == ErrorBody(
                        code: 405, type: "MethodNotAllowedException", message: "Method GET is not allowed on /predictions/unet_tiny"))
                }
                try await client.execute(uri: "/ping", method: .delete) { response in
                    #expect(response.status == .methodNotAllowed)
                    #expect(response.headers[.allow] == "GET")
                }
            }
            try await management(server).test(.router) { client in
                try await client.execute(uri: "/models", method: .patch) { response in
                    #expect(response.status == .methodNotAllowed)
                    #expect(response.headers[.allow] == "GET, POST")
                }
                try await client.execute(uri: "/models/unet_tiny", method: .post) { response in
                    #expect(response.status == .methodNotAllowed)
                    #expect(response.headers[.allow] == "DELETE, GET, PUT")
                    try #expect(error(response).message == "Method POST is not allowed on /models/unet_tiny")
                }
            }
        }
    }

    @Test func pingIs200WhenReadyAnd503WithTheReasonWhenDraining() async throws {
        try await withServer(register: true) { server, _ in
            try await inference(server).test(.router) { client in
                try await client.execute(uri: "/ping", method: .get) { response in
                    #expect(response.status == .ok)
                    #expect(String(buffer: response.body) == "{\"status\":\"Healthy\"}")
                }
                server.beginDraining()
                try await client.execute(uri: "/ping", method: .get) { response in
                    #expect(response.status == .serviceUnavailable)
                    #expect(String(buffer: response.body) == "{\"status\":\"Unhealthy\",\"reason\":\"server is draining\"}")
                }
            }
        }
    }

    @Test func predictionsAndTheirErrorsThroughTheRouter() async throws {
        try await withServer(register: true) { server, _ in
            let png = ByteBuffer(bytes: try Fixtures.bytes("images/rgb.png"))
            try await inference(server).test(.router) { client in
                try await client.execute(uri: "/predictions/unet_tiny", method: .post, headers: [.contentType: "image/png"], body: png) { response in
                    #expect(response.status == .ok)
                    let json = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: String]
                    #expect(json?["base64_prediction"].flatMap { Data(base64Encoded: $0) }.map { [UInt8]($0) } == (try expectedMask("rgb.png")))
                }
                try await client.execute(uri: "/predictions/missing", method: .post, body: png) { response in
                    #expect(response.status == .notFound)
                    try #expect(error(response) == ErrorBody(code: 404, type: "ModelNotFoundException", message: "Model not found: missing"))
                }
                try await client.execute(uri: "/predictions/unet_tiny/9.9", method: .post, body: png) { response in
                    #expect(response.status == .notFound)
                    try #expect(error(response) == ErrorBody(
                        code: 404, type: "ModelVersionNotFoundException", message: "Model version not found: unet_tiny version 9.9"))
                }
                try await client.execute(uri: "/predictions/unet_tiny", method: .post, body: ByteBuffer(string: "not an image")) { response in
                    #expect(response.status.code / 100 == 4, "\(response.status)")
                    try #expect(error(response).code == Int(response.status.code))
                }
            }
        }
    }

    // MARK: Request ids

    @Test func xRequestIdIsEchoedOrMadeUpOnEveryAnswer() async throws {
        try await withServer { server, _ in
            try await inference(server).test(.router) { client in
                // A client's id comes back unchanged, on successes and on errors alike.
                for uri in ["/ping", "/nothing"] {
                    try await client.execute(uri: uri, method: .get, headers: [Self.requestID: "trace-42.a_b"]) { response in
                        #expect(response.headers[Self.requestID] == "trace-42.a_b", "\(uri)")
                    }
                }
                // None, too long, or with spaces: a fresh UUID instead.
                var made: Set<String> = []
                for header in [nil, String(repeating: "x", count: 129), "two words"] {
                    var headers: HTTPFields = [:]
                    if let header { headers[Self.requestID] = header }
                    let id = try await client.execute(uri: "/ping", method: .get, headers: headers) { response in
                        try #require(response.headers[Self.requestID])
                    }
                    #expect(UUID(uuidString: id) != nil && id == id.lowercased(), "\(id)")
                    made.insert(id)
                }
                #expect(made.count == 3)
            }
        }
    }

    // MARK: Authorization

    @Test func managementRoutesNeedTheManagementKey() async throws {
        try await withServer { server, store in
            let authorization = try TokenAuthorization(keyFile: store.root.appendingPathComponent("key_file.json"))
            try await management(server, authorization: authorization).test(.router) { client in
                let refused = [nil, "Bearer wrong", "Bearer \(authorization.key(.inference))", "Bearer \(authorization.key(.api))",
                               "Basic \(authorization.key(.management))", "Bearer"]
                for header in refused {
                    var headers: HTTPFields = [:]
                    if let header { headers[.authorization] = header }
                    try await client.execute(uri: "/models", method: .get, headers: headers) { response in
                        #expect(response.status == .unauthorized, "\(header ?? "no header")")
                        #expect(response.headers[.wwwAuthenticate] == "Bearer")
                        try #expect(error(response) == ErrorBody(
                            code: 401, type: "InvalidKeyException",
                            message: "Token authorization failed: send 'Authorization: Bearer <management key from key_file.json>'"))
                    }
                }
                // Refused before routing: an unknown path without a key is 401, not 404.
                try await client.execute(uri: "/nothing", method: .get) { #expect($0.status == .unauthorized) }
                let key: HTTPFields = [.authorization: "Bearer \(authorization.key(.management))"]
                try await client.execute(uri: "/models", method: .get, headers: key) { response in
                    #expect(response.status == .ok)
                    #expect(String(buffer: response.body) == "{\"models\":[]}")
                }
                // The description of the API needs no key.
                try await client.execute(uri: "/api-description", method: .get) { #expect($0.status == .ok) }
            }
            try await inference(server, authorization: authorization).test(.router) { client in
                try await client.execute(uri: "/ping", method: .get) { #expect($0.status == .ok) }
                try await client.execute(uri: "/predictions/unet_tiny", method: .post,
                                         headers: [.authorization: "Bearer \(authorization.key(.management))"]) { response in
                    #expect(response.status == .unauthorized)
                    try #expect(error(response).message.contains("<inference key from key_file.json>"))
                }
                // The right key passes; the model is not registered, so the core answers.
                try await client.execute(uri: "/predictions/unet_tiny", method: .post,
                                         headers: [.authorization: "Bearer \(authorization.key(.inference))"]) { response in
                    #expect(response.status == .notFound)
                    try #expect(error(response).type == "ModelNotFoundException")
                }
            }
        }
    }

    // MARK: Registration

    @Test func registrationParametersAreCheckedAndNamedIn400() async throws {
        try await withServer { server, _ in
            try await management(server).test(.router) { client in
                let cases: [(query: String, parameter: String, got: String)] = [
                    ("url=unet_tiny&batch_size=0", "batch_size", "0"),
                    ("url=unet_tiny&batch_size=1025", "batch_size", "1025"),
                    ("url=unet_tiny&batch_size=two", "batch_size", "two"),
                    ("url=unet_tiny&max_batch_delay=-1", "max_batch_delay", "-1"),
                    ("url=unet_tiny&initial_workers=100000", "initial_workers", "100000"),
                    ("url=unet_tiny&response_timeout=0", "response_timeout", "0"),
                    ("url=unet_tiny&startup_timeout=0", "startup_timeout", "0"),
                ]
                for (query, parameter, got) in cases {
                    try await client.execute(uri: "/models?\(query)", method: .post) { response in
                        #expect(response.status == .badRequest, "\(query)")
                        let body = try error(response)
                        #expect(body.type == "BadRequestException")
                        #expect(body.message.hasPrefix("parameter \(parameter) must be an integer in "), "\(body.message)")
                        #expect(body.message.hasSuffix("got '\(got)'"), "\(body.message)")
                    }
                }
                try await client.execute(uri: "/models?url=unet_tiny&synchronous=maybe", method: .post) { response in
                    try #expect(error(response) == ErrorBody(
                        code: 400, type: "BadRequestException", message: "parameter synchronous must be true or false, got 'maybe'"))
                }
                try await client.execute(uri: "/models?batch_size=2", method: .post) { response in
                    try #expect(error(response) == ErrorBody(code: 400, type: "BadRequestException", message: "parameter url is required"))
                }
                // The same parameters in a JSON body are checked the same way.
                let json: HTTPFields = [.contentType: "application/json"]
                try await client.execute(uri: "/models", method: .post, headers: json,
                                         body: ByteBuffer(string: "{\"url\": \"unet_tiny\", \"batch_size\": 0}")) { response in
                    #expect(response.status == .badRequest)
                    try #expect(error(response).message.hasPrefix("parameter batch_size must be"))
                }
                try await client.execute(uri: "/models", method: .post, headers: json, body: ByteBuffer(string: "[\"unet_tiny\"]")) { response in
                    #expect(response.status == .badRequest)
                    try #expect(error(response).message.hasPrefix("the body must be a JSON object"))
                }
                try await client.execute(uri: "/models?url=missing.mar", method: .post) { response in
                    #expect(response.status == .notFound)
                    try #expect(error(response).type == "ModelNotFoundException")
                }
                #expect(server.listModels().isEmpty)

                try await client.execute(uri: "/models?url=unet_tiny", method: .post) { #expect($0.status == .ok) }
                try await client.execute(uri: "/models?url=unet_tiny", method: .post) { response in
                    #expect(response.status == .conflict)
                    let body = try error(response)
                    #expect(body.type == "ConflictStatusException")
                    #expect(body.message.contains("unet_tiny"), "\(body.message)")
                }
            }
        }
    }

    @Test func theModelAPIDisabledIs403ForEveryChangeAndListingStillWorks() async throws {
        try await withServer(enableModelAPI: false, register: true) { server, _ in
            let disabled = ErrorBody(code: 403, type: "ModelApiDisabledException", message: ModelServerError.modelAPIDisabled.description)
            try await management(server).test(.router) { client in
                for (uri, method) in [("/models?url=unet_tiny&model_name=other", HTTPRequest.Method.post),
                                      ("/models/unet_tiny", .delete), ("/models/unet_tiny/1.0", .delete),
                                      ("/models/unet_tiny?url=unet_tiny&swap=true", .put)] {
                    try await client.execute(uri: uri, method: method) { response in
                        #expect(response.status == .forbidden, "\(method) \(uri)")
                        try #expect(error(response) == disabled, "\(method) \(uri)")
                    }
                }
                try await client.execute(uri: "/models", method: .get) { response in
                    #expect(response.status == .ok)
                    #expect(String(buffer: response.body) == "{\"models\":[{\"modelName\":\"unet_tiny\",\"modelUrl\":\"unet_tiny\"}]}")
                }
            }
            #expect(server.listModels().map(\.name) == ["unet_tiny"])
        }
    }
}
