import ModelArchive
import Foundation

/// Messages on stderr; errors end the process with status 1, without a stack trace.
enum Terminal {
    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("archiver: error: \(message)\n".utf8))
        Foundation.exit(1)
    }

    static func warn(_ message: String) {
        FileHandle.standardError.write(Data("archiver: warning: \(message)\n".utf8))
    }

    static func note(_ message: String) {
        FileHandle.standardError.write(Data("archiver: \(message)\n".utf8))
    }

    static var stderrIsTerminal: Bool { isatty(2) == 1 }

    /// Runs a command's work; the errors it reports to users end the process with their message.
    static func reportingFailures(_ work: () throws -> Void) rethrows {
        do {
            try work()
        } catch let error as CommandFailure {
            fail(error.message)
        } catch let error as ArchiveError {
            fail(error.description)
        } catch let error as ConversionError {
            fail(error.description)
        }
    }
}

/// A one-line progress bar on stderr, drawn only when stderr is a terminal.
final class ProgressBar {
    private var lastDrawn = Date.distantPast
    private var lastPercent = -1

    /// `nil` when stderr is not a terminal, so pipes and logs stay quiet.
    static func make() -> ProgressBar? { Terminal.stderrIsTerminal ? ProgressBar() : nil }

    func update(_ progress: ArchiveProgress) {
        let percent = progress.bytesTotal > 0 ? Int(progress.bytesDone * 100 / progress.bytesTotal) : 100
        let now = Date()
        guard percent != lastPercent, now.timeIntervalSince(lastDrawn) > 0.1 || percent == 100 else { return }
        lastPercent = percent
        lastDrawn = now
        let width = 30
        let filled = width * percent / 100
        let bar = String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled)
        let megabytes = { (bytes: Int64) in String(format: "%.1f", Double(bytes) / 1_048_576) }
        let line = "\r[\(bar)] \(percent)% \(megabytes(progress.bytesDone))/\(megabytes(progress.bytesTotal)) MB  \(progress.entry)"
        FileHandle.standardError.write(Data((line.padding(toLength: 100, withPad: " ", startingAt: 0)).utf8))
    }

    func finish() {
        FileHandle.standardError.write(Data("\n".utf8))
    }
}
