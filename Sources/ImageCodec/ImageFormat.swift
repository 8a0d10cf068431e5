/// An encoded image format the decoder reads, recognised by its leading bytes.
public enum ImageFormat: String, Sendable, CaseIterable {
    case png
    case jpeg

    static let pngSignature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    static let jpegSignature: [UInt8] = [0xFF, 0xD8, 0xFF]

    /// The media type, for responses and logs.
    public var mediaType: String {
        switch self {
        case .png: return "image/png"
        case .jpeg: return "image/jpeg"
        }
    }

    /// The format whose magic bytes `bytes` starts with, or nil. A declared content type is
    /// never consulted: clients mislabel bodies.
    public static func sniff(_ bytes: some Collection<UInt8>) -> ImageFormat? {
        if bytes.starts(with: pngSignature) { return .png }
        if bytes.starts(with: jpegSignature) { return .jpeg }
        return nil
    }

    /// Sniffs `bytes`, or says precisely why they are not a PNG or JPEG image.
    static func detect(_ bytes: some Collection<UInt8>) throws -> ImageFormat {
        if bytes.isEmpty { throw ImageError.empty }
        if let format = sniff(bytes) { return format }
        // A body cut inside the signature itself.
        if bytes.count < pngSignature.count, pngSignature.starts(with: bytes) {
            throw ImageError.truncated("only \(bytes.count) bytes of a PNG signature")
        }
        if bytes.count < jpegSignature.count, jpegSignature.starts(with: bytes) {
            throw ImageError.truncated("only \(bytes.count) bytes of a JPEG signature")
        }
        throw ImageError.unsupportedFormat(describeLeadingBytes(bytes))
    }

    /// "not a PNG or JPEG image (starts with 47 49 46 38 39 61 "GIF89a", looks like GIF)".
    static func describeLeadingBytes(_ bytes: some Collection<UInt8>) -> String {
        let head = Array(bytes.prefix(8))
        let hex = head.map { byte in
            let digits = String(byte, radix: 16)
            return digits.count == 1 ? "0" + digits : digits
        }.joined(separator: " ")
        let printable = head.allSatisfy { (0x20...0x7E).contains($0) || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }
        let text = printable ? " \"\(String(decoding: head, as: UTF8.self).escapedControlCharacters)\"" : ""
        let guess = guessFormat(Array(bytes.prefix(16))).map { ", looks like \($0)" } ?? ""
        return "not a PNG or JPEG image (starts with \(hex)\(text)\(guess))"
    }

    private static func guessFormat(_ head: [UInt8]) -> String? {
        func ascii(_ text: String, at offset: Int = 0) -> Bool {
            let pattern = Array(text.utf8)
            return head.count >= offset + pattern.count && Array(head[offset..<offset + pattern.count]) == pattern
        }
        if ascii("GIF87a") || ascii("GIF89a") { return "GIF" }
        if ascii("RIFF") && ascii("WEBP", at: 8) { return "WebP" }
        if ascii("BM") { return "BMP" }
        if head.starts(with: [0x49, 0x49, 0x2A, 0x00]) || head.starts(with: [0x4D, 0x4D, 0x00, 0x2A]) { return "TIFF" }
        if ascii("ftypavif", at: 4) || ascii("ftypavis", at: 4) { return "AVIF" }
        if ascii("ftyphei", at: 4) || ascii("ftypmif1", at: 4) { return "HEIF" }
        if ascii("%PDF") { return "PDF" }
        if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) { return "a zip archive" }
        if head.starts(with: [0x1F, 0x8B]) { return "gzip data" }
        let firstVisible = head.first { ![0x20, 0x09, 0x0A, 0x0D, 0xEF, 0xBB, 0xBF].contains($0) }
        if firstVisible == UInt8(ascii: "<") { return "HTML, XML or SVG text" }
        if firstVisible == UInt8(ascii: "{") || firstVisible == UInt8(ascii: "[") { return "JSON text" }
        return nil
    }
}

extension String {
    fileprivate var escapedControlCharacters: String {
        var result = ""
        for scalar in unicodeScalars {
            switch scalar {
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case "\"": result += "\\\""
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }
}
