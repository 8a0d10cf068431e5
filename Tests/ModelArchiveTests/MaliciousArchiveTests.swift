import Foundation
import Testing
import TestFixtures

@testable import ModelArchive

/// Archives built here as an attacker would build them. Each must be refused with the right
/// error, write nothing outside the store, and leave no partly unpacked folder behind.
@Suite struct MaliciousArchiveTests {
    private func zeros(_ count: Int) -> Data { Data(count: count) }

    // MARK: Paths

    @Test func zipParentTraversal() throws {
        let base = try TemporaryFolder()
        let archive = base.url.appendingPathComponent("evil.mar")
        try ZipBuilder.make(archive, [("ok.txt", .file(Data("fine".utf8))), ("../../evil", .file(Data("x".utf8)))])
        #expect(refuseOpening(base, archive) == .unsafeEntry(path: archive.path, entry: "../../evil", reason: .parentTraversal))
        #expect(!FileManager.default.fileExists(atPath: base.url.deletingLastPathComponent().appendingPathComponent("evil").path))
    }

    @Test func zipTraversalInTheMiddleAndBackslashes() throws {
        let base = try TemporaryFolder()
        for (index, name) in ["a/../../evil", "..\\..\\evil"].enumerated() {
            let archive = base.url.appendingPathComponent("evil\(index).mar")
            try ZipBuilder.make(archive, [(name, .file(Data("x".utf8)))])
            let error = expectArchiveError {
                _ = try ArchiveReader.open(archive, extractingInto: base.url.appendingPathComponent("store"))
            }
            #expect(error == .unsafeEntry(path: archive.path, entry: name, reason: .parentTraversal))
        }
        #expect(base.listing() == ["evil0.mar", "evil1.mar", "store"])
    }

    @Test func zipAbsolutePath() throws {
        let base = try TemporaryFolder()
        let target = base.url.appendingPathComponent("abs-evil").path
        let archive = base.url.appendingPathComponent("evil.mar")
        try ZipBuilder.make(archive, [(target, .file(Data("x".utf8)))])
        #expect(refuseOpening(base, archive) == .unsafeEntry(path: archive.path, entry: target, reason: .absolutePath))
        #expect(!FileManager.default.fileExists(atPath: target))
    }

    @Test func zipSymbolicLink() throws {
        let base = try TemporaryFolder()
        let archive = base.url.appendingPathComponent("evil.mar")
        try ZipBuilder.make(archive, [("link", .symlink("../../../etc")), ("link/passwd", .file(Data("x".utf8)))])
        #expect(refuseOpening(base, archive) == .unsafeEntry(path: archive.path, entry: "link", reason: .symbolicLink(target: "../../../etc")))
    }

    @Test func zipDuplicateEntries() throws {
        let base = try TemporaryFolder()
        let archive = base.url.appendingPathComponent("evil.mar")
        try ZipBuilder.make(archive, [("a.txt", .file(Data("one".utf8))), ("./a.txt", .file(Data("two".utf8)))])
        #expect(refuseOpening(base, archive) == .unsafeEntry(path: archive.path, entry: "./a.txt", reason: .duplicate))
    }

    @Test func tarTraversalAbsoluteAndLinks() throws {
        let base = try TemporaryFolder()
        let cases: [(String, [UInt8], UnsafeEntryReason)] = [
            ("../../evil", TarBuilder.entry("../../evil", Array("x".utf8)), .parentTraversal),
            ("/tmp/abs-evil", TarBuilder.entry("/tmp/abs-evil", Array("x".utf8)), .absolutePath),
            ("link", TarBuilder.entry("link", [], type: "2", link: "/etc"), .symbolicLink(target: "/etc")),
            ("hard", TarBuilder.entry("hard", [], type: "1", link: "/etc/passwd"), .hardLink(target: "/etc/passwd")),
            ("fifo", TarBuilder.entry("fifo", [], type: "6"), .specialFile),
        ]
        for (index, (entry, bytes, reason)) in cases.enumerated() {
            let tar = TarBuilder.entry("model/ok.txt", Array("fine".utf8)) + bytes + TarBuilder.end
            let archive = try base.file("evil\(index).tar.gz", bytes: try TarBuilder.gzip(tar))
            let error = expectArchiveError {
                _ = try ArchiveReader.open(archive, extractingInto: base.url.appendingPathComponent("store"))
            }
            #expect(error == .unsafeEntry(path: archive.path, entry: entry, reason: reason))
        }
        #expect(base.listing() == (0..<cases.count).map { "evil\($0).tar.gz" } + ["store"])
        #expect(!FileManager.default.fileExists(atPath: "/tmp/abs-evil"))
    }

    // MARK: Bombs and limits

    @Test func zipBombPastTheSizeLimit() throws {
        let base = try TemporaryFolder()
        let archive = base.url.appendingPathComponent("bomb.mar")
        try ZipBuilder.make(archive, [("bomb", .file(zeros(8 << 20)))])
        let size = try #require(FileManager.default.attributesOfItem(atPath: archive.path)[.size] as? Int)
        #expect(size < 64 << 10)
        let limits = ExtractionLimits(maxTotalBytes: 1 << 20)
        #expect(refuseOpening(base, archive, limits: limits) == .tooLarge(path: archive.path, entry: "bomb", limit: 1 << 20))
    }

    @Test func zipBombWithALyingHeader() throws {
        let base = try TemporaryFolder()
        let archive = base.url.appendingPathComponent("bomb.mar")
        try ZipBuilder.make(archive, [("bomb", .file(zeros(8 << 20)))])
        var bytes = [UInt8](try Data(contentsOf: archive))
        let record = try #require(ZipBuilder.centralRecords(bytes).first)
        ZipBuilder.put32(1000, into: &bytes, at: record + 24)
        try Data(bytes).write(to: archive)
        let error = refuseOpening(base, archive)
        #expect(error == .corrupt(path: archive.path, detail: "entry \"bomb\" unpacks to more than the 1000 bytes it declares"))
    }

    @Test func compressionRatioGuard() throws {
        let base = try TemporaryFolder()
        let archive = base.url.appendingPathComponent("bomb.mar")
        try ZipBuilder.make(archive, [("bomb", .file(zeros(8 << 20)))])
        let limits = ExtractionLimits(maxCompressionRatio: 100)
        #expect(refuseOpening(base, archive, limits: limits) == .compressionRatioExceeded(path: archive.path, entry: "bomb", limit: 100))
    }

    @Test func gzipBombPastTheSizeLimit() throws {
        let base = try TemporaryFolder()
        let tar = TarBuilder.entry("bomb", [UInt8](repeating: 0, count: 8 << 20)) + TarBuilder.end
        let archive = try base.file("bomb.tar.gz", bytes: try TarBuilder.gzip(tar))
        let limits = ExtractionLimits(maxTotalBytes: 1 << 20)
        #expect(refuseOpening(base, archive, limits: limits) == .tooLarge(path: archive.path, entry: "bomb", limit: 1 << 20))
        #expect(refuseOpening(base, archive, limits: ExtractionLimits(maxCompressionRatio: 100))
            == .compressionRatioExceeded(path: archive.path, entry: "bomb", limit: 100))
    }

    @Test func tooManyEntries() throws {
        let base = try TemporaryFolder()
        let zipArchive = base.url.appendingPathComponent("many.mar")
        try ZipBuilder.make(zipArchive, (0..<20).map { ("f\($0)", .file(Data("x".utf8))) })
        let limits = ExtractionLimits(maxEntryCount: 10)
        #expect(refuseOpening(base, zipArchive, limits: limits) == .tooManyEntries(path: zipArchive.path, limit: 10))
        try FileManager.default.removeItem(at: zipArchive)

        let tar = (0..<20).flatMap { TarBuilder.entry("f\($0)", Array("x".utf8)) } + TarBuilder.end
        let tarArchive = try base.file("many.tar.gz", bytes: try TarBuilder.gzip(tar))
        #expect(refuseOpening(base, tarArchive, limits: limits) == .tooManyEntries(path: tarArchive.path, limit: 10))
    }

    @Test func overlappingZipEntries() throws {
        let base = try TemporaryFolder()
        let archive = base.url.appendingPathComponent("overlap.mar")
        try ZipBuilder.make(archive, [("a", .file(zeros(1000))), ("b", .file(zeros(1000)))])
        var bytes = [UInt8](try Data(contentsOf: archive))
        let records = ZipBuilder.centralRecords(bytes)
        try #require(records.count == 2)
        ZipBuilder.put32(0, into: &bytes, at: records[1] + 42)
        try Data(bytes).write(to: archive)
        #expect(refuseOpening(base, archive) == .unsafeEntry(path: archive.path, entry: "b", reason: .overlappingData))
    }

    @Test func interruptedExtractionsAreSweptAway() throws {
        let store = try TemporaryFolder()
        let stale = store.url.appendingPathComponent(".unet-1234abcd.partial-deadbeef")
        try FileManager.default.createDirectory(at: stale.appendingPathComponent("sub"), withIntermediateDirectories: true)
        _ = try store.file("unet-1234abcd/model.pt", "kept")
        #expect(ArchiveReader.removeInterruptedExtractions(in: store.url).map(\.lastPathComponent) == [stale.lastPathComponent])
        #expect(store.listing() == ["unet-1234abcd", "unet-1234abcd/model.pt"])
    }

    // MARK: Damaged data

    @Test func truncatedZip() throws {
        let base = try TemporaryFolder()
        let bytes = try Fixtures.bytes("archives/tma/unet_tiny.mar")
        let archive = try base.file("cut.mar", bytes: Array(bytes.prefix(bytes.count / 2)))
        let error = refuseOpening(base, archive)
        #expect(error == .corrupt(path: archive.path,
                                  detail: "its end-of-central-directory record is missing (the file is cut short or is not a zip)"))
    }

    @Test func zipWithDamagedData() throws {
        let base = try TemporaryFolder()
        let archive = base.url.appendingPathComponent("damaged.mar")
        try ZipBuilder.make(archive, [("a.txt", .file(Data(repeating: 65, count: 100)))], compressed: false)
        var bytes = [UInt8](try Data(contentsOf: archive))
        bytes[30 + "a.txt".utf8.count + 50] ^= 0xFF
        try Data(bytes).write(to: archive)
        #expect(refuseOpening(base, archive) == .corrupt(path: archive.path, detail: "entry \"a.txt\" fails its CRC-32 check"))
    }

    @Test func truncatedGzip() throws {
        let base = try TemporaryFolder()
        let bytes = try Fixtures.bytes("archives/tma/unet_tiny.tar.gz")
        let half = try base.file("half.tar.gz", bytes: Array(bytes.prefix(bytes.count / 2)))
        let error = refuseOpening(base, half)
        guard case .corrupt(_, let detail) = error else { Issue.record("\(String(describing: error))"); return }
        #expect(detail.contains("cut short"))
        try FileManager.default.removeItem(at: half)

        let trailer = try base.file("trailer.tar.gz", bytes: Array(bytes.dropLast(4)))
        #expect(refuseOpening(base, trailer) == .corrupt(path: trailer.path, detail: "the gzip data is cut short"))
    }

    @Test func damagedGzip() throws {
        let base = try TemporaryFolder()
        var bytes = try Fixtures.bytes("archives/tma/unet_tiny.tar.gz")
        for index in stride(from: 100, to: 400, by: 7) { bytes[index] ^= 0x5A }
        let archive = try base.file("damaged.tar.gz", bytes: bytes)
        guard case .corrupt = refuseOpening(base, archive) else { Issue.record("expected corrupt"); return }
    }
}
