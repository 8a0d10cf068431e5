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

    /// torchvision's ImageNet labels name classes 134 and 517 "crane": accepted, and an answer keeps the more probable.
    @Test func sharedNamesKeepTheMoreProbableClass() throws {
        let labels = try ClassLabels(json: Data("{\"0\": [\"n02012849\", \"crane\"], \"1\": \"tench\", \"2\": [\"n03126707\", \"crane\"]}".utf8))
        #expect(labels.names == [0: "crane", 1: "tench", 2: "crane"])
        let probabilities = ClassProbabilities(labels: labels)
        #expect(probabilities.jsonObject([0.2, 0.1, 0.7]) == "{\"crane\":0.7,\"tench\":0.1}")
        #expect(probabilities.jsonObject([0.5, 0.1, 0.4]) == "{\"crane\":0.5,\"tench\":0.1}")
        #expect(probabilities.jsonObject([0.5, 0.1, 0.4], top: 2) == "{\"crane\":0.5}")
    }

    @Test func rejectsWhatIsNotALabelMap() {
        let expected = "expected a JSON object of class index → name, like {\"0\": \"cat\", \"1\": \"dog\"}"
        let cases: [(json: String, message: String)] = [
            ("[\"a\"]", "the labels index_to_name.json are not a JSON object of class index → name, like {\"0\": \"cat\", \"1\": \"dog\"}"),
            ("{\"x\": \"a\"}", "the labels index_to_name.json have the key \"x\", not a class index; \(expected)"),
            ("{\"-1\": \"a\"}", "the labels index_to_name.json have the key \"-1\", not a class index; \(expected)"),
            ("{\"01\": \"a\"}", "the labels index_to_name.json have the key \"01\", not a class index; \(expected)"),
            ("{\"0\": 5}", "the labels index_to_name.json give class 0 a value that is not a name; \(expected)"),
        ]
        for (json, message) in cases {
            #expect(throws: ModelServerError.invalidModel(message), "\(json)") { try ClassLabels(json: Data(json.utf8)) }
        }
        // Parser messages differ between platforms: the case, the file and the hint are what users need.
        #expect { try ClassLabels(json: Data("{".utf8)) } throws: { error in
            guard case .invalidModel(let message)? = error as? ModelServerError else { return false }
            return message.hasPrefix("the labels index_to_name.json are not JSON (") && message.hasSuffix(expected)
        }
        #expect { try ClassLabels(contentsOf: URL(fileURLWithPath: "/nonexistent/index_to_name.json")) } throws: { error in
            guard case .invalidModel(let message)? = error as? ModelServerError else { return false }
            return message.hasPrefix("cannot read the labels index_to_name.json: ")
        }
    }
}
