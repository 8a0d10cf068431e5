import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ServerCore
import ServerHTTP
import ServerTestSupport
import TestFixtures
import Testing

/// The management port through a live server: register, list, describe, scale, versions, unregister.
@Suite struct ManagementAPITests {
    func withManagement(enableModelAPI: Bool = true, _ body: @Sendable (any TestClientProtocol, ModelServer, TestModelStore) async throws -> Void) async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        try store.addFolderArchive(name: "unet_v2", version: "2.0", model: "models/unet_tiny.pt", config: TestModelStore.segmenterConfig)
        var configuration = ServerConfiguration(modelStore: store.root, workDirectory: store.work)
        configuration.enableModelAPI = enableModelAPI
        let server = ModelServer(configuration: configuration, logger: quietLogger)
        defer { server.shutdown() }
        let app = HTTPServer.managementApplication(server: server, host: "127.0.0.1", port: 0, logger: quietLogger)
        try await app.test(.live) { client in try await body(client, server, store) }
    }

    func json(_ response: TestResponse) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(buffer: response.body))
    }

    @Test func registerDescribeScaleUnregister() async throws {
        try await withManagement { client, server, _ in
            try await client.execute(uri: "/models?url=unet_tiny&batch_size=2", method: .post) { response in
                #expect(response.status == .ok)
                let body = try json(response) as? [String: String]
                #expect(body?["status"] == "Model \"unet_tiny\" Version: 1.0 registered with 1 initial workers")
            }
            try await client.execute(uri: "/models/unet_tiny", method: .get) { response in
                #expect(response.status == .ok)
                let list = try json(response) as? [[String: Any]]
                let model = try #require(list?.first)
                #expect(model["modelName"] as? String == "unet_tiny")
                #expect(model["modelVersion"] as? String == "1.0")
                #expect(model["modelUrl"] as? String == "unet_tiny")
                #expect(model["handler"] as? String == "image_segmenter")
                #expect(model["isDefault"] as? Bool == true)
                #expect(model["batchSize"] as? Int == 2)
                #expect(model["deviceType"] as? String == "cpu")
                let workers = try #require(model["workers"] as? [[String: Any]])
                #expect(workers.count == 1)
                #expect(workers.first?["status"] as? String == "READY")
                #expect(workers.first?["device"] as? String == "cpu")
                #expect(workers.first?["gpuUsage"] as? String == "N/A")
                #expect((workers.first?["memoryUsage"] as? Int ?? 0) > 10_000)
                let queue = model["jobQueueStatus"] as? [String: Int]
                #expect(queue?["remainingCapacity"] == 100)
            }
            try await client.execute(uri: "/models/unet_tiny?min_worker=2&synchronous=true", method: .put) { response in
                #expect(response.status == .ok)
                try #expect((json(response) as? [String: String])?["status"] == "Workers scaled to 2 for model: unet_tiny")
            }
            #expect(try server.describe(model: "unet_tiny")[0].workers.filter { $0.status == .ready }.count == 2)
            try await client.execute(uri: "/models/unet_tiny?min_worker=1&synchronous=true", method: .put) { response in
                #expect(response.status == .ok)
            }
            #expect(try server.describe(model: "unet_tiny")[0].workers.count == 1)
            try await client.execute(uri: "/models/unet_tiny", method: .delete) { response in
                #expect(response.status == .ok)
                try #expect((json(response) as? [String: String])?["status"] == "Model \"unet_tiny\" unregistered")
            }
            try await client.execute(uri: "/models/unet_tiny", method: .get) { response in
                #expect(response.status == .notFound)
            }
        }
    }

    @Test func versionsDefaultAndDeleteRules() async throws {
        try await withManagement { client, server, _ in
            try await client.execute(uri: "/models?url=unet_tiny", method: .post) { #expect($0.status == .ok) }
            try await client.execute(uri: "/models?url=unet_v2&model_name=unet_tiny&initial_workers=1", method: .post) { #expect($0.status == .ok) }
            try await client.execute(uri: "/models/unet_tiny/all", method: .get) { response in
                let list = try json(response) as? [[String: Any]]
                #expect(list?.map { $0["modelVersion"] as? String } == ["1.0", "2.0"])
                #expect(list?.map { $0["isDefault"] as? Bool } == [true, false])
            }
            // The default cannot go while another version exists.
            try await client.execute(uri: "/models/unet_tiny/1.0", method: .delete) { response in
                #expect(response.status == .forbidden)
                try #expect((json(response) as? [String: Any])?["type"] as? String == "InvalidModelVersionException")
            }
            try await client.execute(uri: "/models/unet_tiny/2.0/set-default", method: .put) { response in
                #expect(response.status == .ok)
                try #expect((json(response) as? [String: String])?["status"] == "Default version successfully updated for model \"unet_tiny\" to \"2.0\"")
            }
            #expect(try server.describe(model: "unet_tiny")[0].modelVersion == "2.0")
            try await client.execute(uri: "/models/unet_tiny/1.0", method: .delete) { #expect($0.status == .ok) }
            try await client.execute(uri: "/models/unet_tiny/3.0/set-default", method: .put) { response in
                #expect(response.status == .notFound)
                try #expect((json(response) as? [String: Any])?["type"] as? String == "ModelVersionNotFoundException")
            }
        }
    }

    @Test func listPaginatesSortedByName() async throws {
        try await withManagement { client, _, _ in
            try await client.execute(uri: "/models?url=unet_v2", method: .post) { #expect($0.status == .ok) }
            // No workers to wait for: 200 and the same answer, whatever synchronous says (as TorchServe).
            try await client.execute(uri: "/models?url=unet_tiny&initial_workers=0&synchronous=false&runtime=python", method: .post) { response in
                #expect(response.status == .ok)
                try #expect((json(response) as? [String: String])?["status"]
                    == "Model \"unet_tiny\" Version: 1.0 registered with 0 initial workers. Use scale workers API to add workers for the model.")
            }
            try await client.execute(uri: "/models?limit=1", method: .get) { response in
                let body = try json(response) as? [String: Any]
                #expect(body?["nextPageToken"] as? String == "1")
                #expect((body?["models"] as? [[String: String]])?.map { $0["modelName"] } == ["unet_tiny"])
            }
            try await client.execute(uri: "/models?limit=1&next_page_token=1", method: .get) { response in
                let body = try json(response) as? [String: Any]
                #expect(body?["nextPageToken"] == nil)
                #expect((body?["models"] as? [[String: String]])?.map { $0["modelName"] } == ["unet_v2"])
            }
        }
    }

    @Test func badParametersAndPolicies() async throws {
        try await withManagement { client, _, _ in
            let cases: [(String, HTTPRequest.Method, HTTPResponse.Status, String)] = [
                ("/models", .post, .badRequest, "BadRequestException"),
                ("/models?url=unet_tiny&batch_size=0", .post, .badRequest, "BadRequestException"),
                ("/models?url=unet_tiny&synchronous=maybe", .post, .badRequest, "BadRequestException"),
                ("/models?url=unet_tiny&runtime=java", .post, .badRequest, "BadRequestException"),
                ("/models?url=nothing.mar", .post, .notFound, "ModelNotFoundException"),
                ("/models?url=file:///etc/passwd", .post, .forbidden, "InvalidArchiveURLException"),
                ("/models?url=../../../etc", .post, .forbidden, "InvalidArchiveURLException"),
                ("/models?url=https://example.com/m.mar", .post, .forbidden, "InvalidArchiveURLException"),
                ("/models/ghost", .get, .notFound, "ModelNotFoundException"),
                ("/models/ghost?min_worker=1", .put, .notFound, "ModelNotFoundException"),
                ("/models/ghost?min_worker=300", .put, .badRequest, "BadRequestException"),
            ]
            for (uri, method, status, type) in cases {
                try await client.execute(uri: uri, method: method) { response in
                    #expect(response.status == status, "\(method) \(uri)")
                    try #expect((json(response) as? [String: Any])?["type"] as? String == type, "\(method) \(uri)")
                }
            }
            // JSON body with the same keys as the query.
            try await client.execute(uri: "/models", method: .post, headers: [.contentType: "application/json"],
                                     body: ByteBuffer(string: "{\"url\": \"unet_tiny\", \"initial_workers\": 1, \"synchronous\": true}")) { response in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "/models?url=unet_tiny", method: .post) { response in
                #expect(response.status == .conflict)
            }
        }
    }

    @Test func modelAPIOffRefusesRegistration() async throws {
        try await withManagement(enableModelAPI: false) { client, _, _ in
            try await client.execute(uri: "/models?url=unet_tiny", method: .post) { response in
                #expect(response.status == .forbidden)
                try #expect((json(response) as? [String: Any])?["type"] as? String == "ModelApiDisabledException")
            }
            try await client.execute(uri: "/models", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == "{\"models\":[]}")
            }
        }
    }
}
