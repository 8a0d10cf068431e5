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
}

/// Builds tar streams byte by byte, so any header an attacker writes can be written.
enum TarBuilder {
    static func header(_ name: String, size: Int = 0, type: Character = "0", link: String = "") -> [UInt8] {
        var block = [UInt8](repeating: 0, count: 512)
        func put(_ string: String, at offset: Int) {
            for (index, byte) in string.utf8.enumerated() { block[offset + index] = byte }
        }
        put(name, at: 0)
        put("0000644", at: 100)
        put("0000000", at: 108)
        put("0000000", at: 116)
        put(String(format: "%011o", size), at: 124)
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
