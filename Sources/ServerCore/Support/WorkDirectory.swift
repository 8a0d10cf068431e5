import Foundation
import Logging

/// The folder a server process unpacks archives into: `serve-<pid>` in the temporary folder,
/// private to the user (0700), removed at stop. A server killed with `kill -9` cannot remove
/// its own, so each start sweeps the folders of server processes that no longer exist.
public enum WorkDirectory {
    /// The folder of the server process `pid` inside `parent`.
    public static func folder(in parent: URL, pid: Int32 = getpid()) -> URL {
        parent.appendingPathComponent("serve-\(pid)", isDirectory: true)
    }

    /// Removes the `serve-<pid>` folders in `parent` whose process is gone, then creates
    /// `folder` afresh with mode 0700 (a leftover of the same pid, from a process long gone, is
    /// replaced).
    /// - Returns: the folders that were swept.
    @discardableResult
    public static func prepare(_ folder: URL, logger: Logger) throws -> [URL] {
        let parent = folder.deletingLastPathComponent()
        let swept = sweepAbandoned(in: parent, keeping: folder)
        for abandoned in swept { logger.info("removed \(abandoned.path), left by a server process that no longer runs") }
        if FileManager.default.fileExists(atPath: folder.path) {
            try FileManager.default.removeItem(at: folder)
        }
        guard mkdir(folder.path, 0o700) == 0 else {
            throw WorkDirectoryError(path: folder.path, reason: String(cString: strerror(errno)))
        }
        return swept
    }

    /// Removes the `serve-<pid>` folders in `parent`, other than `keeping`, that belong to this
    /// user and whose process does not exist.
    static func sweepAbandoned(in parent: URL, keeping: URL) -> [URL] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: parent.path) else { return [] }
        var swept: [URL] = []
        for name in names where name.hasPrefix("serve-") {
            guard let pid = Int32(name.dropFirst("serve-".count)), pid > 0 else { continue }
            let folder = parent.appendingPathComponent(name, isDirectory: true)
            guard folder.standardizedFileURL.path != keeping.standardizedFileURL.path else { continue }
            var info = stat()
            guard lstat(folder.path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR, info.st_uid == getuid() else { continue }
            // kill(pid, 0) fails with ESRCH only when no such process exists.
            guard kill(pid, 0) != 0, errno == ESRCH else { continue }
            if (try? FileManager.default.removeItem(at: folder)) != nil { swept.append(folder) }
        }
        return swept
    }
}

/// The work folder could not be created.
public struct WorkDirectoryError: Error, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "cannot create the work folder \(path): \(reason)" }
}
