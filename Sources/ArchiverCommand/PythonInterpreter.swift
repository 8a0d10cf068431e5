import Foundation

/// A Python interpreter that can import torch: the one `--python` names, or the first found.
///
/// The archiver runs Python only at pack time, to turn an eager-mode model into TorchScript; the
/// server never does.
struct PythonInterpreter {
    /// How a run ended: exit status, and standard output and error together.
    struct Run {
        var status: Int32
        var output: String
    }

    let url: URL
    let torchVersion: String

    /// Tried in order when `--python` is not given.
    static let defaultCandidates = ["python3", "/usr/bin/python3"]

    /// The interpreter `explicit` names, or the first default candidate that can import torch.
    /// - Throws: ``ConversionError/pythonNotFound(_:)`` and ``ConversionError/pythonWithoutTorch(path:detail:)``
    ///   for `--python`; ``ConversionError/noPythonWithTorch(tried:)`` when no candidate works.
    static func locate(_ explicit: String?) throws -> PythonInterpreter {
        if let explicit {
            guard let url = resolve(explicit) else { throw ConversionError.pythonNotFound(explicit) }
            switch probe(url) {
            case .success(let version): return PythonInterpreter(url: url, torchVersion: version)
            case .failure(let problem): throw ConversionError.pythonWithoutTorch(path: explicit, detail: problem.detail)
            }
        }
        var tried: [String] = []
        var seen: Set<String> = []
        for candidate in defaultCandidates {
            let label = candidate.contains("/") ? candidate : "\(candidate) on PATH"
            guard let url = resolve(candidate) else {
                tried.append("\(label): not found")
                continue
            }
            guard seen.insert(url.resolvingSymlinksInPath().path).inserted else { continue }
            switch probe(url) {
            case .success(let version): return PythonInterpreter(url: url, torchVersion: version)
            case .failure(let problem):
                let at = url.path == candidate ? "" : " (\(url.path))"
                tried.append("\(label)\(at): \(problem.detail)")
            }
        }
        throw ConversionError.noPythonWithTorch(tried: tried)
    }

    /// A path (with a `/`) as it is, a bare name looked up on `PATH`; `nil` unless it is an executable file.
    static func resolve(_ name: String) -> URL? {
        let manager = FileManager.default
        func executable(_ path: String) -> Bool {
            var isDirectory: ObjCBool = false
            return manager.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory.boolValue
                && manager.isExecutableFile(atPath: path)
        }
        if name.contains("/") {
            return executable(name) ? URL(fileURLWithPath: name) : nil
        }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for folder in path.split(separator: ":") where !folder.isEmpty {
            let candidate = "\(folder)/\(name)"
            if executable(candidate) { return URL(fileURLWithPath: candidate) }
        }
        return nil
    }

    private static let versionMarker = "torch version: "
    /// Imports torch with the current folder off `sys.path`, so that a `torch.py` or `numpy.py`
    /// where archiver runs cannot stand in for the real one.
    private static let probeProgram = """
        import sys
        sys.path = [p for p in sys.path if p not in ("", ".")]
        import torch
        print("\\n\(versionMarker)" + torch.__version__)
        """

    private struct ProbeFailure: Error {
        let detail: String
    }

    /// torch's version when `url` imports it, else the last line Python printed.
    private static func probe(_ url: URL) -> Result<String, ProbeFailure> {
        let run: Run
        do {
            run = try execute(url, ["-c", probeProgram])
        } catch {
            return .failure(ProbeFailure(detail: "cannot be run (\(error.localizedDescription))"))
        }
        let lines = run.output.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        let version = lines.last { $0.hasPrefix(versionMarker) }.map { String($0.dropFirst(versionMarker.count)) }
        guard run.status == 0, let version else {
            let last = lines.last.map { String($0.prefix(200)) } ?? "exit status \(run.status)"
            return .failure(ProbeFailure(detail: "cannot import torch (\(last))"))
        }
        return .success(version)
    }

    /// Runs the interpreter with `arguments` and waits for it, output captured.
    func run(_ arguments: [String], in folder: URL? = nil) throws -> Run {
        try Self.execute(url, arguments, in: folder)
    }

    /// Runs `executable`, its standard output and error read together from one pipe until it exits.
    /// `PYTHONDONTWRITEBYTECODE` keeps Python from leaving `__pycache__` next to the user's model file.
    private static func execute(_ executable: URL, _ arguments: [String], in folder: URL? = nil) throws -> Run {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let folder { process.currentDirectoryURL = folder }
        var environment = ProcessInfo.processInfo.environment
        environment["PYTHONDONTWRITEBYTECODE"] = "1"
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, output: String(decoding: output, as: UTF8.self))
    }
}
