import Foundation
import Hummingbird

/// One route of a port: how it is served and how the OpenAPI description shows it.
/// The route table of each API is the single source of both.
struct Route<Context: RequestContext>: Sendable {
    var method: HTTPRequest.Method
    /// OpenAPI form, e.g. `/predictions/{model_name}`.
    var path: String
    var summary: String
    /// Status codes this route answers, beside 200.
    var errors: [Int]
    var handler: @Sendable (Request, Context) async throws -> Response

    /// Hummingbird's form of `path`: `{name}` becomes `:name`.
    var routerPath: String {
        path.split(separator: "/").map { segment in
            segment.hasPrefix("{") && segment.hasSuffix("}") ? ":" + segment.dropFirst().dropLast() : String(segment)
        }.reduce("") { $0 + "/" + $1 }
    }
}

extension Router {
    /// Registers every route of a table, plus `OPTIONS /` and `GET /api-description` describing them.
    func add(_ routes: [Route<Context>], title: String) {
        for route in routes {
            on(RouterPath(route.routerPath), method: route.method, use: route.handler)
        }
        let description = APIDescription.document(title: title, routes: routes)
        let respond: @Sendable (Request, Context) async throws -> Response = { _, _ in jsonResponse(description) }
        on("/", method: .options, use: respond)
        on("/api-description", method: .get, use: respond)
        // Methods a path does not serve answer 405 (with `Allow`), not 404.
        var served = Dictionary(grouping: routes, by: \.routerPath).mapValues { Set($0.map(\.method)) }
        served["/", default: []].insert(.options)
        served["/api-description", default: []].insert(.get)
        for (path, methods) in served {
            let allowed = Array(methods)
            for method in [HTTPRequest.Method.get, .post, .put, .delete, .patch, .options] where !methods.contains(method) {
                on(RouterPath(path), method: method) { request, _ -> Response in throw APIError.methodNotAllowed(request, allowed: allowed) }
            }
        }
    }
}

/// OpenAPI 3.0.1 descriptions generated from the route tables.
enum APIDescription {
    static func document<Context>(title: String, routes: [Route<Context>]) -> String {
        var paths: [String: [String: Any]] = [:]
        for route in routes {
            // A parameter may be followed by a suffix in its segment: `{model_name}:predict`.
            let parameters = route.path.split(separator: "/").filter { $0.hasPrefix("{") }.map { segment -> [String: Any] in
                ["name": String(segment.dropFirst().prefix { $0 != "}" }), "in": "path", "required": true, "schema": ["type": "string"]]
            }
            var responses: [String: Any] = ["200": ["description": "OK"]]
            for code in route.errors {
                responses[String(code)] = [
                    "description": HTTPResponse.Status(code: code).reasonPhrase,
                    "content": ["application/json": ["schema": ["$ref": "#/components/schemas/Error"]]],
                ]
            }
            var operation: [String: Any] = [
                "summary": route.summary,
                "operationId": operationID(route.method, route.path),
                "responses": responses,
            ]
            if !parameters.isEmpty { operation["parameters"] = parameters }
            paths[route.path, default: [:]][route.method.rawValue.lowercased()] = operation
        }
        paths["/", default: [:]]["options"] = [
            "summary": "This description.", "operationId": "apiDescription", "responses": ["200": ["description": "OK"]],
        ]
        let document: [String: Any] = [
            "openapi": "3.0.1",
            "info": ["title": title, "version": "1.0.0", "description": "TorchServe-compatible model server"],
            "paths": paths,
            "components": ["schemas": ["Error": [
                "type": "object",
                "required": ["code", "type", "message"],
                "properties": ["code": ["type": "integer"], "type": ["type": "string"], "message": ["type": "string"]],
            ]]],
        ]
        guard let data = try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .withoutEscapingSlashes]),
              let text = String(data: data, encoding: .utf8) else { return "{}" }
        return text
    }

    private static func operationID(_ method: HTTPRequest.Method, _ path: String) -> String {
        let words = path.split(separator: "/").map { $0.filter { $0.isLetter || $0.isNumber } }
        return method.rawValue.lowercased() + words.map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
    }
}
