import Foundation

/// Replaces a file atomically with contents only its owner can read.
///
/// The bytes go to a temporary file in the same folder, created with mode 0600 from the start
/// (`O_CREAT | O_EXCL`, so never readable by others, not even for an instant), written and
/// fsynced, then renamed over the target; the folder is fsynced so the rename survives a power
/// cut. A crash at any instant leaves either the old or the new file, never a torn one.
public enum AtomicFile {
    /// Writes `data` to `file` as described above.
    /// - Throws: ``AtomicFileError`` naming the file and the system's reason.
    public static func write(_ data: Data, to file: URL) throws(AtomicFileError) {
        let directory = file.deletingLastPathComponent()
        let temporary = directory.appendingPathComponent(".\(file.lastPathComponent)-\(UUID().uuidString).tmp")
        let descriptor = open(temporary.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw AtomicFileError(path: temporary.path, operation: "create", errno: errno) }
        var written = 0
        let failure: Int32? = data.withUnsafeBytes { buffer -> Int32? in
            while written < buffer.count {
                let result = Foundation.write(descriptor, buffer.baseAddress.map { $0 + written }, buffer.count - written)
                if result < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                written += result
            }
            return fsync(descriptor) == 0 ? nil : errno
        }
        close(descriptor)
        if let failure {
            unlink(temporary.path)
            throw AtomicFileError(path: temporary.path, operation: "write", errno: failure)
        }
        guard rename(temporary.path, file.path) == 0 else {
            let code = errno
            unlink(temporary.path)
            throw AtomicFileError(path: file.path, operation: "replace", errno: code)
        }
        let folder = open(directory.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if folder >= 0 {
            fsync(folder)
            close(folder)
        }
    }
}

/// A file could not be written.
public struct AtomicFileError: Error, Sendable, CustomStringConvertible {
    public var path: String
    /// What failed: create, write, replace.
    public var operation: String
    /// The system's error number (`ENOSPC` when the disk is full).
    public var code: Int32

    init(path: String, operation: String, errno code: Int32) {
        self.path = path
        self.operation = operation
        self.code = code
    }

    public var description: String { "cannot \(operation) \(path): \(String(cString: strerror(code)))" }
}
