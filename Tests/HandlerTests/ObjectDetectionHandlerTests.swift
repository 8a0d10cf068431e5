import Foundation
import ModelArchive
import Testing
import Torch
@testable import ServerCore

/// `object_detector`'s answer from a model output in torchvision's form, without a model.
@Suite struct ObjectDetectionHandlerTests {
    /// torchvision's scripted form: `(losses, [ {boxes, labels, scores} ])` for one image.
    static func output(boxes: [Float], labels: [Int64], scores: [Float]) throws -> ModuleOutput {
        .tuple([
            .dict([]),
            .list([.dict([
                (key: "boxes", value: .tensor(try Tensor.copying(boxes, shape: [scores.count, 4]))),
                (key: "labels", value: .tensor(try Tensor.copying(labels, shape: [labels.count]))),
                (key: "scores", value: .tensor(try Tensor.copying(scores, shape: [scores.count]))),
            ])]),
        ])
    }

    static let boxes: [Float] = [1, 2, 30, 40, 5, 6, 7, 8, 10, 10, 20, 20, 0, 0, .nan, 4]

    @Test func keepsScoresFromTheThresholdHighestFirstUpToTheLimit() throws {
        let output = try Self.output(boxes: Self.boxes, labels: [1, 2, 1, 2], scores: [0.6, 0.9, 0.3, 0.95])
        let found = try ObjectDetectionHandler.detections(in: output, threshold: 0.5, limit: 100)
        // The NaN box (score 0.95) is left out: it can be neither drawn nor written as JSON.
        #expect(found == [Detection(label: 2, box: [5, 6, 7, 8], score: 0.9), Detection(label: 1, box: [1, 2, 30, 40], score: 0.6)])
        #expect(try ObjectDetectionHandler.detections(in: output, threshold: 0.2, limit: 1) == [Detection(label: 2, box: [5, 6, 7, 8], score: 0.9)])
        #expect(try ObjectDetectionHandler.detections(in: output, threshold: 0.99, limit: 100).isEmpty)
    }

    @Test func answersInTorchServesFormWithTheLabels() throws {
        let handler = ObjectDetectionHandler(spec: ObjectDetectorSpec(threshold: 0.5),
                                             labels: ClassLabels(names: [0: "__background__", 1: "car", 2: "per\"son"]))
        let prepared = PreparedInput(tensors: [], context: ObjectDetectionHandler.RequestContext(overlayOn: nil))
        let response = try handler.postprocess(try Self.output(boxes: Array(Self.boxes.prefix(12)), labels: [1, 2, 7], scores: [0.6, 0.9, 0.7]), for: prepared)
        #expect(response.contentType == "application/json")
        #expect(String(decoding: response.body, as: UTF8.self)
            == "[{\"per\\\"son\": [5.0, 6.0, 7.0, 8.0], \"score\": 0.9}, {\"7\": [10.0, 10.0, 20.0, 20.0], \"score\": 0.7}, {\"car\": [1.0, 2.0, 30.0, 40.0], \"score\": 0.6}]")
        let empty = try handler.postprocess(try Self.output(boxes: [], labels: [], scores: []), for: prepared)
        #expect(String(decoding: empty.body, as: UTF8.self) == "[]")
    }

    @Test func otherOutputsAreNamedInTheError() throws {
        let cases: [(ModuleOutput, String)] = [
            (.tensor(try Tensor.copying([Float](repeating: 0, count: 4), shape: [1, 4])),
             "object_detector expects the model to return (losses, detections) or detections: a list of dicts with boxes, labels and scores, got tensor [1, 4]"),
            (.list([.dict([(key: "boxes", value: .none)])]),
             "object_detector expects each image's detections to have boxes, labels and scores, got dict with keys [\"boxes\"]"),
            (.list([.dict([]), .dict([])]), "object_detector got detections for 2 images for one image"),
        ]
        for (output, message) in cases {
            #expect(throws: ModelServerError.modelFailure(message)) { try ObjectDetectionHandler.detections(in: output, threshold: 0.5, limit: 10) }
        }
        let mismatched = try Self.output(boxes: [0, 0, 1, 1], labels: [1, 2], scores: [0.9])
        #expect(throws: ModelServerError.modelFailure("object_detector got 1 boxes, 2 labels and 1 scores; expected one of each per detection")) {
            try ObjectDetectionHandler.detections(in: mismatched, threshold: 0.5, limit: 10)
        }
    }

    @Test func specKeysAreCheckedAtPacking() throws {
        let spec = try HandlerSpec.parse(yaml: "kind: object_detector\nthreshold: 0.25\nmaxDetections: 7\nlabels: coco.json\n", file: "d.yaml")
        #expect(spec == .objectDetector(ObjectDetectorSpec(threshold: 0.25, maxDetections: 7, labels: "coco.json")))
        #expect(throws: ArchiveError.self) { try HandlerSpec.parse(yaml: "kind: object_detector\nthreshold: 1.5\n", file: "d.yaml") }
        #expect(throws: ArchiveError.self) { try HandlerSpec.parse(yaml: "kind: object_detector\nmaxDetections: 0\n", file: "d.yaml") }
        #expect(throws: ArchiveError.self) { try HandlerSpec.parse(yaml: "kind: object_detector\nresize: 3\n", file: "d.yaml") }
    }
}
