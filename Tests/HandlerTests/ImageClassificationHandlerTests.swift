import Foundation
import ModelArchive
import TestFixtures
import Testing
import Torch
@testable import ServerCore

@Suite struct ImageClassificationHandlerTests {
    struct Expected: Decodable {
        let resize: Int
        let crop: Int
        let labels: [String: String]
        let probabilities: [String: [Float]]
    }

    /// Resize(64) → CenterCrop(56) → ToTensor → Normalize → forward → softmax → top 3, against torchvision.
    @Test func topKMatchesTorchvision() throws {
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: Fixtures.url("models/classifier_tiny.json")))
        let labels = try ClassLabels(json: try JSONEncoder().encode(expected.labels))
        let spec = ImageClassifierSpec(resizeShorter: expected.resize, cropSize: ImageSize(height: expected.crop, width: expected.crop), topk: 3)
        let handler = try ImageClassificationHandler(spec: spec, labels: labels)
        let module = try ScriptModule(contentsOf: Fixtures.url("models/classifier_tiny.pt"))
        for (image, probabilities) in expected.probabilities {
            let prepared = try handler.preprocess(InferenceRequest(body: try Fixtures.bytes("images/\(image)")))
            let response = try handler.postprocess(try module.forward(prepared.tensors), for: prepared)
            #expect(response.contentType == "application/json")
            let text = String(decoding: response.body, as: UTF8.self)
            // Keys in descending probability: compare the order as written.
            let top = probabilities.indices.sorted { probabilities[$0] > probabilities[$1] }.prefix(3)
            let names = top.map { "\"class_\($0)\"" }
            var position = text.startIndex
            for name in names {
                let found = try #require(text.range(of: name, range: position..<text.endIndex), "\(image): \(name) missing or out of order in \(text)")
                position = found.upperBound
            }
            let json = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Double])
            #expect(json.count == 3)
            for index in top {
                let got = try #require(json["class_\(index)"])
                #expect(abs(got - Double(probabilities[index])) < 1e-5, "\(image) class \(index)")
            }
        }
    }

    @Test func refusesNonImages() throws {
        let handler = try ImageClassificationHandler(spec: ImageClassifierSpec(), labels: .indices)
        #expect(throws: ModelServerError.invalidInput("empty body: send a PNG or JPEG image")) { try handler.preprocess(InferenceRequest(body: [])) }
        do {
            _ = try handler.preprocess(InferenceRequest(body: Array("hello".utf8)))
            Issue.record("text accepted as an image")
        } catch {
            guard case .unsupportedMediaType = error else { Issue.record("got \(error)"); return }
        }
    }
}
