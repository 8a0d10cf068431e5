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

    /// Refuses a part header whose name has a byte over 0x7F: MultipartKit 4.7.1 looks such a
    /// byte up in a 128-entry table and traps, which would end the process (found by fuzzing).
    /// Header names follow each `--boundary` line, one per line up to the first `:`, until an
    /// empty line; every such place is checked, including a last line with no CRLF.
    static func checkHeaderNames(_ body: ByteBuffer, boundary: String) throws(ModelServerError) {
        let bytes = body.readableBytesView
        let delimiter = Array("--\(boundary)".utf8)
        let crlf: [UInt8] = [0x0D, 0x0A]
        var searchFrom = bytes.startIndex
        while let found = bytes[searchFrom...].firstRange(of: delimiter) {
            searchFrom = found.upperBound
            guard let delimiterEnd = bytes[found.upperBound...].firstRange(of: crlf) else { return }
            var line = delimiterEnd.upperBound
            while line < bytes.endIndex {
                let end = bytes[line...].firstRange(of: crlf)?.lowerBound ?? bytes.endIndex
                if end == line { break }
                if bytes[line..<end].prefix(while: { $0 != UInt8(ascii: ":") }).contains(where: { $0 > 0x7F }) {
                    throw .badRequest(
                        "the multipart/form-data body has a part header whose name is not ASCII; header names are ASCII tokens such as Content-Disposition")
                }
                line = min(end + 2, bytes.endIndex)
            }
        }
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
