import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ServerCore
import ServerHTTP
import ServerTestSupport
import TestFixtures
import Testing

@Suite struct TokenAuthorizationTests {
    @Test func keyFileIsPrivateAndKeysAre256Bit() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("keys-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: file) }
        let authorization = try TokenAuthorization(keyFile: file)
        let attributes = try FileManager.default.attributesOfItem(atPath: file.path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: [String: String]]
        #expect(Set(json?.keys ?? [:].keys) == ["inference", "management", "API"])
        for kind in [TokenAuthorization.Kind.inference, .management, .api] {
            let key = authorization.key(kind)
            #expect(key.count == 43)  // 32 bytes, unpadded base64url
            #expect(key.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
            #expect(json?[kind.rawValue]?["key"] == key)
        }
        #expect(Set([authorization.key(.inference), authorization.key(.management), authorization.key(.api)]).count == 3)
    }

    @Test func portsNeedTheirOwnKey() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        let server = store.makeServer()
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "unet_tiny"))
        let file = store.root.appendingPathComponent("key_file.json")
        let authorization = try TokenAuthorization(keyFile: file)
        let inference = HTTPServer.inferenceApplication(server: server, host: "127.0.0.1", port: 0, authorization: authorization, logger: quietLogger)
        let png = ByteBuffer(bytes: try Fixtures.bytes("images/rgb.png"))
        try await inference.test(.live) { client in
            try await client.execute(uri: "/ping", method: .get) { #expect($0.status == .ok) }
            for header in [nil, "Bearer wrong", "Bearer \(authorization.key(.management))", "Basic \(authorization.key(.inference))"] {
                var headers: HTTPFields = [:]
                if let header { headers[.authorization] = header }
                try await client.execute(uri: "/predictions/unet_tiny", method: .post, headers: headers, body: png) { response in
                    #expect(response.status == .unauthorized, "\(header ?? "no header")")
                    #expect(response.headers[.wwwAuthenticate] == "Bearer")
                    let json = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                    #expect(json?["type"] as? String == "InvalidKeyException")
                }
            }
            try await client.execute(uri: "/predictions/unet_tiny", method: .post,
                                     headers: [.authorization: "bearer \(authorization.key(.inference))"], body: png) { response in
                #expect(response.status == .ok)
            }
        }
        let management = HTTPServer.managementApplication(server: server, host: "127.0.0.1", port: 0, authorization: authorization, logger: quietLogger)
        try await management.test(.live) { client in
            try await client.execute(uri: "/models", method: .get, headers: [.authorization: "Bearer \(authorization.key(.inference))"]) {
                #expect($0.status == .unauthorized)
            }
            try await client.execute(uri: "/models", method: .get, headers: [.authorization: "Bearer \(authorization.key(.management))"]) {
                #expect($0.status == .ok)
            }
            let old = authorization.key(.inference)
            try await client.execute(uri: "/token?type=inference", method: .get, headers: [.authorization: "Bearer \(authorization.key(.management))"]) {
                #expect($0.status == .unauthorized)
            }
            try await client.execute(uri: "/token?type=inference", method: .get, headers: [.authorization: "Bearer \(authorization.key(.api))"]) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == "{\"status\":\"Inference key regenerated\"}")
            }
            #expect(authorization.key(.inference) != old)
            try await client.execute(uri: "/token?type=other", method: .get, headers: [.authorization: "Bearer \(authorization.key(.api))"]) {
                #expect($0.status == .badRequest)
            }
        }
    }
}
