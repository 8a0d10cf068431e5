import Foundation
import Synchronization

/// Keeps server-side paths out of what clients read: the work folder where archives are
/// unpacked (`/tmp/serve-<pid>/unet-1a2b3c4d/model.pt` becomes `model.pt`) and the model store
/// (`/srv/model_store/unet.mar` becomes `unet.mar`).
///
/// Every ``ModelServer`` registers its folders at start; the HTTP layer redacts each error
/// message it renders. Registrations are only ever added, so a message is redacted for any
/// server of the process (tests run several).
public enum PathRedaction {
    private static let folders = Mutex<[(prefix: String, pattern: Regex<Substring>?)]>([])

    /// Adds the folders whose paths messages must not show.
    static func register(workDirectory: URL, modelStore: URL) {
        let paths = [workDirectory, modelStore].flatMap { url in
            [url.standardizedFileURL.path, url.standardizedFileURL.resolvingSymlinksInPath().path]
        }
        folders.withLock { folders in
            for path in paths where path.count > 1 && !folders.contains(where: { $0.prefix == path }) {
                // A path under the folder loses the folder and, for the work folder, the per-archive folder.
                let escaped = NSRegularExpression.escapedPattern(for: path)
                let pattern = try? Regex<Substring>(escaped + #"(?:/[^/\s"']+-[0-9a-f]{8}(?=/))?/?"#)
                folders.append((path, pattern))
            }
            // Longest first: a work folder inside the model store loses its whole path, not the store's part.
            folders.sort { $0.prefix.count > $1.prefix.count }
        }
    }

    /// `message` with every registered folder removed from the paths in it.
    public static func redact(_ message: String) -> String {
        let registered = folders.withLock { $0 }
        var result = message
        for folder in registered where result.contains(folder.prefix) {
            if let pattern = folder.pattern {
                result = result.replacing(pattern, with: "")
            } else {
                result = result.replacingOccurrences(of: folder.prefix, with: "")
            }
        }
        return result
    }
}
