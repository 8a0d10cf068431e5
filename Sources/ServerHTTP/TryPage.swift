import Foundation
import HTTPTypes
import Hummingbird
import ServerCore

/// `GET /` (and `HEAD /`) from a browser on the inference port: a self-contained page to try
/// the registered models. Anything that does not prefer HTML gets what `/` answers without it.
///
/// The page is public, like `/ping`; the calls it makes carry the inference key. With token
/// authorization on, the models are embedded only when the request carries the key, so the page
/// asks for it and fetches itself again with it.
struct TryPageMiddleware<Context: RequestContext>: RouterMiddleware {
    let server: ModelServer
    let authorization: TokenAuthorization?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.uri.path == "/", request.method == .get || request.method == .head,
              TryPage.prefersHTML(request.headers[.accept]) else {
            return try await next(request, context)
        }
        let unlocked = authorization?.accepts(request.headers[.authorization], as: .inference) ?? true
        let response = TryPage.response(models: unlocked ? TryPage.models(of: server) : nil, authorization: authorization != nil)
        return request.method == .head ? response.createHeadResponse() : response
    }
}

/// Renders the page: the HTML, CSS and script of `TryPage+Source.swift` with the models embedded.
enum TryPage {
    /// Whether an `Accept` header prefers HTML: `text/html` (or XHTML) is named with a quality
    /// above 0 and no other media range, wildcards included, has a higher one.
    static func prefersHTML(_ accept: String?) -> Bool {
        guard let accept else { return false }
        var html = 0.0, other = 0.0
        for range in accept.split(separator: ",") {
            let parts = range.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard let type = parts.first, !type.isEmpty else { continue }
            var quality = 1.0
            for parameter in parts.dropFirst() where parameter.hasPrefix("q=") {
                quality = min(max(Double(parameter.dropFirst(2)) ?? 0, 0), 1)
            }
            if type == "text/html" || type == "application/xhtml+xml" { html = max(html, quality) } else { other = max(other, quality) }
        }
        return html > 0 && html >= other
    }

    /// The registered models as the page reads them: name, and per version its handler kind,
    /// whether it is the default, and its class labels (index → name).
    static func models(of server: ModelServer) -> [[String: Any]] {
        server.listModels().compactMap { entry -> [String: Any]? in
            guard let versions = try? server.describe(model: entry.name, version: "all"), !versions.isEmpty else { return nil }
            return [
                "name": entry.name,
                "versions": versions.map { version -> [String: Any] in
                    [
                        "version": version.modelVersion, "handler": version.handler, "default": version.isDefault,
                        "labels": Dictionary(uniqueKeysWithValues: version.labels.map { (String($0.key), $0.value) }),
                    ]
                },
            ]
        }
    }

    /// The page's response: 200 `text/html` with a Content-Security-Policy that allows only the
    /// page's own inline script and style (by a fresh nonce), images from `blob:`/`data:` and
    /// calls to the same origin.
    /// - Parameters:
    ///   - models: the models to embed; nil when the request lacks the inference key the server requires.
    ///   - authorization: whether token authorization is on.
    static func response(models: [[String: Any]]?, authorization: Bool) -> Response {
        let nonce = makeNonce()
        let html = render(models: models, authorization: authorization, nonce: nonce)
        var headers: HTTPFields = [
            .contentType: "text/html; charset=utf-8",
            .contentSecurityPolicy: "default-src 'none'; script-src 'nonce-\(nonce)'; style-src 'nonce-\(nonce)'; "
                + "img-src blob: data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            .cacheControl: "no-store",
            .vary: "Accept, Authorization",
        ]
        for (name, value) in [("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer")] {
            if let name = HTTPField.Name(name) { headers[name] = value }
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    static func render(models: [[String: Any]]?, authorization: Bool, nonce: String) -> String {
        let data: [String: Any] = ["authorization": authorization, "locked": models == nil, "models": models ?? []]
        let options = (models ?? []).compactMap { $0["name"] as? String }
            .map { "<option value=\"\(escapeHTML($0))\">\(escapeHTML($0))</option>" }.joined()
        return source
            .replacingOccurrences(of: "{{NONCE}}", with: nonce)
            .replacingOccurrences(of: "{{MODEL_OPTIONS}}", with: options)
            .replacingOccurrences(of: "{{MODELS_JSON}}", with: scriptJSON(data))
    }

    /// JSON that can sit inside a `<script>` element: `<`, `>`, `&`, U+2028 and U+2029 as `\u` escapes.
    static func scriptJSON(_ object: Any) -> String {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]),
              let text = String(data: data, encoding: .utf8) else { return "{}" }
        var escaped = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "<": escaped += "\\u003c"
            case ">": escaped += "\\u003e"
            case "&": escaped += "\\u0026"
            case "\u{2028}": escaped += "\\u2028"
            case "\u{2029}": escaped += "\\u2029"
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }

    static func escapeHTML(_ text: String) -> String {
        var escaped = ""
        for character in text {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&#39;"
            default: escaped.append(character)
            }
        }
        return escaped
    }

    /// 16 random bytes as base64, for the Content-Security-Policy nonce.
    static func makeNonce() -> String {
        var generator = SystemRandomNumberGenerator()
        return Data((0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) }).base64EncodedString()
    }
}
