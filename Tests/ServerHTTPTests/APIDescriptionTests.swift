import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ServerCore
import ServerHTTP
import ServerTestSupport
import Testing

/// `OPTIONS /` describes exactly the routes each port serves.
@Suite struct APIDescriptionTests {
    func operations(_ body: ByteBuffer) throws -> [(HTTPRequest.Method, String)] {
        let document = try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any]
        #expect(document?["openapi"] as? String == "3.0.1")
        let paths = try #require(document?["paths"] as? [String: [String: Any]])
        return paths.flatMap { path, methods in
            methods.keys.compactMap { HTTPRequest.Method($0.uppercased()) }.map { ($0, path) }
        }
    }

    func check(_ app: some ApplicationProtocol, expected: Set<String>) async throws {
        try await app.test(.live) { client in
            let described = try await client.execute(uri: "/", method: .options) { response in
                #expect(response.status == .ok)
                return try operations(response.body)
            }
            #expect(Set(described.map { "\($0.0) \($0.1)" }) == expected)
            try await client.execute(uri: "/api-description", method: .get) { #expect($0.status == .ok) }
            // Every described operation is routed: it may fail on its input, never with "no such route".
            for (method, path) in described where method != .options {
                let uri = path.replacingOccurrences(of: "{model_name}", with: "m").replacingOccurrences(of: "{model_version}", with: "1.0")
                try await client.execute(uri: uri, method: method) { response in
                    let json = try? JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                    #expect(json?["type"] as? String != "ResourceNotFoundException", "\(method) \(path)")
                    #expect(response.status != .methodNotAllowed, "\(method) \(path)")
                }
            }
        }
    }

    @Test func inferencePort() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        let server = store.makeServer()
        try await check(HTTPServer.inferenceApplication(server: server, host: "127.0.0.1", port: 0, logger: quietLogger), expected: [
            "OPTIONS /", "GET /ping",
            "POST /predictions/{model_name}", "PUT /predictions/{model_name}",
            "POST /predictions/{model_name}/{model_version}", "PUT /predictions/{model_name}/{model_version}",
            "GET /v2", "GET /v2/health/live", "GET /v2/health/ready",
            "GET /v2/models/{model_name}", "GET /v2/models/{model_name}/ready", "POST /v2/models/{model_name}/infer",
            "GET /v2/models/{model_name}/versions/{model_version}", "GET /v2/models/{model_name}/versions/{model_version}/ready",
            "POST /v2/models/{model_name}/versions/{model_version}/infer",
            "GET /v1/models", "GET /v1/models/{model_name}",
            "POST /v1/models/{model_name}:predict", "POST /v1/models/{model_name}:explain",
            "POST /invocations", "POST /models/{model_name}/invoke",
        ])
    }

    @Test func managementPort() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        let server = store.makeServer()
        try await check(HTTPServer.managementApplication(server: server, host: "127.0.0.1", port: 0, logger: quietLogger), expected: [
            "OPTIONS /", "POST /models", "GET /models", "GET /models/{model_name}", "GET /models/{model_name}/{model_version}",
            "PUT /models/{model_name}", "PUT /models/{model_name}/{model_version}",
            "PUT /models/{model_name}/{model_version}/set-default",
            "DELETE /models/{model_name}", "DELETE /models/{model_name}/{model_version}", "GET /token",
        ])
    }

    @Test func otherMethodsOnTheDescriptionPathsAre405WithAllow() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        let server = store.makeServer()
        let app = HTTPServer.inferenceApplication(server: server, host: "127.0.0.1", port: 0, logger: quietLogger)
        try await app.test(.live) { client in
            try await client.execute(uri: "/", method: .get) { response in
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == "OPTIONS")
                #expect(String(buffer: response.body).contains("MethodNotAllowedException"))
            }
            try await client.execute(uri: "/api-description", method: .post) { response in
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == "GET")
            }
            try await client.execute(uri: "/predictions/unet_tiny", method: .get) { response in
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == "POST, PUT")
            }
        }
    }
}
