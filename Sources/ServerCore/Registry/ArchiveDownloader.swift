import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// Fetches an `http(s)` registration URL that `allowed_urls` admits, streaming the body into
/// the model store (never into memory) and stopping at a size limit.
struct ArchiveDownloader: Sendable {
    /// `allowed_urls`: regular expressions a URL must match as a whole, in any case.
    let allowedPatterns: [String]
    /// Largest archive accepted, in bytes.
    let limit: Int64

    /// Whether some `allowed_urls` pattern matches the whole of `url`.
    func isAllowed(_ url: String) -> Bool {
        allowedPatterns.contains { pattern in
            guard let regex = try? Regex(pattern).ignoresCase() else { return false }
            return (try? regex.wholeMatch(in: url)) != nil
        }
    }

    /// Downloads `url` into `store` under the URL's last path component.
    /// - Returns: the downloaded file.
    /// - Throws: `archiveURLNotAllowed` when no pattern admits the URL, `conflict` when the file
    ///   is in the store already, `downloadFailed` for any network, status or size failure
    ///   (nothing is left behind then).
    func download(_ url: String, into store: URL) async throws(ModelServerError) -> URL {
        guard isAllowed(url) else {
            throw .archiveURLNotAllowed("URL \(url) matches no allowed_urls pattern; add one to config.properties to allow it")
        }
        guard let parsed = URL(string: url), parsed.host != nil else {
            throw .badRequest("url '\(url)' is not a valid http(s) URL")
        }
        let fileName = parsed.lastPathComponent
        guard fileName.range(of: #"^[A-Za-z0-9][A-Za-z0-9_.-]*$"#, options: .regularExpression) != nil else {
            throw .badRequest("url '\(url)' must end in an archive file name such as unet.mar or model.tar.gz")
        }
        let destination = store.appendingPathComponent(fileName)
        if FileManager.default.fileExists(atPath: destination.path) {
            throw .conflict("\(fileName) is already in the model store; register it by name, or delete it to download it again")
        }
        let partial = store.appendingPathComponent(".\(fileName).\(UUID().uuidString).part")
        do {
            try await fetch(url, to: partial)
            if !FileManager.default.fileExists(atPath: partial.path) {
                throw DownloadFailure(message: "the response body was empty")
            }
            try FileManager.default.moveItem(at: partial, to: destination)
            return destination
        } catch {
            try? FileManager.default.removeItem(at: partial)
            if let failure = error as? DownloadFailure {
                throw .downloadFailed("Downloading \(url) failed: \(failure.message)")
            }
            if FileManager.default.fileExists(atPath: destination.path) {
                throw .conflict("\(fileName) appeared in the model store during the download; register it by name")
            }
            throw .downloadFailed("Downloading \(url) failed: \(error)")
        }
    }

    /// Streams the body of a 200 answer to `path`; redirects are not followed (their target
    /// would escape `allowed_urls`).
    private func fetch(_ url: String, to path: URL) async throws {
        let client = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: HTTPClient.Configuration(redirectConfiguration: .disallow, timeout: .init(connect: .seconds(10), read: .seconds(60))))
        let limit = self.limit
        do {
            let request = try HTTPClient.Request(url: url, method: .GET)
            let delegate = try FileDownloadDelegate(
                path: path.path,
                reportHead: { task, head in
                    if head.status != .ok {
                        task.fail(reason: DownloadFailure(message: "the server answered \(head.status.code) \(head.status.reasonPhrase)"))
                    } else if let length = head.headers.first(name: "Content-Length").flatMap(Int64.init), length > limit {
                        task.fail(reason: DownloadFailure(message: "the archive is \(length) bytes, more than the limit of \(limit)"))
                    }
                },
                reportProgress: { task, progress in
                    if Int64(progress.receivedBytes) > limit {
                        task.fail(reason: DownloadFailure(message: "the archive passed the limit of \(limit) bytes"))
                    }
                })
            _ = try await client.execute(request: request, delegate: delegate, deadline: .now() + .minutes(30)).get()
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }
}

/// Why a download failed, in words for the user.
struct DownloadFailure: Error {
    var message: String
}
