import Foundation
import Hummingbird
import ServerCore
import MultipartKit

/// The prediction payload of a `multipart/form-data` body: the part named `data`, else `file`,
/// as TorchServe reads it, else `url`, the address of an image the server fetches.
enum MultipartPayload {
    /// The boundary of a `multipart/form-data` content type, or nil for any other type.
    static func boundary(of contentType: String?) -> String? {
        guard let contentType, contentType.lowercased().hasPrefix("multipart/form-data") else { return nil }
        for parameter in contentType.split(separator: ";").dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if pair.count == 2, pair[0].lowercased() == "boundary" {
                return pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            }
        }
        return nil
    }

    /// The bytes and content type of the `data` (else `file`) part; a `url` part becomes the
    /// `{"url": …}` body the core fetches the image of.
    static func extract(from body: ByteBuffer, boundary: String) throws(ModelServerError) -> (bytes: [UInt8], contentType: String?) {
        struct Part {
            var name: String?
            var contentType: String?
            var body: [UInt8] = []
        }
        try checkBoundary(boundary)
        try checkHeaderNames(body, boundary: boundary)
        var parts: [Part] = []
        var current = Part()
        let parser = MultipartParser(boundary: boundary)
        parser.onHeader = { field, value in
            switch field.lowercased() {
            case "content-disposition": current.name = Self.name(inDisposition: value)
            case "content-type": current.contentType = value
            default: break
            }
        }
        parser.onBody = { buffer in current.body += buffer.readBytes(length: buffer.readableBytes) ?? [] }
        parser.onPartComplete = {
            parts.append(current)
            current = Part()
        }
        do {
            try parser.execute(body)
        } catch {
            throw .badRequest("the multipart/form-data body is malformed: \(error)")
        }
        if let part = parts.first(where: { $0.name == "data" }) ?? parts.first(where: { $0.name == "file" }) {
            return (part.body, part.contentType)
        }
        if let part = parts.first(where: { $0.name == "url" }) {
            let url = String(decoding: part.body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            return (ImageURLRequest.body(for: url), "application/json")
        }
        throw .badRequest("the multipart/form-data body has no part named 'data', 'file' or 'url' (found: \(parts.compactMap(\.name)))")
    }

    /// Refuses a boundary MultipartKit cannot take: an empty one traps in its parser (a
    /// precondition) and would end the process; RFC 2046 allows 1 to 70 characters, and the
    /// limit also bounds the cost of looking for it in the body.
    static func checkBoundary(_ boundary: String) throws(ModelServerError) {
        let length = boundary.utf8.count
        guard (1...70).contains(length) else {
            throw .badRequest(
                "the multipart/form-data boundary is \(length) characters long; RFC 2046 allows 1 to 70 (Content-Type: multipart/form-data; boundary=...)")
        }
    }

    /// Refuses a part header whose name has a byte over 0x7F: MultipartKit 4.7.1 looks such a
    /// byte up in a 128-entry table and traps, which would end the process (found by fuzzing).
    /// Header names follow each `--boundary` line, one per line up to the first `:`, until an
    /// empty line; every such place is checked, including a last line with no CRLF. One pass:
    /// the search for the next delimiter goes on after the header lines just checked, as
    /// MultipartKit reads them (looking again from each delimiter was quadratic in the body:
    /// found by fuzzing, 1.9 s for 3.6 KB of delimiter lines with no empty line).
    static func checkHeaderNames(_ body: ByteBuffer, boundary: String) throws(ModelServerError) {
        let delimiter = Array("--\(boundary)".utf8)
        let found = body.withUnsafeReadableBytes { bytes in
            hasNonASCIIHeaderName(bytes, delimiter: delimiter)
        }
        if found {
            throw .badRequest(
                "the multipart/form-data body has a part header whose name is not ASCII; header names are ASCII tokens such as Content-Disposition")
        }
    }

    private static func hasNonASCIIHeaderName(_ bytes: UnsafeRawBufferPointer, delimiter: [UInt8]) -> Bool {
        let cr = UInt8(ascii: "\r"), lf = UInt8(ascii: "\n"), colon = UInt8(ascii: ":")
        /// The index of the next CRLF at or after `start`, or nil.
        func crlf(from start: Int) -> Int? {
            var at = start
            while at + 1 < bytes.count {
                if bytes[at] == cr && bytes[at + 1] == lf { return at }
                at += 1
            }
            return nil
        }
        /// The index just past the next `delimiter` at or after `start`, or nil.
        func delimiterEnd(from start: Int) -> Int? {
            var at = start
            while at + delimiter.count <= bytes.count {
                if bytes[at] == delimiter[0] && (1..<delimiter.count).allSatisfy({ bytes[at + $0] == delimiter[$0] }) {
                    return at + delimiter.count
                }
                at += 1
            }
            return nil
        }
        var searchFrom = 0
        while let afterDelimiter = delimiterEnd(from: searchFrom) {
            guard let endOfDelimiterLine = crlf(from: afterDelimiter) else { return false }
            var line = endOfDelimiterLine + 2
            while line < bytes.count {
                let end = crlf(from: line) ?? bytes.count
                if end == line { break }
                var at = line
                while at < end && bytes[at] != colon {
                    if bytes[at] > 0x7F { return true }
                    at += 1
                }
                line = min(end + 2, bytes.count)
            }
            searchFrom = line
        }
        return false
    }

    private static func name(inDisposition value: String) -> String? {
        for parameter in value.split(separator: ";").dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if pair.count == 2, pair[0].lowercased() == "name" {
                return pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            }
        }
        return nil
    }
}
