import CompressNIO
import Foundation
import NIOCore

/// Writes a gzip-compressed tar as a stream: ustar headers, pax records for long or non-ASCII
/// paths and sizes of 8 GiB or more, data compressed through a fixed window.
final class TarGzipWriter {
    private let output: OutputFile
    private let compressor: ZlibCompressor
    private var window: ByteBuffer
    private var input: ByteBuffer
    private var remaining: Int64 = 0
    private var padding = 0

    init(creating url: URL) throws {
        output = try OutputFile(creating: url)
        do {
            compressor = try ZlibCompressor(algorithm: .gzip)
        } catch {
            throw ArchiveError.io(path: url.path, operation: "compress", detail: "\(error)")
        }
        window = ByteBufferAllocator().buffer(capacity: 256 << 10)
        input = ByteBufferAllocator().buffer(capacity: 1 << 20)
    }

    func beginFile(path: String, size: Int64, modified: Date) throws {
        let mtime = Int64(max(0, modified.timeIntervalSince1970))
        var pax: [(String, String)] = []
        let pathBytes = Array(path.utf8)
        var name = pathBytes
        var prefix: [UInt8] = []
        if pathBytes.count > 100 || !pathBytes.allSatisfy({ $0 < 0x80 }) {
            if let split = Self.ustarSplit(pathBytes) {
                (prefix, name) = split
            } else {
                pax.append(("path", path))
                name = Array(pathBytes.suffix(100).drop(while: { $0 & 0xC0 == 0x80 }))
            }
        }
        if size >= 0o77777777777 { pax.append(("size", String(size))) }
        if !pax.isEmpty {
            let records = Self.paxRecords(pax)
            try write(Self.header(name: Array("PaxHeaders/".utf8.prefix(100)), prefix: [], size: Int64(records.count),
                                  mtime: mtime, type: UInt8(ascii: "x")))
            try write(records)
            try write([UInt8](repeating: 0, count: (512 - records.count % 512) % 512))
        }
        try write(Self.header(name: name, prefix: prefix, size: size < 0o77777777777 ? size : 0, mtime: mtime,
                              type: UInt8(ascii: "0")))
        remaining = size
        padding = Int((512 - size % 512) % 512)
    }

    func append(_ data: Data) throws {
        remaining -= Int64(data.count)
        try write(data)
    }

    func endFile() throws {
        precondition(remaining == 0, "tar entry written with the wrong size")
        try write([UInt8](repeating: 0, count: padding))
    }

    /// Writes the end-of-archive blocks and the gzip trailer, and closes the file.
    func finish() throws {
        try write([UInt8](repeating: 0, count: 1024))
        try compress(flush: .finish)
        try output.close(sync: true)
    }

    private func write<Bytes: Sequence>(_ bytes: Bytes) throws where Bytes.Element == UInt8 {
        input.writeBytes(bytes)
        if input.readableBytes >= 512 << 10 { try compress(flush: .no) }
    }

    private func compress(flush: CompressNIOFlush) throws {
        while true {
            var full = false
            do {
                try compressor.deflate(from: &input, to: &window, flush: flush)
            } catch let error as CompressNIOError where error == .bufferOverflow {
                full = true
            } catch {
                throw ArchiveError.io(path: output.path, operation: "compress", detail: "\(error)")
            }
            try window.withUnsafeReadableBytes { try output.write($0) }
            window.clear()
            if full || input.readableBytes > 0 { continue }
            break
        }
        input.clear()
    }

    /// Splits a path into ustar's prefix (≤ 155 bytes) and name (≤ 100) at a `/`, for ASCII paths.
    private static func ustarSplit(_ path: [UInt8]) -> (prefix: [UInt8], name: [UInt8])? {
        guard path.allSatisfy({ $0 < 0x80 }), path.count <= 256 else { return nil }
        for index in path.indices where path[index] == UInt8(ascii: "/") {
            let prefix = Array(path[..<index])
            let name = Array(path[(index + 1)...])
            if prefix.count <= 155, name.count <= 100, !name.isEmpty { return (prefix, name) }
        }
        return nil
    }

    /// pax records `"<length> <key>=<value>\n"`, where the length counts the whole record.
    private static func paxRecords(_ pairs: [(String, String)]) -> [UInt8] {
        var result: [UInt8] = []
        for (key, value) in pairs {
            let body = " \(key)=\(value)\n"
            var length = body.utf8.count + 1
            while String(length).utf8.count + body.utf8.count != length { length += 1 }
            result += Array((String(length) + body).utf8)
        }
        return result
    }

    private static func header(name: [UInt8], prefix: [UInt8], size: Int64, mtime: Int64, type: UInt8) -> [UInt8] {
        var block = [UInt8](repeating: 0, count: 512)
        func put(_ bytes: [UInt8], at offset: Int) {
            for (index, byte) in bytes.enumerated() { block[offset + index] = byte }
        }
        func octal(_ value: Int64, width: Int) -> [UInt8] {
            let digits = String(value, radix: 8)
            return Array((String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits).utf8) + [0]
        }
        put(Array(name.prefix(100)), at: 0)
        put(octal(0o644, width: 8), at: 100)
        put(octal(0, width: 8), at: 108)
        put(octal(0, width: 8), at: 116)
        put(octal(size, width: 12), at: 124)
        put(octal(mtime, width: 12), at: 136)
        put(Array(repeating: UInt8(ascii: " "), count: 8), at: 148)
        block[156] = type
        put(Array("ustar\u{0}00".utf8), at: 257)
        put(Array(prefix.prefix(155)), at: 345)
        let sum = block.reduce(0) { $0 + Int64($1) }
        put(octal(sum, width: 7) + [UInt8(ascii: " ")], at: 148)
        return block
    }
}
