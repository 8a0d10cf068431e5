import Foundation
import Torch

/// The floor the server is held to: a tight loop of forward passes through CTorch on one
/// TorchScript file, as loaded and frozen/optimised (and converted to bfloat16 with
/// `--bfloat16 1`, converting the input to it and the output back as the server does), at the
/// given batch size and threads.
///
/// Usage: forward-bench MODEL.pt [--batch N] [--height H] [--width W] [--threads T] [--seconds S] [--bfloat16 0|1]
@main
struct ForwardBench {
    static func main() throws {
        var arguments = CommandLine.arguments.dropFirst()
        guard let path = arguments.popFirst() else {
            print("usage: forward-bench MODEL.pt [--batch N] [--height H] [--width W] [--threads T] [--seconds S] [--bfloat16 0|1]")
            exit(2)
        }
        var options: [String: Int] = ["--batch": 1, "--height": 96, "--width": 128, "--threads": 1, "--seconds": 10, "--bfloat16": 0]
        while let flag = arguments.popFirst() {
            guard options[flag] != nil, let value = arguments.popFirst().flatMap(Int.init) else {
                print("unknown or incomplete option \(flag)")
                exit(2)
            }
            options[flag] = value
        }
        let batch = options["--batch"] ?? 1, height = options["--height"] ?? 96, width = options["--width"] ?? 128
        try TorchRuntime.setIntraOpThreads(options["--threads"] ?? 1)
        let input = try Tensor.empty(shape: [batch, 3, height, width], dtype: .float32)
        try input.withUnsafeMutableBufferPointer(as: Float.self) { buffer in
            for index in buffer.indices { buffer[index] = Float(sin(Double(index) * 0.001)) }
        }
        let plain = try ScriptModule(contentsOf: URL(fileURLWithPath: path))
        var modules = [("plain", plain), ("optimized", try plain.optimized())]
        if options["--bfloat16"] == 1 { modules.append(("bfloat16", try plain.converted(to: .bfloat16))) }
        for (name, module) in modules {
            let run = { () throws -> Void in
                guard module.floatType != .float32 else {
                    _ = try module.forward(input)
                    return
                }
                let output = try module.forward(try input.converted(to: module.floatType))
                _ = try output.mapTensors { (tensor) throws(TorchError) -> Tensor in try tensor.converted(to: .float32) }
            }
            do {
                for _ in 0..<3 { try run() }
            } catch {
                // Some models have no bfloat16 kernels (libtorch 1.13: transposed convolutions).
                guard module.floatType != .float32 else { throw error }
                print("forward \(name) batch=\(batch) unsupported: \(String(describing: error).split(separator: "\n").last ?? "")")
                continue
            }
            var times: [Double] = []
            let started = Date()
            while Date().timeIntervalSince(started) < Double(options["--seconds"] ?? 10) || times.count < 5 {
                let t0 = DispatchTime.now().uptimeNanoseconds
                try run()
                times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
            }
            times.sort()
            let median = times[times.count / 2]
            // One line per module, machine-readable for scripts/bench.
            print("forward \(name) batch=\(batch) threads=\(options["--threads"] ?? 1) iterations=\(times.count) median_ms=\(String(format: "%.3f", median)) min_ms=\(String(format: "%.3f", times[0])) per_item_ms=\(String(format: "%.3f", median / Double(batch)))")
        }
    }
}
