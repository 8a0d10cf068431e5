import Foundation
import ModelArchive

/// The `{"url": "…"}` form of an image input: instead of the image's bytes, a request names
/// where the server fetches them (``ImageFetcher``). Every route passes the form to the core as
/// such a body; a multipart `url` part or a KServe v1 `{"url": …}` instance becomes one.
public enum ImageURLRequest {
    /// Bodies longer than this are never read as the form (a URL is short; an image is not JSON).
    static let maxBodySize = 16 * 1024

    /// The URL of a body that is a JSON object with a `url` member; nil for any other body (an
    /// image, text, or JSON without `url`).
    /// - Throws: `.badRequest` when `url` is there but is not a non-empty string.
    public static func url(in body: [UInt8]) throws(ModelServerError) -> String? {
        guard body.count <= maxBodySize,
              body.first(where: { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }) == UInt8(ascii: "{"),
              let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
              let value = object["url"] else { return nil }
        guard let url = value as? String, !url.isEmpty else {
            throw .badRequest("url must be a non-empty string naming an http(s) image, e.g. {\"url\": \"https://example.com/image.jpg\"}")
        }
        return url
    }

    /// Whether `body` is the form (with a usable `url`).
    public static func isURLBody(_ body: [UInt8]) -> Bool {
        (try? url(in: body)).flatMap { $0 } != nil
    }

    /// `{"url": "…"}` naming `url`, as the core reads it.
    public static func body(for url: String) -> [UInt8] {
        let data = (try? JSONSerialization.data(withJSONObject: ["url": url], options: [.withoutEscapingSlashes])) ?? Data()
        return [UInt8](data)
    }
}
