import Foundation
import ImageCodec
import ServerCore
import ServerTestSupport
import TestFixtures
import Testing

/// The archives in model_store/, served as the README's first command serves them.
@Suite struct SampleModelTests {
    static let modelStore = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("model_store", isDirectory: true)

    func server() -> (ModelServer, URL) {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("samples-\(UUID().uuidString)")
        return (ModelServer(configuration: ServerConfiguration(modelStore: Self.modelStore, workDirectory: work), logger: quietLogger), work)
    }

    /// The sample segmenter's served masks agree with the scenes' ground truth on >= 95 % of
    /// the pixels (issue 6's bar; the model's held-out pixel accuracy is 96.3 %), and on
    /// >= 90 % of every scene. The samples are the first scenes of the sample seed that show a
    /// car and a person, chosen by content, not by how the model does on them; a regression
    /// anywhere on the request path shows here.
    @Test func unetSegmentsTheSampleScenes() async throws {
        let (server, work) = server()
        defer {
            server.shutdown()
            try? FileManager.default.removeItem(at: work)
        }
        try await server.register(RegistrationOptions(url: "unet.mar"))
        let decoder = ImageDecoder()
        var agreeing = 0, total = 0
        for name in ["scene_0.png", "scene_1.png", "scene_2.png", "scene_3.png", "scene_0.jpg"] {
            let input = try [UInt8](Data(contentsOf: Self.modelStore.appendingPathComponent("samples/\(name)")))
            let truthFile = name.replacingOccurrences(of: ".png", with: "").replacingOccurrences(of: ".jpg", with: "") + ".mask.png"
            let truth = try decoder.decode([UInt8](Data(contentsOf: Self.modelStore.appendingPathComponent("samples/\(truthFile)"))))
            let response = try await server.predict(model: "unet", request: InferenceRequest(body: input))
            let json = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: String]
            let mask = [UInt8](Data(base64Encoded: json?["base64_prediction"] ?? "") ?? Data())
            try #require(mask.count == truth.width * truth.height, "\(name)")
            // The truth PNG is grey, decoded to RGB: every third byte is the class id.
            let scene = zip(mask, stride(from: 0, to: truth.pixels.count, by: 3).map { truth.pixels[$0] }).filter { $0 == $1 }.count
            #expect(Double(scene) / Double(mask.count) >= 0.90, "\(name): \(scene) of \(mask.count) pixels agree")
            agreeing += scene
            total += mask.count
        }
        #expect(Double(agreeing) / Double(total) >= 0.95, "\(agreeing) of \(total) pixels agree")
    }

    /// The sample image classifier names the class that covers most pixels (among building,
    /// car, person, vegetation) in unseen generated scenes: for each label the first scene of
    /// the sample seed where that label leads the runner-up by 1.5x, chosen by content.
    @Test func scenesNamesTheDominantObject() async throws {
        let (server, work) = server()
        defer {
            server.shutdown()
            try? FileManager.default.removeItem(at: work)
        }
        try await server.register(RegistrationOptions(url: "scenes.mar"))
        let labels = ["building", "car", "person", "vegetation"]
        for label in labels {
            let input = try [UInt8](Data(contentsOf: Self.modelStore.appendingPathComponent("samples/dominant_\(label).png")))
            let response = try await server.predict(model: "scenes", request: InferenceRequest(body: input))
            let result = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Double])
            #expect(Set(result.keys) == Set(labels), "\(label): \(result)")
            #expect(abs(result.values.reduce(0, +) - 1) < 1e-4, "\(label): \(result)")
            #expect(result.max { $0.value < $1.value }?.key == label, "dominant_\(label).png: \(result)")
        }
    }

    /// The sample QA model answers the MLflow write-up's three questions as the write-up shows
    /// (its pyfunc's decoding, which the archive's spec selects), one request and a list.
    @Test func qaAnswersTheWriteUpsQuestions() async throws {
        let (server, work) = server()
        defer {
            server.shutdown()
            try? FileManager.default.removeItem(at: work)
        }
        try await server.register(RegistrationOptions(url: "qa.mar"))
        let context = "My name is Alex, I am 32 and live in Copenhagen."
        let pairs = [("What is my name?", "alex"), ("How old am I?", "32"), ("Where do I live?", "copenhagen")]
        for (question, answer) in pairs {
            let body = try JSONSerialization.data(withJSONObject: ["question": question, "text": context])
            let response = try await server.predict(model: "qa", request: InferenceRequest(body: [UInt8](body), contentType: "application/json"))
            let json = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
            #expect(json?["answer"] as? String == answer, "\(question): \(String(decoding: response.body, as: UTF8.self))")
        }
        let list = try JSONSerialization.data(withJSONObject: pairs.map { ["question": $0.0, "context": context] })
        let response = try await server.predict(model: "qa", request: InferenceRequest(body: [UInt8](list), contentType: "application/json"))
        let answers = (try JSONSerialization.jsonObject(with: Data(response.body)) as? [[String: Any]])?.map { $0["answer"] as? String }
        #expect(answers == pairs.map(\.1))
    }

    @Test func fortunesClassifiesClearTexts() async throws {
        let (server, work) = server()
        defer {
            server.shutdown()
            try? FileManager.default.removeItem(at: work)
        }
        try await server.register(RegistrationOptions(url: "fortunes.mar"))
        let body = Array("{\"inputs\": [\"The senator voted against the bill in congress\", \"Add two cups of flour and bake the bread\"]}".utf8)
        let response = try await server.predict(model: "fortunes", request: InferenceRequest(body: body, contentType: "application/json"))
        let results = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [[String: Double]])
        #expect(results.count == 2)
        #expect(results.map { $0.max { $0.value < $1.value }?.key } == ["politics", "food"])
        for result in results {
            #expect(Set(result.keys) == ["computers", "politics", "science", "men-women", "food", "sports"])
            #expect(abs(result.values.reduce(0, +) - 1) < 1e-4)
        }
    }
}
