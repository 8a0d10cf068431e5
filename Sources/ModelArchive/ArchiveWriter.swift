import Foundation
import ZIPFoundation

/// Writes a ``ModelPackage`` as torch-model-archiver does: `<name>.mar` (zip, entries at the root,
/// `MAR-INF/MANIFEST.json` last), `<name>.tar.gz` (entries under `<name>/`) or a folder `<name>/`.
///
/// Files are streamed in chunks, so memory does not grow with their size. The output is written
/// under a hidden temporary name and renamed into place when complete.
public enum ArchiveWriter {
    /// Bytes read from a source file per step.
    static let chunkSize = 1 << 20

    /// Writes the archive into `exportPath` and returns its URL.
    /// - Parameters:
    ///   - package: What to store.
    ///   - exportPath: An existing folder.
    ///   - format: `.zip` (a `.mar`), `.tarGzip` or `.folder`.
    ///   - compressed: For `.zip`: deflate entries (torch-model-archiver's `default`) or store them (`zip-store`).
    ///   - overwrite: Replace an existing output (`--force`); otherwise it is an error.
    ///   - progress: Called as bytes are stored.
    /// - Throws: ``ArchiveError``.
    @discardableResult
    public static func write(
        _ package: ModelPackage, to exportPath: URL, format: ArchiveFormat, compressed: Bool = true,
        overwrite: Bool = false, progress: ((ArchiveProgress) -> Void)? = nil
    ) throws -> URL {
        guard FileIO.resolvedKind(of: exportPath) == .directory else {
            throw ArchiveError.invalidInput(
                detail: "The export path \(exportPath.path) is not a folder. Create it, or point --export-path at an existing folder.")
        }
        let name = package.name.rawValue
        let output: URL
        switch format {
        case .zip: output = exportPath.appendingPathComponent(name + ".mar")
        case .tarGzip: output = exportPath.appendingPathComponent(name + ".tar.gz")
        case .folder: output = exportPath.appendingPathComponent(name)
        case .tar:
            throw ArchiveError.invalidInput(detail: "Writing an uncompressed tar is not supported; use tgz.")
        }
        let existing = FileIO.kind(of: output)
        if existing != .missing, !overwrite { throw ArchiveError.outputExists(path: output.path) }

        let entries = package.entries + [PackageEntry(path: Manifest.path, source: .bytes(Data(package.manifest.jsonText.utf8)))]
        let meter = try ProgressMeter(entries: entries, report: progress)
        let temporary = FileIO.temporarySibling(of: output)
        do {
            switch format {
            case .zip: try writeZip(entries, to: temporary, compressed: compressed, meter: meter)
            case .tarGzip: try writeTarGzip(entries, to: temporary, prefix: name + "/", meter: meter)
            case .folder, .tar: try writeFolder(entries, to: temporary, meter: meter)
            }
            try replace(output, with: temporary, existing: existing)
        } catch {
            FileIO.remove(temporary)
            throw error
        }
        return output
    }

    /// Moves the finished output into place; an existing output is replaced only now.
    private static func replace(_ output: URL, with temporary: URL, existing: FileIO.Kind) throws {
        if existing == .directory || (existing != .missing && FileIO.kind(of: temporary) == .directory) {
            let old = FileIO.temporarySibling(of: output)
            try FileIO.rename(output, to: old)
            try FileIO.rename(temporary, to: output)
            FileIO.remove(old)
        } else {
            try FileIO.rename(temporary, to: output)
        }
    }

    // MARK: Formats

    private static func writeZip(_ entries: [PackageEntry], to url: URL, compressed: Bool, meter: ProgressMeter) throws {
        let archive: Archive
        do {
            archive = try Archive(url: url, accessMode: .create)
        } catch {
            throw ArchiveError.io(path: url.path, operation: "create", detail: "\(error)")
        }
        for entry in entries {
            let reader = try EntryReader(entry)
            do {
                try archive.addEntry(
                    with: entry.path, type: .file, uncompressedSize: reader.size, modificationDate: reader.modified,
                    permissions: 0o644, compressionMethod: compressed ? .deflate : .none, bufferSize: chunkSize
                ) { position, size in
                    let data = try reader.read(count: size, at: position)
                    meter.advance(entry.path, by: data.count)
                    return data
                }
            } catch let error as ArchiveError {
                throw error
            } catch {
                throw ArchiveError.io(path: url.path, operation: "add \(entry.path) to", detail: "\(error)")
            }
        }
    }

    private static func writeTarGzip(_ entries: [PackageEntry], to url: URL, prefix: String, meter: ProgressMeter) throws {
        let writer = try TarGzipWriter(creating: url)
        for entry in entries {
            let reader = try EntryReader(entry)
            try writer.beginFile(path: prefix + entry.path, size: reader.size, modified: reader.modified)
            var offset: Int64 = 0
            while offset < reader.size {
                let data = try reader.read(count: Int(min(Int64(chunkSize), reader.size - offset)), at: offset)
                try writer.append(data)
                offset += Int64(data.count)
                meter.advance(entry.path, by: data.count)
            }
            try writer.endFile()
        }
        try writer.finish()
    }

    private static func writeFolder(_ entries: [PackageEntry], to url: URL, meter: ProgressMeter) throws {
        try FileIO.makeDirectory(url)
        for entry in entries {
            let components = entry.path.split(separator: "/").map(String.init)
            var folder = url
            for component in components.dropLast() {
                folder.appendPathComponent(component)
                try FileIO.makeDirectory(folder)
            }
            let file = try OutputFile(creating: folder.appendingPathComponent(components.last!))
            let reader = try EntryReader(entry)
            var offset: Int64 = 0
            while offset < reader.size {
                let data = try reader.read(count: Int(min(Int64(chunkSize), reader.size - offset)), at: offset)
                try data.withUnsafeBytes { try file.write($0) }
                offset += Int64(data.count)
                meter.advance(entry.path, by: data.count)
            }
            try file.close(sync: true)
        }
    }
}

/// Reads one entry's bytes by offset, from a file or from memory.
private struct EntryReader {
    let size: Int64
    let modified: Date
    private let file: InputFile?
    private let bytes: Data?

    init(_ entry: PackageEntry) throws {
        switch entry.source {
        case .file(let url):
            let file = try InputFile(url, role: "file \(entry.path)")
            self.file = file
            self.bytes = nil
            self.size = file.size
            let attributes = try? FileManager.default.attributesOfItem(atPath: url.path)
            self.modified = attributes?[.modificationDate] as? Date ?? Date()
        case .bytes(let data):
            self.file = nil
            self.bytes = data
            self.size = Int64(data.count)
            self.modified = Date()
        }
    }

    func read(count: Int, at offset: Int64) throws -> Data {
        if let file {
            let data = Data(try file.read(count: count, at: offset))
            guard data.count == count else {
                throw ArchiveError.io(path: file.path, operation: "read", detail: "the file shrank while it was archived")
            }
            return data
        }
        guard let bytes, let skip = Int(exactly: offset), skip >= 0, skip <= bytes.count else { return Data() }
        let start = bytes.startIndex + skip
        return Data(bytes[start..<(start + min(count, bytes.count - skip))])
    }
}

/// Sums bytes stored across entries and reports them.
private final class ProgressMeter {
    private let total: Int64
    private var done: Int64 = 0
    private let report: ((ArchiveProgress) -> Void)?

    init(entries: [PackageEntry], report: ((ArchiveProgress) -> Void)?) throws {
        var total: Int64 = 0
        for entry in entries {
            switch entry.source {
            case .file(let url): total += try InputFile(url, role: "file \(entry.path)").size
            case .bytes(let data): total += Int64(data.count)
            }
        }
        self.total = total
        self.report = report
    }

    func advance(_ entry: String, by count: Int) {
        done += Int64(count)
        report?(ArchiveProgress(entry: entry, bytesDone: done, bytesTotal: total))
    }
}
