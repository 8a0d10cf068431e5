import Foundation

/// One of this package's executables as a user runs it: `swift build --build-tests` puts it in
/// the build products folder, next to the test runner.
public struct BuiltExecutable: Sendable {
    /// How a run ended: exit status, and standard output and error together.
    public struct Run: Sendable {
        public var status: Int32
        public var output: String
    }

    public let url: URL

    public init(_ name: String) {
        url = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name)
    }

    public var isBuilt: Bool { FileManager.default.isExecutableFile(atPath: url.path) }

    /// Runs it with `arguments` in `folder` and waits for its end and for its output to close.
    public func run(_ arguments: [String], in folder: URL) throws -> Run {
        let process = Process()
        process.executableURL = url
        process.arguments = arguments
        process.currentDirectoryURL = folder
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, output: String(decoding: output, as: UTF8.self))
    }
}
