import Foundation
import ModelArchive

/// Where an image URL points, once it is known to be a plain `http` or `https` URL: the host
/// to resolve, the port, and the request line's target.
struct ImageURL: Sendable {
    var isHTTPS: Bool
    /// The host name or numeric address, without the brackets of an IPv6 literal.
    var host: String
    var port: Int
    /// The path and query, as the request line carries them.
    var target: String
    /// The `Host` header: the host (bracketed when IPv6) and the port unless it is the scheme's.
    var hostHeader: String

    /// - Throws: `.urlNotAllowed` for another scheme; `.badURL` for a URL without a host or
    ///   with credentials, a host that is not plain ASCII, or a port outside 1…65535.
    init(_ text: String) throws(ImageFetchFailure) {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased() else {
            throw ImageFetchFailure(.badURL, "url '\(Excerpt.of(text))' is not a URL; send an http(s) URL such as https://example.com/image.jpg")
        }
        guard scheme == "http" || scheme == "https" else {
            throw ImageFetchFailure(.urlNotAllowed, "url '\(Excerpt.of(text))' is not http or https; images are fetched over http(s) only")
        }
        guard components.user == nil, components.password == nil else {
            throw ImageFetchFailure(.badURL, "url '\(Excerpt.of(text))' carries credentials; images are fetched without them")
        }
        var host = components.percentEncodedHost ?? ""
        let bracketed = host.hasPrefix("[") && host.hasSuffix("]") && host.count > 2
        if bracketed { host = String(host.dropFirst().dropLast()) }
        let allowed = bracketed ? "0123456789abcdefABCDEF:." : "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-_"
        guard !host.isEmpty, host.allSatisfy({ allowed.contains($0) }) else {
            throw ImageFetchFailure(.badURL, "url '\(Excerpt.of(text))' has no host or a host that is not a plain name or address")
        }
        let defaultPort = scheme == "https" ? 443 : 80
        let port = components.port ?? defaultPort
        guard (1...65535).contains(port) else {
            throw ImageFetchFailure(.badURL, "url '\(Excerpt.of(text))' has port \(port); ports are 1…65535")
        }
        isHTTPS = scheme == "https"
        self.host = host
        self.port = port
        let path = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
        target = path + (components.percentEncodedQuery.map { "?" + $0 } ?? "")
        hostHeader = (bracketed ? "[\(host)]" : host) + (port == defaultPort ? "" : ":\(port)")
    }

    /// The name TLS sends (SNI) and verifies the certificate against; nil for a numeric host,
    /// whose certificate is verified against the address.
    var serverName: String? {
        IPAddress(host) == nil ? host : nil
    }
}
