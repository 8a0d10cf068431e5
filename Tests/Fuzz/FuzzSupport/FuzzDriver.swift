import CFuzzDriver
import Foundation

/// What the fuzz targets share. Each target defines `LLVMFuzzerTestOneInput`; a fuzzing build
/// (`scripts/fuzz`: `-DFUZZING -sanitize=fuzzer`) takes its `main` from libFuzzer, and a plain
/// build gets a `main` from the target that calls ``replay(_:)``. The quick fuzzing build
/// (`scripts/fuzz --ci`, `-DFUZZ_DRIVER_MAIN`) keeps that `main`, and ``replay(_:)`` hands the
/// process to libFuzzer instead.
public enum FuzzDriver {
    /// What libFuzzer calls with each input; returns 0 (non-zero asks libFuzzer to drop the input).
    public typealias TestOneInput = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

    /// Runs `target` once over every file named on the command line, and every file directly
    /// inside every folder named (a crash's reproducer, or a corpus folder).
    public static func replay(_ target: TestOneInput) -> Never {
        #if FUZZ_DRIVER_MAIN
        exit(fuzz_run_driver(CommandLine.argc, CommandLine.unsafeArgv, target))
        #endif
        let arguments = CommandLine.arguments.dropFirst().filter { !$0.hasPrefix("-") }
        if arguments.isEmpty {
            let name = (CommandLine.arguments.first as NSString?)?.lastPathComponent ?? "fuzz-target"
            print("usage: \(name) FILE-OR-FOLDER...  (replays inputs; scripts/fuzz builds the fuzzing binary)")
            exit(2)
        }
        var count = 0
        for path in arguments {
            for file in inputs(at: path) {
                guard let bytes = FileManager.default.contents(atPath: file) else {
                    print("cannot read \(file)")
                    exit(1)
                }
                [UInt8](bytes).withUnsafeBufferPointer { _ = target($0.baseAddress, $0.count) }
                count += 1
            }
        }
        print("replayed \(count) input(s) without a crash")
        exit(0)
    }

    /// `path` itself, or the regular files directly inside it when it is a folder, sorted.
    private static func inputs(at path: String) -> [String] {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue else {
            return [path]
        }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return names.sorted().map { (path as NSString).appendingPathComponent($0) }.filter {
            var folder: ObjCBool = false
            return FileManager.default.fileExists(atPath: $0, isDirectory: &folder) && !folder.boolValue
        }
    }

    /// The input as an array (an empty one for a null pointer).
    public static func bytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
        guard let data, size > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: size))
    }

    /// Whether the replayer prints what each input did (`FUZZ_VERBOSE=1`).
    public static let verbose = ProcessInfo.processInfo.environment["FUZZ_VERBOSE"] == "1"

    /// Prints `message` when ``verbose``.
    public static func note(_ message: @autoclosure () -> String) {
        if verbose { print(message()) }
    }

    /// Stops the process with a message libFuzzer records as a crash: an invariant was broken.
    public static func violated(_ message: String) -> Never {
        fatalError("fuzz invariant violated: \(message)")
    }
}
