import Foundation
import TestFixtures
import Testing
@testable import ServerCore

@Suite struct TextClassLabelsTests {
    @Test func readsTorchServesForms() throws {
        let labels = try ClassLabels(contentsOf: Fixtures.url("text/index_to_name.json"))
        #expect(labels.name(ofClass: 0) == "world")
        #expect(labels.name(ofClass: 3) == "sci_tech")
        #expect(labels.name(ofClass: 4) == "4")
        let imagenet = try ClassLabels(json: Data("{\"0\": [\"n01440764\", \"tench\"], \"1\": [\"n01443537\", \"goldfish\"]}".utf8))
        #expect(imagenet.names == [0: "tench", 1: "goldfish"])
        #expect(ClassLabels.indices.name(ofClass: 7) == "7")
    }

    @Test func rejectsWhatIsNotALabelMap() {
        for json in ["[\"a\"]", "{\"x\": \"a\"}", "{\"-1\": \"a\"}", "{\"01\": \"a\"}", "{\"0\": 5}", "{\"0\": \"a\", \"1\": \"a\"}", "{"] {
            #expect(throws: ModelServerError.self, "\(json)") { try ClassLabels(json: Data(json.utf8)) }
        }
        #expect(throws: ModelServerError.self) { try ClassLabels(contentsOf: URL(fileURLWithPath: "/nonexistent/index_to_name.json")) }
    }
}
