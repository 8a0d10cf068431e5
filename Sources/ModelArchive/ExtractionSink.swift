import Foundation

/// Writes the entries of one archive below a fresh folder, refusing any entry that would leave
/// it, clash with another, or pass the limits. Links are never created, so every path below the
/// folder is a real folder made here and no write can be redirected.
final class ExtractionSink {
    let archivePath: String
    let limits: ExtractionLimits
    let root: URL
    private(set) var entryCount = 0
    private(set) var totalBytes: Int64 = 0
    private var files: Set<String> = []
    private var directories: Set<String> = []

    init(archivePath: String, root: URL, limits: ExtractionLimits) {
        self.archivePath = archivePath
        self.root = root
        self.limits = limits
    }

    /// Counts one more entry against ``ExtractionLimits/maxEntryCount``.
    func countEntry() throws {
        entryCount += 1
        if entryCount > limits.maxEntryCount {
            throw ArchiveError.tooManyEntries(path: archivePath, limit: limits.maxEntryCount)
        }
    }

    /// The safe components of an entry name, or the refusal naming it.
    func components(of entry: String) throws -> [String] {
        do {
            return try EntryPath.components(of: entry)
        } catch {
            throw refuse(entry, error.reason)
        }
    }

    func refuse(_ entry: String, _ reason: UnsafeEntryReason) -> ArchiveError {
        .unsafeEntry(path: archivePath, entry: entry, reason: reason)
    }

    /// Creates a folder entry (and its parents).
    func makeDirectory(_ components: [String], entry: String) throws {
        guard !components.isEmpty else { return }
        try makeParents(of: components + ["_"], entry: entry)
    }

    /// Creates a new, empty file for an entry; its parents are created as needed.
    func createFile(_ components: [String], entry: String) throws -> OutputFile {
        guard !components.isEmpty else { throw refuse(entry, .invalidName) }
        try makeParents(of: components, entry: entry)
        let path = components.joined(separator: "/")
        guard !files.contains(path), !directories.contains(path) else { throw refuse(entry, .duplicate) }
        files.insert(path)
        return try OutputFile(creating: url(of: components))
    }

    /// Counts bytes about to be written against ``ExtractionLimits/maxTotalBytes``.
    func account(_ count: Int, entry: String) throws {
        try account(Int64(count), entry: entry)
    }

    /// Counts bytes an entry declares or writes against ``ExtractionLimits/maxTotalBytes``; a count
    /// read from an archive may be anything, so a negative one or a sum past `Int64.max` is refused too.
    func account(_ count: Int64, entry: String) throws {
        let (total, overflow) = totalBytes.addingReportingOverflow(count)
        guard count >= 0, !overflow, total <= limits.maxTotalBytes else {
            throw ArchiveError.tooLarge(path: archivePath, entry: entry, limit: limits.maxTotalBytes)
        }
        totalBytes = total
    }

    /// Throws ``ArchiveError/tooLarge(path:entry:limit:)`` when a size an archive declares for one
    /// entry passes ``ExtractionLimits/maxTotalBytes`` on its own; checked before any arithmetic on it.
    func checkDeclaredSize(_ size: Int64, entry: String) throws {
        guard size >= 0, size <= limits.maxTotalBytes else {
            throw ArchiveError.tooLarge(path: archivePath, entry: entry, limit: limits.maxTotalBytes)
        }
    }

    /// Throws when `produced` bytes from `consumed` compressed ones pass the ratio limit.
    func checkRatio(produced: Int64, consumed: Int64, entry: String) throws {
        guard produced > limits.compressionRatioThreshold else { return }
        let (allowed, overflow) = max(consumed, 1).multipliedReportingOverflow(by: Int64(limits.maxCompressionRatio))
        if !overflow, produced > allowed {
            throw ArchiveError.compressionRatioExceeded(path: archivePath, entry: entry, limit: limits.maxCompressionRatio)
        }
    }

    private func makeParents(of components: [String], entry: String) throws {
        var current: [String] = []
        for component in components.dropLast() {
            current.append(component)
            let path = current.joined(separator: "/")
            if directories.contains(path) { continue }
            guard !files.contains(path) else { throw refuse(entry, .duplicate) }
            try FileIO.makeDirectory(url(of: current))
            directories.insert(path)
        }
    }

    private func url(of components: [String]) -> URL {
        components.reduce(root) { $0.appendingPathComponent($1) }
    }
}
