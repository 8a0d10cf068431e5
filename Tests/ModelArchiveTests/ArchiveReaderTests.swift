import Foundation
import Testing
import TestFixtures
import Torch

@testable import ModelArchive

/// Reading the archives that the real torch-model-archiver 0.12 made (see scripts/fixtures).
@Suite struct ArchiveReaderTests {
    @Test(arguments: ["unet_tiny.mar", "unet_tiny.tar.gz", "unet_tiny"])
    func readsTorchModelArchiverOutput(_ name: String) throws {
        let store = try TemporaryFolder()
        let opened = try ArchiveReader.open(Fixtures.url("archives/tma/\(name)"), extractingInto: store.url)
        #expect(opened.format == (name.hasSuffix(".mar") ? .zip : name.hasSuffix(".tar.gz") ? .tarGzip : .folder))
        #expect(opened.name.rawValue == "unet_tiny")
        #expect(opened.version == "1.0")
        #expect(opened.handler == .imageSegmenter)
        #expect(!opened.isManifestSynthesized)
        #expect(opened.manifest.archiverVersion == "0.12.0")
        #expect(opened.config.settings.batchSize == 4 && opened.config.settings.maxWorkers == 2 && opened.config.deviceType == .cpu)
        #expect(opened.config.warnings.map(\.key) == ["jobQueueSize"])
        #expect(opened.config.warnings.first?.line == 8)
        guard case .imageSegmenter(let spec) = opened.handlerSpec else { Issue.record("wrong spec"); return }
        #expect(spec.inputSize == ImageSize(height: 96, width: 128) && spec.numClasses == 32)
        #expect(FileManager.default.fileExists(atPath: opened.url(of: spec.labels!).path))
        let original = try Data(contentsOf: Fixtures.url("models/unet_tiny.pt"))
        #expect(try Data(contentsOf: opened.serializedFile) == original)
        if name.hasSuffix("unet_tiny") {
            #expect(opened.extractedFolder == nil && store.listing().isEmpty)
        } else {
            let extracted = try #require(opened.extractedFolder)
            #expect(extracted.path.hasPrefix(store.url.path + "/") && extracted.lastPathComponent.hasPrefix("unet_tiny-"))
            #expect(store.listing().allSatisfy { !$0.hasPrefix(".") })
        }
    }

    @Test func extractedSerializedFileLoadsAsTorchScript() throws {
        let store = try TemporaryFolder()
        let opened = try ArchiveReader.open(Fixtures.url("archives/tma/unet_tiny.mar"), extractingInto: store.url)
        _ = try ScriptModule(contentsOf: opened.serializedFile)
    }

    @Test func sageMakerLayoutGetsASynthesisedManifest() throws {
        let folder = try TemporaryFolder()
        let model = folder.url.appendingPathComponent("resnet")
        try FileManager.default.createDirectory(at: model, withIntermediateDirectories: true)
        try Data("weights".utf8).write(to: model.appendingPathComponent("model.pt"))
        try Data("batchSize: 2\nhandler:\n  kind: image_classifier\n".utf8).write(to: model.appendingPathComponent("model-config.yaml"))
        let opened = try ArchiveReader.read(folder: model)
        #expect(opened.isManifestSynthesized)
        #expect(opened.name.rawValue == "resnet" && opened.version == "1.0" && opened.handler == .imageClassifier)
        #expect(opened.serializedFile.lastPathComponent == "model.pt" && opened.config.settings.batchSize == 2)

        // The same as model.tar.gz: the name comes from the file, minus its extensions.
        let tar = TarBuilder.entry("model.pt", Array("weights".utf8))
            + TarBuilder.entry("model-config.yaml", Array("handler:\n  kind: image_classifier\n".utf8)) + TarBuilder.end
        let archive = try folder.file("model.tar.gz", bytes: try TarBuilder.gzip(tar))
        let fromTar = try ArchiveReader.open(archive, extractingInto: folder.url.appendingPathComponent("store"))
        #expect(fromTar.isManifestSynthesized && fromTar.name.rawValue == "model" && fromTar.format == .tarGzip)
    }

    @Test func folderWithoutManifestOrHandlerIsRefused() throws {
        let folder = try TemporaryFolder()
        _ = try folder.file("model.pt", "weights")
        _ = try folder.file("model-config.yaml", "batchSize: 2\n")
        #expect(throws: ArchiveError.missingManifest(path: folder.url.path)) { try ArchiveReader.read(folder: folder.url) }
    }

    @Test func pythonHandlerInManifestIsRefused() throws {
        let folder = try TemporaryFolder()
        _ = try folder.file("model.pt", "weights")
        _ = try folder.file("MAR-INF/MANIFEST.json", #"{"runtime": "python", "model": {"modelName": "m", "serializedFile": "model.pt", "handler": "handler.py", "modelVersion": "1.0"}}"#)
        #expect(throws: ArchiveError.pythonHandler("handler.py")) { try ArchiveReader.read(folder: folder.url) }
    }

    @Test func manifestPathsMustStayInside() throws {
        let folder = try TemporaryFolder()
        _ = try folder.file("MAR-INF/MANIFEST.json", #"{"model": {"modelName": "m", "serializedFile": "../../etc/passwd", "handler": "image_segmenter"}}"#)
        let error = expectArchiveError { _ = try ArchiveReader.read(folder: folder.url) }
        #expect(error?.description.contains("points outside the archive") == true)
    }

    @Test func missingReferencedFilesAreNamed() throws {
        let folder = try TemporaryFolder()
        _ = try folder.file("model.pt", "weights")
        _ = try folder.file("model-config.yaml", "handler:\n  labels: names.json\n")
        _ = try folder.file("MAR-INF/MANIFEST.json", #"{"model": {"modelName": "m", "serializedFile": "model.pt", "handler": "image_segmenter"}}"#)
        #expect(throws: ArchiveError.missingFile(path: folder.url.path, file: "names.json",
                                                  referencedBy: "model-config.yaml's handler.labels")) {
            try ArchiveReader.read(folder: folder.url)
        }
    }

    @Test func notAnArchiveIsNamed() throws {
        let folder = try TemporaryFolder()
        let file = try folder.file("model.mar", "this is not a zip")
        #expect(throws: ArchiveError.unrecognizedFormat(path: file.path)) {
            try ArchiveReader.open(file, extractingInto: folder.url.appendingPathComponent("store"))
        }
    }
}
