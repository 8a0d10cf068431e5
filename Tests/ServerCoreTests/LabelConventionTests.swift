import Foundation
import ServerCore
import ServerTestSupport
import TestFixtures
import Testing

/// `index_to_name.json` is the labels file of an archive whose handler spec names none, as in
/// TorchServe's default handlers; names may repeat, as in torchvision's ImageNet file.
@Suite struct LabelConventionTests {
    static let classifierConfig = """
        handler:
          kind: image_classifier
          resizeShorter: 64
          cropSize: [56, 56]
          topk: 10
        """

    /// Ten classes, where 2 and 7 share a name and 9 has none.
    static let labels = """
        {"0": "zero", "1": "one", "2": ["n02012849", "crane"], "3": "three", "4": "four",
         "5": "five", "6": "six", "7": ["n03126707", "crane"], "8": "eight"}
        """

    @Test func archiveLabelsFileNamesTheClasses() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        try store.addFolderArchive(name: "named", model: "models/classifier_tiny.pt", config: Self.classifierConfig,
                                   handler: "image_classifier", extraFiles: ["index_to_name.json": Self.labels])
        try store.addFolderArchive(name: "unnamed", model: "models/classifier_tiny.pt", config: Self.classifierConfig,
                                   handler: "image_classifier")
        let server = store.makeServer()
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "named"))
        try await server.register(RegistrationOptions(url: "unnamed"))
        let body = try Fixtures.bytes("images/rgb.png")

        let plain = try #require(try JSONSerialization.jsonObject(
            with: Data(try await server.predict(model: "unnamed", request: InferenceRequest(body: body)).body)) as? [String: Double])
        #expect(Set(plain.keys) == Set((0..<10).map(String.init)), "no labels file: class indices")

        let named = try #require(try JSONSerialization.jsonObject(
            with: Data(try await server.predict(model: "named", request: InferenceRequest(body: body)).body)) as? [String: Double])
        #expect(Set(named.keys) == ["zero", "one", "crane", "three", "four", "five", "six", "eight", "9"], "\(named)")
        let crane = try #require(named["crane"])
        #expect(crane == max(try #require(plain["2"]), try #require(plain["7"])), "the more probable of the two cranes answers")
        #expect(named["zero"] == plain["0"])

        // Describe shows the names (and nothing for a model without a labels file).
        #expect(try server.describe(model: "named")[0].labels[7] == "crane")
        #expect(try server.describe(model: "unnamed")[0].labels.isEmpty)
    }

    /// The segmenter's answer is a mask of class indices; its archive's labels name them in describe.
    @Test func segmenterLabelsShowInDescribe() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        try store.addFolderArchive(name: "named_unet", model: "models/unet_tiny.pt", config: TestModelStore.segmenterConfig,
                                   extraFiles: ["index_to_name.json": "{\"0\": \"road\", \"1\": \"car\"}"])
        let server = store.makeServer()
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "named_unet", initialWorkers: 0))
        #expect(try server.describe(model: "named_unet")[0].labels == [0: "road", 1: "car"])
    }

    @Test func aLabelsFileTheSpecNamesMustBeThere() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        try store.addFolderArchive(name: "missing", model: "models/classifier_tiny.pt",
                                   config: Self.classifierConfig + "\n  labels: classes.json\n", handler: "image_classifier",
                                   extraFiles: ["index_to_name.json": Self.labels])
        let server = store.makeServer()
        defer { server.shutdown() }
        await #expect { try await server.register(RegistrationOptions(url: "missing")) } throws: { error in
            "\(error)".contains("does not contain \"classes.json\", which model-config.yaml's handler.labels names")
        }
    }
}
