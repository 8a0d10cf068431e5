import Foundation
import HTTPTypes
import Hummingbird
import ServerCore
import Synchronization

/// TorchServe 0.11+'s token authorization: three random keys in `key_file.json`, a Bearer key
/// per port, and an API key that renews the other two.
public final class TokenAuthorization: Sendable {
    /// Which key a port checks.
    public enum Kind: String, Sendable {
        case inference, management, api = "API"
    }

    public let keyFile: URL
    let expiration: Duration?
    private struct Keys {
        var keys: [Kind: String] = [:]
        var expiries: [Kind: Date] = [:]
    }

    private let state = Mutex(Keys())
    /// Serialises key file writes, so a later renewal never lands before an earlier one.
    private let writing = Mutex(())

    /// Generates fresh keys and writes them to `keyFile` (created 0600 through a temp file).
    /// - Parameter expirationMinutes: 0 for keys that never expire.
    public init(keyFile: URL, expirationMinutes: Int = 0) throws {
        self.keyFile = keyFile
        expiration = expirationMinutes > 0 ? .seconds(expirationMinutes * 60) : nil
        for kind in [Kind.inference, .management, .api] { renew(kind) }
        try writeKeyFile()
    }

    /// The current key of a kind (for tests and the key file).
    public func key(_ kind: Kind) -> String {
        state.withLock { $0.keys[kind] ?? "" }
    }

    /// Whether `header` (an `Authorization` value) carries the current, unexpired key of `kind`.
    package func accepts(_ header: String?, as kind: Kind) -> Bool {
        guard let header else { return false }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return false }
        let (expected, expiry) = state.withLock { ($0.keys[kind] ?? "", $0.expiries[kind]) }
        if let expiry, expiry < Date() { return false }
        return constantTimeEqual(Array(parts[1].utf8), Array(expected.utf8))
    }

    /// Replaces the inference or management key and rewrites the key file.
    public func regenerate(_ kind: Kind) throws {
        renew(kind)
        try writeKeyFile()
    }

    /// Deletes the key file (at `serve --stop`).
    public func removeKeyFile() {
        try? FileManager.default.removeItem(at: keyFile)
    }

    private func renew(_ kind: Kind) {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let key = Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        let expiry = expiration.map { Date().addingTimeInterval(Double($0.components.seconds)) }
        state.withLock { state in
            state.keys[kind] = key
            if let expiry, kind != .api { state.expiries[kind] = expiry }
        }
    }

    private func writeKeyFile() throws {
        try writing.withLock { _ in
            let object = state.withLock { state in
                state.keys.reduce(into: [String: [String: String]]()) { object, entry in
                    var fields = ["key": entry.value]
                    if let expiry = state.expiries[entry.key] { fields["expiration time"] = timestamp(expiry) }
                    object[entry.key.rawValue] = fields
                }
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let data = try encoder.encode(object)
            // Created 0600 from the start and renamed into place: no other user can ever read a key.
            do {
                try AtomicFile.write(data, to: keyFile)
            } catch {
                throw TokenFileError(path: keyFile.path, reason: "\(error)")
            }
        }
    }
}

struct TokenFileError: Error, CustomStringConvertible {
    var path: String
    var reason: String
    var description: String { "cannot write the key file \(path): \(reason)" }
}

/// Compares without an early exit, so timing does not reveal how much of a key matched.
func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    var difference = UInt8(a.count == b.count ? 0 : 1)
    for index in 0..<max(a.count, b.count) {
        difference |= (index < a.count ? a[index] : 0) ^ (index < b.count ? b[index] : 0)
    }
    return difference == 0
}

/// Requires the port's Bearer key on every route but health and the API description.
struct TokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let authorization: TokenAuthorization
    let kind: TokenAuthorization.Kind
    static var exemptPaths: Set<String> { ["/ping", "/api-description", "/token"] }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path.count > 1 && request.uri.path.hasSuffix("/") ? String(request.uri.path.dropLast()) : request.uri.path
        let exempt = Self.exemptPaths.contains(path) || path.hasPrefix("/v2/health/") || (request.method == .options && path == "/")
        if !exempt && !authorization.accepts(request.headers[.authorization], as: kind) {
            var error = APIError(.unauthorized, type: "InvalidKeyException",
                                 message: "Token authorization failed: send 'Authorization: Bearer <\(kind.rawValue) key from key_file.json>'")
            error.headers[.wwwAuthenticate] = "Bearer"
            throw error
        }
        return try await next(request, context)
    }
}
