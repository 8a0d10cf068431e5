import CompressNIO
import Foundation
import NIOCore
import Testing
import ZIPFoundation

@testable import ModelArchive

/// A fresh folder under the system temporary folder, removed when the value goes away.
final class TemporaryFolder {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("ModelArchiveTests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    func file(_ name: String, _ contents: String) throws -> URL {
        let file = url.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(contents.utf8).write(to: file)
        return file
    }

    func file(_ name: String, bytes: [UInt8]) throws -> URL {
        let file = url.appendingPathComponent(name)
        try Data(bytes).write(to: file)
        return file
    }

    /// Every path below the folder, relative, sorted, hidden ones included.
    func listing(_ sub: String = "") -> [String] {
        let root = sub.isEmpty ? url : url.appendingPathComponent(sub)
        let enumerator = FileManager.default.enumerator(atPath: root.path)
        var paths: [String] = []
        while let path = enumerator?.nextObject() as? String { paths.append(path) }
        return paths.sorted()
    }
}

/// Builds zips with arbitrary entry paths and types, as an attacker would.
enum ZipBuilder {
    enum Kind { case file(Data), symlink(String), directory }

    static func make(_ url: URL, _ entries: [(String, Kind)], compressed: Bool = true) throws {
        let archive = try Archive(url: url, accessMode: .create)
        for (path, kind) in entries {
            switch kind {
            case .file(let data):
                try archive.addEntry(with: path, type: .file, uncompressedSize: Int64(data.count),
                                     compressionMethod: compressed ? .deflate : .none) { position, size in
                    data.subdata(in: Int(position)..<Int(position) + size)
                }
            case .symlink(let target):
                let data = Data(target.utf8)
                try archive.addEntry(with: path, type: .symlink, uncompressedSize: Int64(data.count)) { position, size in
                    data.subdata(in: Int(position)..<Int(position) + size)
                }
            case .directory:
                try archive.addEntry(with: path, type: .directory, uncompressedSize: Int64(0)) { (_: Int64, _: Int) in Data() }
            }
        }
    }

    /// Offsets of the central-directory records, in order.
    static func centralRecords(_ bytes: [UInt8]) -> [Int] {
        (0..<(bytes.count - 4)).filter { bytes[$0] == 0x50 && bytes[$0 + 1] == 0x4B && bytes[$0 + 2] == 1 && bytes[$0 + 3] == 2 }
    }

    static func put32(_ value: UInt32, into bytes: inout [UInt8], at offset: Int) {
        for index in 0..<4 { bytes[offset + index] = UInt8((value >> (8 * UInt32(index))) & 0xFF) }
    }

    /// Little-endian bytes of `value`, `width` of them.
    static func le(_ value: UInt64, _ width: Int) -> [UInt8] {
        (0..<width).map { UInt8((value >> (8 * UInt64($0))) & 0xFF) }
    }

    /// One stored entry in a zip written byte by byte, so that any field (offsets, ZIP64 extras,
    /// made-by host and mode) can hold what an attacker writes.
    struct RawEntry {
        var name: String
        var data: [UInt8]
        /// Version made by; `3 << 8` is Unix, whose mode is the external attributes' high 16 bits.
        var madeBy: UInt16 = 3 << 8 | 20
        var externalAttributes: UInt32 = 0o100644 << 16
        /// The central directory's local-header offset field; `nil` writes the real offset.
        var offsetField: UInt32?
        /// The central directory record's extra field.
        var extra: [UInt8] = []
    }

    /// A zip of stored entries, with the end-of-central-directory record last (no comment).
    static func raw(_ entries: [RawEntry]) -> [UInt8] {
        var bytes: [UInt8] = []
        var central: [UInt8] = []
        for entry in entries {
            let name = Array(entry.name.utf8)
            var crc = CRC32()
            entry.data.withUnsafeBytes { crc.update($0) }
            let offset = UInt64(bytes.count)
            let sizes = le(UInt64(crc.value), 4) + le(UInt64(entry.data.count), 4) + le(UInt64(entry.data.count), 4)
            bytes += le(0x0403_4B50, 4) + le(20, 2) + le(0, 2) + le(0, 2) + le(0, 4) + sizes
                + le(UInt64(name.count), 2) + le(0, 2) + name + entry.data
            central += le(0x0201_4B50, 4) + le(UInt64(entry.madeBy), 2) + le(20, 2) + le(0, 2) + le(0, 2) + le(0, 4) + sizes
                + le(UInt64(name.count), 2) + le(UInt64(entry.extra.count), 2) + le(0, 2) + le(0, 2) + le(0, 2)
                + le(UInt64(entry.externalAttributes), 4) + le(UInt64(entry.offsetField ?? UInt32(offset)), 4)
                + name + entry.extra
        }
        let directoryOffset = UInt64(bytes.count)
        return bytes + central + le(0x0605_4B50, 4) + le(0, 2) + le(0, 2) + le(UInt64(entries.count), 2)
            + le(UInt64(entries.count), 2) + le(UInt64(central.count), 4) + le(directoryOffset, 4) + le(0, 2)
    }
}

/// Builds tar streams byte by byte, so any header an attacker writes can be written.
enum TarBuilder {
    /// A ustar header; `sizeField` replaces the octal size with raw bytes (GNU base-256: `0x80` first).
    static func header(
        _ name: String, size: Int = 0, type: Character = "0", link: String = "", sizeField: [UInt8]? = nil
    ) -> [UInt8] {
        var block = [UInt8](repeating: 0, count: 512)
        func put(_ string: String, at offset: Int) {
            for (index, byte) in string.utf8.enumerated() { block[offset + index] = byte }
        }
        put(name, at: 0)
        put("0000644", at: 100)
        put("0000000", at: 108)
        put("0000000", at: 116)
        put(String(format: "%011o", size), at: 124)
        if let sizeField { block.replaceSubrange(124..<(124 + sizeField.count), with: sizeField) }
        put("00000000000", at: 136)
        put("        ", at: 148)
        block[156] = type.asciiValue!
        put(link, at: 157)
        put("ustar", at: 257)
        put("00", at: 263)
        let sum = block.reduce(0) { $0 + Int($1) }
        put(String(format: "%06o", sum), at: 148)
        block[154] = 0
        block[155] = 0x20
        return block
    }

    static func entry(_ name: String, _ contents: [UInt8], type: Character = "0", link: String = "") -> [UInt8] {
        header(name, size: contents.count, type: type, link: link) + contents
            + [UInt8](repeating: 0, count: (512 - contents.count % 512) % 512)
    }

    static let end = [UInt8](repeating: 0, count: 1024)

    /// A pax record, `"<length> <key>=<value>\n"`, the length counting the whole record.
    static func paxRecord(_ key: String, _ value: String) -> String {
        let body = " \(key)=\(value)\n"
        var length = body.utf8.count + 1
        while String(length).utf8.count + body.utf8.count != length { length += 1 }
        return "\(length)\(body)"
    }

    static func gzip(_ bytes: [UInt8]) throws -> [UInt8] {
        var buffer = ByteBuffer(bytes: bytes)
        var compressed = try buffer.compress(with: .gzip())
        return compressed.readBytes(length: compressed.readableBytes) ?? []
    }
}

/// Runs `body`, expecting an ``ArchiveError``, and returns it.
func expectArchiveError(
    _ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation
) -> ArchiveError? {
    do {
        try body()
        Issue.record("expected an ArchiveError, got success", sourceLocation: sourceLocation)
    } catch let error as ArchiveError {
        return error
    } catch {
        Issue.record("expected an ArchiveError, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// Opens `archive` (inside `base`) into `base/store`, expecting an ``ArchiveError``; nothing may
/// be left in the store (no partly unpacked folder), nor anywhere else in `base`.
func refuseOpening(
    _ base: TemporaryFolder, _ archive: URL, limits: ExtractionLimits = .default,
    sourceLocation: SourceLocation = #_sourceLocation
) -> ArchiveError? {
    let before = base.listing().filter { !$0.hasPrefix("store") }
    let error = expectArchiveError({
        _ = try ArchiveReader.open(archive, extractingInto: base.url.appendingPathComponent("store"), limits: limits)
    }, sourceLocation: sourceLocation)
    let after = base.listing()
    #expect(after.filter { $0.hasPrefix("store/") }.isEmpty, "left in the store", sourceLocation: sourceLocation)
    #expect(after.filter { !$0.hasPrefix("store") } == before, "written outside the store", sourceLocation: sourceLocation)
    return error
}
