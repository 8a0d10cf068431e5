import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ServerCore
import ServerHTTP
import ServerTestSupport
import Testing

/// `GET /` on the inference port: the page for browsers, today's answer for everyone else.
/// (The page's script is driven in headless Chromium by `scripts/check/try-page`.)
@Suite struct TryPageTests {
    /// What Chromium sends when it navigates to a page.
    static let browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
    /// A label with markup in it, to see that the page escapes what an archive brings.
    static let labels = #"{"0": "<b>road</b> & \"sky\"", "1": "car", "2": "person", "3": "tree", "4": "</script><script>alert(1)</script>"}"#

    func withServer(authorization: Bool = false,
                    _ body: @Sendable (any TestClientProtocol, TokenAuthorization?) async throws -> Void) async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        try store.addFolderArchive(name: "streets", model: "models/unet_tiny.pt",
                                   config: TestModelStore.segmenterConfig + "\n  labels: labels.json\n",
                                   extraFiles: ["labels.json": Self.labels])
        let server = store.makeServer()
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "unet_tiny"))
        try await server.register(RegistrationOptions(url: "streets"))
        let keys = authorization ? try TokenAuthorization(keyFile: store.root.appendingPathComponent("key_file.json")) : nil
        let app = HTTPServer.inferenceApplication(server: server, host: "127.0.0.1", port: 0, authorization: keys, logger: quietLogger)
        try await app.test(.live) { client in try await body(client, keys) }
    }

    /// The JSON the page embeds for its script.
    static func embedded(_ html: String) throws -> [String: Any] {
        let start = try #require(html.range(of: #"<script type="application/json" id="models">"#))
        let end = try #require(html.range(of: "</script>", range: start.upperBound..<html.endIndex))
        let json = try JSONSerialization.jsonObject(with: Data(html[start.upperBound..<end.lowerBound].utf8))
        return try #require(json as? [String: Any])
    }

    @Test func aBrowserGetsThePageWithTheModelsEscaped() async throws {
        try await withServer { client, _ in
            try await client.execute(uri: "/", method: .get, headers: [.accept: Self.browserAccept]) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "text/html; charset=utf-8")
                let html = String(buffer: response.body)
                #expect(html.hasPrefix("<!doctype html>"))
                #expect(html.contains(#"<option value="streets">streets</option>"#))
                #expect(html.contains(#"<option value="unet_tiny">unet_tiny</option>"#))
                // The labels' markup never reaches the document as markup.
                #expect(!html.contains("<b>road"))
                #expect(!html.contains("alert(1)</script>"))
                #expect(html.contains(#"\u003cb\u003eroad\u003c/b\u003e \u0026"#) || html.contains(#"\u003cb\u003eroad\u003c\/b\u003e \u0026"#))
                let page = try Self.embedded(html)
                #expect(page["locked"] as? Bool == false)
                #expect(page["authorization"] as? Bool == false)
                let models = try #require(page["models"] as? [[String: Any]])
                #expect(models.compactMap { $0["name"] as? String } == ["streets", "unet_tiny"])
                let version = try #require((models.first?["versions"] as? [[String: Any]])?.first)
                #expect(version["handler"] as? String == "image_segmenter")
                #expect(version["version"] as? String == "1.0")
                #expect(version["default"] as? Bool == true)
                let labels = try #require(version["labels"] as? [String: String])
                #expect(labels["0"] == #"<b>road</b> & "sky""#)
                #expect(labels["4"] == "</script><script>alert(1)</script>")
                // Only the page's own inline script and style may run, by the nonce of this response.
                let policy = try #require(response.headers[.contentSecurityPolicy])
                #expect(policy.contains("default-src 'none'"))
                let source = policy.split(separator: "'").first(where: { $0.hasPrefix("nonce-") })
                let nonce = try #require(source?.dropFirst("nonce-".count))
                #expect(html.contains("<script nonce=\"\(nonce)\">"))
                #expect(html.contains("<style nonce=\"\(nonce)\">"))
                #expect(response.headers[.vary] == "Accept, Authorization")
            }
            try await client.execute(uri: "/", method: .get, headers: [.accept: "text/html"]) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "text/html; charset=utf-8")
            }
        }
    }

    @Test func thePageNeedsNothingFromElsewhere() async throws {
        try await withServer { client, _ in
            try await client.execute(uri: "/", method: .get, headers: [.accept: "text/html"]) { response in
                let html = String(buffer: response.body)
                #expect(!html.contains("http://") && !html.contains("https://"))
                #expect(!html.contains("<link") && !html.contains("@import") && !html.contains("url("))
                #expect(!html.contains("<script src") && !html.contains("<img src") && !html.contains("<iframe"))
                // Two script elements, each closed once: nothing inside the inline script ends it early.
                #expect(html.components(separatedBy: "<script").count == 3 && html.components(separatedBy: "</script>").count == 3)
                let policy = response.headers[.contentSecurityPolicy] ?? ""
                #expect(policy.contains("connect-src 'self'") && policy.contains("img-src blob: data:"))
            }
        }
    }

    @Test func otherClientsGetTodaysAnswer() async throws {
        try await withServer { client, _ in
            for accept in [nil, "*/*", "application/json", "application/json, text/html;q=0.5", "text/html;q=0"] {
                var headers: HTTPFields = [:]
                if let accept { headers[.accept] = accept }
                try await client.execute(uri: "/", method: .get, headers: headers) { response in
                    #expect(response.status == .methodNotAllowed, "\(accept ?? "no Accept")")
                    #expect(response.headers[.allow] == "OPTIONS")
                    #expect(response.headers[.contentType] == "application/json")
                    #expect(String(buffer: response.body).contains("MethodNotAllowedException"))
                }
                // HEAD / was never routed (404 before the page existed); it stays so for these clients.
                try await client.execute(uri: "/", method: .head, headers: headers) { response in
                    #expect(response.status == .notFound, "HEAD, \(accept ?? "no Accept")")
                    #expect(response.headers[.contentType]?.hasPrefix("text/html") != true)
                }
            }
            // OPTIONS / stays the API description, even for a browser.
            try await client.execute(uri: "/", method: .options, headers: [.accept: Self.browserAccept]) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("\"openapi\""))
            }
        }
    }

    @Test func headAnswersThePagesHeadersOnly() async throws {
        try await withServer { client, _ in
            let length = try await client.execute(uri: "/", method: .get, headers: [.accept: Self.browserAccept]) { response in
                response.body.readableBytes
            }
            try await client.execute(uri: "/", method: .head, headers: [.accept: Self.browserAccept]) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "text/html; charset=utf-8")
                #expect(response.headers[.contentLength] == String(length))
                #expect(response.body.readableBytes == 0)
            }
        }
    }

    @Test func withTokenAuthorizationThePageIsPublicButModelsAndCallsNeedTheKey() async throws {
        try await withServer(authorization: true) { client, keys in
            let key = try #require(keys).key(.inference)
            try await client.execute(uri: "/", method: .get, headers: [.accept: Self.browserAccept]) { response in
                #expect(response.status == .ok)
                let html = String(buffer: response.body)
                let page = try Self.embedded(html)
                #expect(page["authorization"] as? Bool == true)
                #expect(page["locked"] as? Bool == true)
                #expect((page["models"] as? [Any])?.isEmpty == true)
                #expect(!html.contains("unet_tiny") && !html.contains("streets"))
            }
            try await client.execute(uri: "/", method: .get, headers: [.accept: "text/html", .authorization: "Bearer wrong"]) { response in
                let page = try Self.embedded(String(buffer: response.body))
                #expect(page["locked"] as? Bool == true)
            }
            try await client.execute(uri: "/", method: .get, headers: [.accept: "text/html", .authorization: "Bearer \(key)"]) { response in
                let page = try Self.embedded(String(buffer: response.body))
                #expect(page["locked"] as? Bool == false)
                #expect((page["models"] as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["streets", "unet_tiny"])
            }
            // Everyone else still gets today's answer: no key, 401.
            try await client.execute(uri: "/", method: .get, headers: [.accept: "*/*"]) { response in
                #expect(response.status == .unauthorized)
            }
            try await client.execute(uri: "/predictions/unet_tiny", method: .post, headers: [.accept: Self.browserAccept],
                                     body: ByteBuffer(string: "x")) { response in
                #expect(response.status == .unauthorized)
            }
        }
    }
}
