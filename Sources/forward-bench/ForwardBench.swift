import Foundation
import Torch

/// The floor the server is held to: a tight loop of forward passes through CTorch on one
/// TorchScript file, as loaded and frozen/optimised, at the given batch size and threads.
///
/// Usage: forward-bench MODEL.pt [--batch N] [--height H] [--width W] [--threads T] [--seconds S]
@main
struct ForwardBench {
    static func main() throws {
        var arguments = CommandLine.arguments.dropFirst()
        guard let path = arguments.popFirst() else {
            print("usage: forward-bench MODEL.pt [--batch N] [--height H] [--width W] [--threads T] [--seconds S]")
            exit(2)
        }
        var options: [String: Int] = ["--batch": 1, "--height": 96, "--width": 128, "--threads": 1, "--seconds": 10]
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
        let optimized = try plain.optimized()
        for (name, module) in [("plain", plain), ("optimized", optimized)] {
            for _ in 0..<3 { _ = try module.forward(input) }
            var times: [Double] = []
            let started = Date()
            while Date().timeIntervalSince(started) < Double(options["--seconds"] ?? 10) || times.count < 5 {
                let t0 = DispatchTime.now().uptimeNanoseconds
                _ = try module.forward(input)
                times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
            }
            times.sort()
            let median = times[times.count / 2]
            // One line per module, machine-readable for scripts/bench.
            print("forward \(name) batch=\(batch) threads=\(options["--threads"] ?? 1) iterations=\(times.count) median_ms=\(String(format: "%.3f", median)) min_ms=\(String(format: "%.3f", times[0])) per_item_ms=\(String(format: "%.3f", median / Double(batch)))")
        }
    }
}
