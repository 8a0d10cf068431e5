import Foundation
import ImageCodec
import Prometheus
import ServerCore
import ServerHTTP
import ServerTestSupport
import TestFixtures
import Testing

/// The sample detector (`detector.mar`, trained by scripts/samples/train_detector.py) served by the
/// `object_detector` handler: TorchServe's answer form, the scripted model's own detections, images
/// of different sizes batched as one list, and the overlay.
@Suite struct ObjectDetectorTests {
    static let modelStore = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("model_store", isDirectory: true)

    struct Found: Equatable {
        var label: String
        var box: [Double]
        var score: Double
    }

    /// TorchServe's form: a list of `{"<label>": [x1, y1, x2, y2], "score": s}`.
    static func parse(_ body: [UInt8]) throws -> [Found] {
        let list = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [[String: Any]], "\(String(decoding: body, as: UTF8.self))")
        return try list.map { entry in
            #expect(entry.count == 2, "\(entry)")
            let score = try #require(entry["score"] as? Double)
            let (label, value) = try #require(entry.first { $0.key != "score" })
            let box = try #require(value as? [Double])
            #expect(box.count == 4)
            return Found(label: label, box: box, score: score)
        }
    }

    func withDetector(_ options: RegistrationOptions = RegistrationOptions(url: "detector.mar"), registry: PrometheusCollectorRegistry? = nil,
                      _ body: (ModelServer) async throws -> Void) async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("detector-\(UUID().uuidString)")
        let configuration = ServerConfiguration(modelStore: Self.modelStore, workDirectory: work)
        let server = registry.map { ModelServer(configuration: configuration, logger: quietLogger, metricsFactory: HTTPServer.metricsFactory(registry: $0)) }
            ?? ModelServer(configuration: configuration, logger: quietLogger)
        defer {
            server.shutdown()
            try? FileManager.default.removeItem(at: work)
        }
        try await server.register(options)
        try await body(server)
    }

    func sample(_ name: String) throws -> [UInt8] {
        try [UInt8](Data(contentsOf: Self.modelStore.appendingPathComponent("samples/\(name)")))
    }

    /// The served detections are the scripted model's in Python (torchvision's ops, the same
    /// threshold), written by the training script for three held-out scenes chosen by content.
    @Test func servesTheModelsDetectionsOnTheSampleScenes() async throws {
        try await withDetector { server in
            var truthBoxes = 0, truthFound = 0
            for index in 1...3 {
                let response = try await server.predict(model: "detector", request: InferenceRequest(body: try sample("street_\(index).png")))
                #expect(response.contentType == "application/json")
                let got = try Self.parse(response.body)
                let expected = try Self.parse(try Fixtures.bytes("expected/detector_street_\(index).json"))
                try #require(got.count == expected.count, "street_\(index): \(got) vs \(expected)")
                for (served, python) in zip(got, expected) {
                    #expect(served.label == python.label, "street_\(index)")
                    // The fixture rounds to 2 decimals (boxes) and 4 (scores).
                    #expect(zip(served.box, python.box).allSatisfy { abs($0 - $1) <= 0.011 }, "street_\(index): \(served) vs \(python)")
                    #expect(abs(served.score - python.score) <= 2e-4, "street_\(index): \(served) vs \(python)")
                }
                #expect(zip(got, got.dropFirst()).allSatisfy { $0.score >= $1.score }, "highest score first")
                // And they are cars and people where the scene has them (IoU >= 0.5 with a ground-truth box).
                let truthList = try #require(try JSONSerialization.jsonObject(
                    with: Data(try Fixtures.bytes("expected/detector_street_\(index)_truth.json"))) as? [[String: [Double]]])
                for truth in truthList {
                    guard let (label, box) = truth.first else { continue }
                    truthBoxes += 1
                    if got.contains(where: { $0.label == label && Self.iou($0.box, box) >= 0.5 }) { truthFound += 1 }
                }
            }
            #expect(Double(truthFound) >= 0.6 * Double(truthBoxes), "\(truthFound) of \(truthBoxes) true boxes found")
        }
    }

    /// Requests batched together go in as one list of images of different sizes; each answer is
    /// the one the image gets alone, boxes in its own pixels. (The images share an aspect ratio:
    /// torchvision pads a batch to its largest resized image, so images resized to different
    /// shapes see padding they would not see alone, in torchvision as here.)
    @Test func batchesImagesOfDifferentSizesAsOneList() async throws {
        let registry = PrometheusCollectorRegistry()
        try await withDetector(RegistrationOptions(url: "detector.mar", batchSize: 4, maxBatchDelay: 500), registry: registry) { server in
            // 128×96, 160×120, 128×96 and a 128×96 JPEG.
            let inputs = [try sample("street_1.png"), try Fixtures.bytes("images/rgb.png"), try sample("street_2.png"),
                          try sample("scene_0.jpg")]
            var alone: [[Found]] = []
            for input in inputs {
                alone.append(try Self.parse(try await server.predict(model: "detector", request: InferenceRequest(body: input)).body))
            }
            let together = try await withThrowingTaskGroup(of: (Int, [Found]).self) { group in
                for (index, input) in inputs.enumerated() {
                    group.addTask { (index, try Self.parse(try await server.predict(model: "detector", request: InferenceRequest(body: input)).body)) }
                }
                var answers = [[Found]](repeating: [], count: inputs.count)
                for try await (index, found) in group { answers[index] = found }
                return answers
            }
            for index in inputs.indices {
                #expect(together[index].map(\.label) == alone[index].map(\.label), "input \(index)")
                for (batched, single) in zip(together[index], alone[index]) {
                    #expect(zip(batched.box, single.box).allSatisfy { abs($0 - $1) <= 1e-3 }, "input \(index): \(batched) vs \(single)")
                }
            }
            let batches = registry.emitToString().split(separator: "\n").first { $0.hasPrefix("ts_batch_size_bucket") && $0.contains("le=\"1.0\"") }
            let total = registry.emitToString().split(separator: "\n").first { $0.hasPrefix("ts_batch_size_count") }
            let single = batches.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) } ?? 0
            let all = total.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) } ?? 0
            #expect(all > single, "at least one batch held several images (\(single) of \(all) batches had one)")
        }
    }

    @Test func overlayDrawsTheBoxesOnTheInput() async throws {
        try await withDetector { server in
            let input = try sample("street_1.png")
            var request = InferenceRequest(body: input)
            request.parameters["output"] = "overlay"
            let response = try await server.predict(model: "detector", request: request)
            #expect(response.contentType == "image/png")
            let overlay = try ImageDecoder().decode(response.body)
            let original = try ImageDecoder().decode(input)
            #expect(overlay.width == original.width && overlay.height == original.height)
            let found = try Self.parse(try await server.predict(model: "detector", request: InferenceRequest(body: input)).body)
            let first = try #require(found.first)
            // The top edge of the most confident box is drawn in its class's palette colour.
            let colour: [UInt8] = first.label == "car" ? [128, 0, 0] : [0, 128, 0]
            let (x, y) = (Int((first.box[0] + first.box[2]) / 2), Int(first.box[1]))
            let pixel = (y * overlay.width + x) * 3
            #expect(Array(overlay.pixels[pixel..<(pixel + 3)]) == colour, "\(first)")
            #expect(overlay.pixels != original.pixels)

            request.parameters["output"] = "mask"
            await #expect(throws: ModelServerError.badRequest("output must be json or overlay for object_detector; got 'mask'")) {
                try await server.predict(model: "detector", request: request)
            }
        }
    }

    @Test func numericTensorsAreRefusedWithAReason() async throws {
        try await withDetector { server in
            let input = try TensorData(shape: [1, 3, 8, 8], elements: .numeric(.float32, [UInt8](repeating: 0, count: 4 * 3 * 64)))
            await #expect { try await server.forward(model: "detector", inputs: [input]) } throws: { error in
                guard case .badRequest(let message)? = error as? ModelServerError else { return false }
                return message.contains("takes a list of images")
            }
        }
    }

    static func iou(_ a: [Double], _ b: [Double]) -> Double {
        let width = max(0, min(a[2], b[2]) - max(a[0], b[0])), height = max(0, min(a[3], b[3]) - max(a[1], b[1]))
        let intersection = width * height
        let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - intersection
        return union > 0 ? intersection / union : 0
    }
}
