import Foundation
import TestFixtures
import Testing
@testable import Torch

/// Reads a little-endian float32 fixture file.
func readFloats(_ relativePath: String) throws -> [Float] {
    let bytes = try Fixtures.bytes(relativePath)
    return bytes.withUnsafeBytes { raw in
        (0..<(bytes.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
    }
}

struct ExpectedModels: Decodable {
    struct TextBag: Decodable { let tokens: [Int64]; let offsets: [Int64]; let logits: [[Float]] }
    struct UNet: Decodable { let input_shape: [Int]; let output_shape: [Int] }
    let text_bag: TextBag
    let unet_tiny: UNet
}

func expectedModels() throws -> ExpectedModels {
    try JSONDecoder().decode(ExpectedModels.self, from: Data(contentsOf: Fixtures.url("models/expected.json")))
}

@Suite struct LoadingTests {
    @Test func missingFileIsFileNotFound() {
        let url = Fixtures.url("models/does_not_exist.pt")
        #expect(throws: TorchError.fileNotFound(path: url.path)) { try ScriptModule(contentsOf: url) }
    }

    @Test func textFileIsNotTorchScript() throws {
        let error = try #require(throws: TorchError.self) { try ScriptModule(contentsOf: Fixtures.url("models/not_a_model.pt")) }
        guard case .notTorchScript(_, let detail) = error else { Issue.record("got \(error)"); return }
        #expect(detail.contains("not a zip archive"))
    }

    @Test func stateDictIsNotTorchScriptWithAHint() throws {
        for name in ["state_dict.pt", "legacy_pickle.pt"] {
            let error = try #require(throws: TorchError.self) { try ScriptModule(contentsOf: Fixtures.url("models/\(name)")) }
            guard case .notTorchScript(_, let detail) = error else { Issue.record("\(name): got \(error)"); continue }
            #expect(detail.contains("torch.save"), "\(name): \(detail)")
            #expect(detail.contains("torch.jit.trace"), "\(name): \(detail)")
        }
    }

    @Test func truncatedFileIsDamaged() throws {
        let error = try #require(throws: TorchError.self) { try ScriptModule(contentsOf: Fixtures.url("models/truncated.pt")) }
        guard case .damagedFile = error else { Issue.record("got \(error)"); return }
        #expect(!error.summary.contains("\n"))
    }

    @Test func weightBytesCountsParametersAndBuffers() throws {
        let module = try ScriptModule(contentsOf: Fixtures.url("models/unet_tiny.pt"))
        // 3 conv blocks + head: a few thousand float32 weights, well under the file size.
        #expect(module.weightBytes > 10_000)
        #expect(module.weightBytes < 40_000)
        #expect(module.device == .cpu)
    }
}

@Suite struct ForwardTests {
    func unetInput() throws -> Tensor {
        try Tensor.copying(try readFloats("models/unet_input.f32"), shape: try expectedModels().unet_tiny.input_shape)
    }

    func unetReference() throws -> Tensor {
        try Tensor.copying(try readFloats("models/unet_output.f32"), shape: try expectedModels().unet_tiny.output_shape)
    }

    @Test func unetMatchesPython() throws {
        let module = try ScriptModule(contentsOf: Fixtures.url("models/unet_tiny.pt"))
        let output = try #require(module.forward(try unetInput()).firstTensor)
        #expect(output.shape == [1, 5, 96, 128])
        #expect(try output.maxAbsDifference(try unetReference()) < 1e-5)
    }

    @Test func optimizedModuleMatchesTheOriginal() throws {
        let module = try ScriptModule(contentsOf: Fixtures.url("models/unet_tiny.pt"))
        let optimized = try module.optimized()
        let output = try #require(optimized.forward(try unetInput()).firstTensor)
        #expect(try output.maxAbsDifference(try unetReference()) < 1e-4)
        #expect(optimized.weightBytes == module.weightBytes)
    }

    @Test func tupleOutput() throws {
        let module = try ScriptModule(contentsOf: Fixtures.url("models/tuple_out.pt"))
        guard case .tuple(let items) = try module.forward(try unetInput()) else { Issue.record("not a tuple"); return }
        #expect(items.count == 2)
        #expect(items.first?.firstTensor?.shape == [1, 3, 96, 128])
        #expect(items.last?.firstTensor?.shape == [1, 3])
    }

    @Test func dictOutput() throws {
        let module = try ScriptModule(contentsOf: Fixtures.url("models/dict_out.pt"))
        let output = try module.forward(try unetInput())
        guard case .dict(let entries) = output else { Issue.record("not a dict: \(output.kindDescription)"); return }
        #expect(Set(entries.map(\.key)) == ["out", "aux"])
        let out = try #require(output.tensor(named: "out"))
        let aux = try #require(output.tensor(named: "aux"))
        #expect(out.shape == [1, 4, 96, 128])
        let doubled = try out.toArray(of: Float.self).map { $0 * 2 }
        #expect(try aux.maxAbsDifference(try Tensor.copying(doubled, shape: out.shape)) < 1e-5)
    }

    @Test func embeddingBagTextModelMatchesPython() throws {
        let expected = try expectedModels().text_bag
        let module = try ScriptModule(contentsOf: Fixtures.url("models/text_bag.pt"))
        let tokens = try Tensor.copying(expected.tokens, shape: [expected.tokens.count])
        let offsets = try Tensor.copying(expected.offsets, shape: [expected.offsets.count])
        let logits = try #require(module.forward([tokens, offsets]).firstTensor)
        #expect(logits.shape == [2, 4])
        let reference = try Tensor.copying(expected.logits.flatMap { $0 }, shape: [2, 4])
        #expect(try logits.maxAbsDifference(reference) < 1e-5)
    }

    @Test func wrongInputShapeThrowsWithLibtorchsReason() throws {
        let module = try ScriptModule(contentsOf: Fixtures.url("models/unet_tiny.pt"))
        let bad = try Tensor.copying([Float](repeating: 0, count: 4 * 8 * 8), shape: [1, 4, 8, 8])
        let error = try #require(throws: TorchError.self) { try module.forward(bad) }
        guard case .operationFailed(_, let message) = error else { Issue.record("got \(error)"); return }
        #expect(!message.isEmpty)
    }

    /// Workers share one module: concurrent forward passes must give the single-threaded result.
    @Test func concurrentForwardOnOneModuleMatchesSerial() async throws {
        let module = try ScriptModule(contentsOf: Fixtures.url("models/unet_tiny.pt"))
        var inputs: [Tensor] = []
        for seed in 0..<4 {
            var values = [Float](repeating: 0, count: 3 * 96 * 128)
            for index in values.indices {
                values[index] = Float((index * (seed + 3)) % 251) / 251 - 0.5
            }
            inputs.append(try Tensor.copying(values, shape: [1, 3, 96, 128]))
        }
        let serial = try inputs.map { try #require(module.forward($0).firstTensor) }
        try await withThrowingTaskGroup(of: Double.self) { group in
            for round in 0..<16 {
                let index = round % inputs.count
                let input = inputs[index], reference = serial[index]
                group.addTask {
                    guard let output = try module.forward(input).firstTensor else { return .infinity }
                    return try output.maxAbsDifference(reference)
                }
            }
            // Exact on libtorch 1.13. libtorch 2's CPU kernels split their sums by the calling
            // thread's intra-op count, and the pool threads here need not have the count of the
            // thread that ran the serial pass: float32 rounding apart (4.8e-7 seen), far below
            // what a race on shared state would give.
            let tolerance = TorchRuntime.version.hasPrefix("1.") ? 0 : 1e-5
            for try await difference in group {
                #expect(difference <= tolerance)
            }
        }
    }
}
