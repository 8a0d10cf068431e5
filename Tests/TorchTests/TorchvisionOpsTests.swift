import Foundation
import TestFixtures
import Testing
@testable import Torch

/// The shim's torchvision::nms and torchvision::roi_align, which scripted detection models call,
/// give torchvision's own outputs (fixture by scripts/fixtures/make_torchvision_ops_fixture.py).
@Suite struct TorchvisionOpsTests {
    struct Expected: Decodable {
        let boxes: [Float], scores: [Float], features: [Float], rois: [Float]
        let kept: [Int64], aligned: [Float], adaptive: [Float]
        let alignedShape: [Int], adaptiveShape: [Int]
    }

    @Test func nmsAndRoiAlignMatchTorchvision() throws {
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: Fixtures.url("expected/torchvision_ops.json")))
        let module = try ScriptModule(contentsOf: Fixtures.url("models/torchvision_ops.pt"))
        let output = try module.forward([
            try Tensor.copying(expected.boxes, shape: [expected.boxes.count / 4, 4]),
            try Tensor.copying(expected.scores, shape: [expected.scores.count]),
            try Tensor.copying(expected.features, shape: [2, 3, 24, 32]),
            try Tensor.copying(expected.rois, shape: [expected.rois.count / 5, 5]),
        ])
        guard case .tuple(let items) = output, items.count == 3,
              case .tensor(let kept) = items[0], case .tensor(let aligned) = items[1], case .tensor(let adaptive) = items[2]
        else {
            Issue.record("expected a tuple of three tensors, got \(output.kindDescription)")
            return
        }
        #expect(try kept.toArray(of: Int64.self) == expected.kept, "nms keeps the same boxes in the same order")
        #expect(aligned.shape == expected.alignedShape)
        #expect(adaptive.shape == expected.adaptiveShape)
        for (name, got, want) in [("aligned", try aligned.toArray(of: Float.self), expected.aligned),
                                  ("adaptive", try adaptive.toArray(of: Float.self), expected.adaptive)] {
            #expect(got.count == want.count)
            let worst = zip(got, want).map { abs($0 - $1) }.max() ?? 0
            #expect(worst <= 1e-6, "roi_align \(name): largest difference \(worst)")
        }
    }

    @Test func badArgumentsAreErrorsNotCrashes() throws {
        let module = try ScriptModule(contentsOf: Fixtures.url("models/torchvision_ops.pt"))
        #expect(throws: TorchError.self) {
            try module.forward([
                try Tensor.copying([Float](repeating: 1, count: 6), shape: [2, 3]),
                try Tensor.copying([Float](repeating: 1, count: 2), shape: [2]),
                try Tensor.copying([Float](repeating: 1, count: 12), shape: [1, 1, 3, 4]),
                try Tensor.copying([Float](repeating: 0, count: 5), shape: [1, 5]),
            ])
        }
        #expect(throws: TorchError.self, "a box naming an image the batch does not have") {
            try module.forward([
                try Tensor.copying([Float](repeating: 1, count: 4), shape: [1, 4]),
                try Tensor.copying([Float](repeating: 1, count: 1), shape: [1]),
                try Tensor.copying([Float](repeating: 1, count: 12), shape: [1, 1, 3, 4]),
                try Tensor.copying([Float]([3, 0, 0, 2, 2]), shape: [1, 5]),
            ])
        }
    }
}
