import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one place that makes file-system calls; every failure becomes ``ArchiveError/io(path:operation:detail:)``.
enum FileIO {
    static func errnoError(_ path: String, _ operation: String, _ code: Int32 = errno) -> ArchiveError {
        .io(path: path, operation: operation, detail: String(cString: strerror(code)))
    }

    /// A small text file (config, spec, manifest): at most `maxBytes`, UTF-8.
    static func readText(_ url: URL, role: String, maxBytes: Int = 16 << 20) throws -> String {
        let data = try readData(url, role: role, maxBytes: maxBytes)
        guard let text = String(data: data, encoding: .utf8) else {
            throw ArchiveError.invalidInput(detail: "The \(role) \(url.path) is not UTF-8 text. Save it as UTF-8.")
        }
        return text
    }

    static func readData(_ url: URL, role: String, maxBytes: Int = 16 << 20) throws -> Data {
        let file = try InputFile(url, role: role)
        guard file.size <= Int64(maxBytes) else {
            throw ArchiveError.invalidInput(
                detail: "The \(role) \(url.path) is \(file.size) bytes; at most \(maxBytes) are read. Is it the right file?")
        }
        return Data(try file.read(count: Int(file.size), at: 0))
    }

    /// What is at `url`, without following a final symbolic link.
    enum Kind { case missing, file, directory, symbolicLink, other }

    static func kind(of url: URL) -> Kind {
        var info = stat()
        guard lstat(url.path, &info) == 0 else { return .missing }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return .file
        case S_IFDIR: return .directory
        case S_IFLNK: return .symbolicLink
        default: return .other
        }
    }

    /// Like ``kind(of:)`` but follows links.
    static func resolvedKind(of url: URL) -> Kind {
        var info = stat()
        guard stat(url.path, &info) == 0 else { return .missing }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return .file
        case S_IFDIR: return .directory
        default: return .other
        }
    }

    /// Creates one folder; an existing folder is fine, an existing file is ``UnsafeEntryReason/duplicate``.
    static func makeDirectory(_ url: URL) throws {
        if mkdir(url.path, 0o755) == 0 { return }
        let code = errno
        if code == EEXIST, kind(of: url) == .directory { return }
        throw errnoError(url.path, "create the folder", code)
    }

    static func createDirectories(_ url: URL) throws {
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            throw ArchiveError.io(path: url.path, operation: "create the folder", detail: error.localizedDescription)
        }
    }

    /// Atomically renames `source` to `destination` (same file system); fails if `destination` is a non-empty folder.
    static func rename(_ source: URL, to destination: URL) throws {
        guard systemRename(source.path, destination.path) == 0 else {
            throw errnoError(destination.path, "move \(source.lastPathComponent) to")
        }
    }

    /// Removes a file or folder tree; a missing one is fine.
    static func remove(_ url: URL) {
        guard kind(of: url) != .missing else { return }
        try? FileManager.default.removeItem(at: url)
    }

    /// The names in a folder, sorted, without `.` and `..`.
    static func contents(of url: URL) throws -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: url.path).sorted()
        } catch {
            throw ArchiveError.io(path: url.path, operation: "list", detail: error.localizedDescription)
        }
    }

    /// Marks the names of temporary siblings.
    static let temporaryMarker = ".partial-"

    /// A name for a temporary sibling that no one else picks: `.name.partial-<random>`.
    static func temporarySibling(of url: URL) -> URL {
        url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent)\(temporaryMarker)\(UUID().uuidString.prefix(8).lowercased())")
    }
}

/// A file opened for reading by offset.
final class InputFile {
    let path: String
    let size: Int64
    private let fd: Int32

    init(_ url: URL, role: String) throws {
        path = url.path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { throw ArchiveError.notFound(path: path, role: role) }
            throw FileIO.errnoError(path, "open the \(role)")
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let error = FileIO.errnoError(path, "read the \(role)")
            close(fd)
            throw error
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw ArchiveError.invalidInput(detail: "The \(role) \(path) is not a regular file.")
        }
        self.fd = fd
        self.size = Int64(info.st_size)
    }

    deinit { _ = systemClose(fd) }

    /// Reads up to `buffer.count` bytes at `offset`; fewer only at the end of the file.
    ///
    /// Offsets come from archives: one outside the file (as opened) reads nothing, and reading
    /// stops where `offset + done` would pass `Int64.max`, so a caller sees a short read, never a trap.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        guard offset >= 0, offset < size, let base = buffer.baseAddress else { return 0 }
        var done = 0
        while done < buffer.count {
            let (position, overflow) = offset.addingReportingOverflow(Int64(done))
            guard !overflow else { break }
            let n = pread(fd, base + done, buffer.count - done, off_t(position))
            if n < 0 {
                if errno == EINTR { continue }
                throw FileIO.errnoError(path, "read")
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Reads exactly `count` bytes at `offset`, or fewer at the end of the file.
    ///
    /// At most the bytes between `offset` and the end of the file (as opened) are allocated, so a
    /// count or offset read from an archive cannot ask for more memory than the file holds.
    func read(count: Int, at offset: Int64) throws -> [UInt8] {
        guard count > 0, offset >= 0, offset < size else { return [] }
        let wanted = Int(clamping: min(Int64(count), size - offset))
        var bytes = [UInt8](repeating: 0, count: wanted)
        let n = try bytes.withUnsafeMutableBytes { try read(into: $0, at: offset) }
        bytes.removeLast(wanted - n)
        return bytes
    }
}

/// A new file opened for writing; it never replaces an existing file or follows a link.
final class OutputFile {
    let path: String
    private var fd: Int32

    init(creating url: URL) throws {
        path = url.path
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileIO.errnoError(path, "create") }
    }

    deinit {
        if fd >= 0 { _ = systemClose(fd) }
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard let base = bytes.baseAddress else { return }
        var done = 0
        while done < bytes.count {
            let n = systemWrite(fd, base + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw FileIO.errnoError(path, "write")
            }
            done += n
        }
    }

    func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Closes the file, first flushing it to disk when `sync` is set.
    func close(sync: Bool = false) throws {
        guard fd >= 0 else { return }
        defer { fd = -1 }
        if sync, fsync(fd) != 0 {
            let error = FileIO.errnoError(path, "write")
            _ = systemClose(fd)
            throw error
        }
        guard systemClose(fd) == 0 else { throw FileIO.errnoError(path, "close") }
    }
}

// The C functions under names that methods called `write`, `close` and `rename` do not shadow.
private func systemWrite(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int { write(fd, bytes, count) }
private func systemClose(_ fd: Int32) -> Int32 { close(fd) }
private func systemRename(_ from: String, _ to: String) -> Int32 { rename(from, to) }
