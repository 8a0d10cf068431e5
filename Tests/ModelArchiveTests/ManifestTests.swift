import Foundation
import TestFixtures
import Testing

@testable import ModelArchive

@Suite struct ManifestTests {
    let manifest = Manifest(
        createdOn: "21/11/2026 10:15:02", runtime: "python",
        model: Manifest.Model(modelName: "unet", serializedFile: "unet.pt", handler: "image_segmenter",
                              modelVersion: "1.0", configFile: "model-config.yaml")
    )

    @Test func writesTorchModelArchiverFormat() {
        #expect(manifest.jsonText == """
            {
              "createdOn": "21/11/2026 10:15:02",
              "runtime": "python",
              "model": {
                "modelName": "unet",
                "serializedFile": "unet.pt",
                "handler": "image_segmenter",
                "modelVersion": "1.0",
                "configFile": "model-config.yaml"
              },
              "archiverVersion": "0.12.0"
            }
            """)
    }

    @Test func roundTrips() throws {
        var full = manifest
        full.model.modelFile = "model.py"
        full.model.requirementsFile = "requirements.txt"
        full.runtime = "python3"
        let decoded = try Manifest.decode(Data(full.jsonText.utf8), path: "x")
        #expect(decoded == full)
    }

    @Test func matchesTheManifestTorchModelArchiverWrote() throws {
        let written = try String(contentsOf: Fixtures.url("archives/tma/unet_tiny/MAR-INF/MANIFEST.json"), encoding: .utf8)
        let decoded = try Manifest.decode(Data(written.utf8), path: "fixture")
        #expect(decoded.model.modelName == "unet_tiny")
        #expect(decoded.model.configFile == "model-config.yaml")
        #expect(decoded.archiverVersion == "0.12.0")
        #expect(decoded.jsonText == written)
    }

    @Test func escapesLikePython() {
        #expect(Manifest.quoted("a\"b\\c\nd é 😀") == #""a\"b\\c\nd \u00e9 \ud83d\ude00""#)
    }

    @Test func createdOnUsesDayMonthYear() {
        var components = DateComponents()
        (components.year, components.month, components.day, components.hour, components.minute, components.second) =
            (2026, 3, 4, 5, 6, 7)
        let date = Calendar.current.date(from: components)!
        #expect(Manifest.creationTimestamp(date) == "04/03/2026 05:06:07")
    }

    @Test func missingFieldsAreNamed() {
        let error = expectArchiveError { _ = try Manifest.decode(Data(#"{"model": {"modelName": "x"}}"#.utf8), path: "a.mar") }
        #expect(error == .invalidManifest(path: "a.mar", detail: "model.handler is missing"))
        let notJSON = expectArchiveError { _ = try Manifest.decode(Data("{".utf8), path: "a.mar") }
        #expect(notJSON == .invalidManifest(path: "a.mar", detail: "it is not valid JSON"))
    }

    @Test func modelNamesAreChecked() throws {
        #expect(ModelName(rawValue: "unet_v2.1-b") != nil)
        for bad in ["", "../x", "a/b", "-a", ".hidden", "a b", String(repeating: "a", count: 65)] {
            #expect(ModelName(rawValue: bad) == nil, "\(bad)")
        }
        #expect(throws: ArchiveError.invalidModelVersion("1/0")) { try ModelName.validateVersion("1/0") }
    }
}
