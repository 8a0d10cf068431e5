import Foundation
import Logging
import ModelArchive

/// Finds and opens the archive a registration names: a file or folder inside the model store,
/// or an `http(s)` URL that `allowed_urls` admits, downloaded into the store first. Also finds
/// a handler spec (`.yaml`) a registration names, in the same store.
struct ArchiveLocator: Sendable {
    let modelStore: URL
    let workDirectory: URL
    let extractionLimits: ExtractionLimits
    let downloader: ArchiveDownloader
    let logger: Logger

    /// A registration's archive as a local file: an allowed `http(s)` URL is downloaded into the
    /// model store first (unless an earlier download of it is named and still there); anything
    /// else must resolve inside the store.
    /// - Returns: the file, and whether it is a download of an `http(s)` URL.
    func locate(_ options: RegistrationOptions) async throws(ModelServerError) -> (file: URL, downloaded: Bool) {
        let url = options.url
        let lowered = url.lowercased()
        guard lowered.hasPrefix("http://") || lowered.hasPrefix("https://") else { return (try resolve(url), false) }
        if let stored = options.storedArchive, let file = try? resolve(stored) {
            logger.info("using \(stored) in the model store, downloaded earlier from \(url)")
            return (file, true)
        }
        let file = try await downloader.download(url, into: modelStore)
        logger.info("downloaded \(url) to \(file.path)")
        return (file, true)
    }

    /// Unpacks (or reads in place, for a folder) the archive at `file`, off the cooperative pool.
    func open(_ file: URL) async throws -> OpenedArchive {
        do {
            return try await onThread { [workDirectory, extractionLimits] in
                try ArchiveReader.open(file, extractingInto: workDirectory, limits: extractionLimits)
            }
        } catch let error as ArchiveError {
            throw ModelServerError.invalidModel("\(error)")
        }
    }

    /// A registration `url` resolved inside the model store (symlinks too); anything else is refused.
    func resolve(_ url: String) throws(ModelServerError) -> URL {
        let lowered = url.lowercased()
        if lowered.hasPrefix("file:") {
            throw .archiveURLNotAllowed("file:// URLs are not allowed; name an archive in the model store")
        }
        if lowered.hasPrefix("http://") || lowered.hasPrefix("https://") {
            throw .archiveURLNotAllowed("URL \(url) is not a file in the model store")
        }
        let store = modelStore.standardizedFileURL.resolvingSymlinksInPath()
        let candidate = (url.hasPrefix("/") ? URL(fileURLWithPath: url) : store.appendingPathComponent(url))
            .standardizedFileURL.resolvingSymlinksInPath()
        guard candidate.path.hasPrefix(store.path + "/") else {
            throw .archiveURLNotAllowed("\(url) is outside the model store \(store.path)")
        }
        guard FileManager.default.fileExists(atPath: candidate.path) else {
            throw .archiveNotFound("Model archive not found in the model store: \(url)")
        }
        return candidate
    }

    /// The spec a registration's `handler` names: a built-in kind (the archive's own spec when
    /// it is that kind, else the kind's defaults) or a `.yaml` spec file in the model store.
    func handlerSpec(_ handler: String, replacing archive: OpenedArchive) throws(ModelServerError) -> HandlerSpec {
        let lowered = handler.lowercased()
        if lowered.hasSuffix(".yaml") || lowered.hasSuffix(".yml") {
            let file = try resolve(handler)
            do {
                return try HandlerSpec.load(contentsOf: file)
            } catch {
                throw .invalidModel("handler spec \(handler): \(error)")
            }
        }
        let kind: HandlerKind
        do {
            kind = try HandlerKind(handlerName: handler)
        } catch {
            throw .invalidModel("\(error)")
        }
        return archive.handler == kind ? archive.handlerSpec : .defaults(for: kind)
    }

    /// Deletes the folder an archive was unpacked into, if it was unpacked.
    static func discardUnpacked(_ archive: OpenedArchive) {
        if let folder = archive.extractedFolder { try? FileManager.default.removeItem(at: folder) }
    }
}

/// Runs blocking work (file I/O, unpacking) on a thread of its own, off the cooperative pool.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try body() })
        }
    }
}
