import Foundation
import Testing
import TestFixtures

@testable import ModelArchive

@Suite struct ArchiveWriterTests {
    let model = Fixtures.url("models/unet_tiny.pt")
    var handlers: URL {
        Fixtures.root.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("handlers")
    }

    @Test(arguments: [ArchiveFormat.zip, .tarGzip, .folder])
    func writesAndReadsBack(_ format: ArchiveFormat) throws {
        let work = try TemporaryFolder()
        let labels = try work.file("index_to_name.json", #"{"0": "background"}"#)
        let extras = work.url.appendingPathComponent("extras")
        _ = try work.file("extras/sample.txt", "hello")
        _ = try work.file("extras/nested/deep.txt", "deep")
        _ = try work.file("extras/__pycache__/x.pyc", "skipped")
        let config = try work.file("config.yaml", "# keep this comment\nbatchSize: 4\n")
        let request = PackRequest(
            modelName: "unet", version: "2.0", serializedFile: model,
            handler: handlers.appendingPathComponent("image_segmenter.yaml").path,
            extraFiles: [labels, extras], configFile: config
        )
        let package = try ModelPackage.prepare(request)
        let exportPath = work.url.appendingPathComponent("export")
        try FileManager.default.createDirectory(at: exportPath, withIntermediateDirectories: true)
        var reports: [ArchiveProgress] = []
        let output = try ArchiveWriter.write(package, to: exportPath, format: format) { reports.append($0) }
        #expect(output.lastPathComponent == ["unet.mar", "unet.tar.gz", "unet"][[ArchiveFormat.zip, .tarGzip, .folder].firstIndex(of: format)!])
        #expect(reports.last.map { $0.bytesDone == $0.bytesTotal } == true)
        #expect(zip(reports, reports.dropFirst()).allSatisfy { $0.bytesDone <= $1.bytesDone })
        #expect(work.listing("export").allSatisfy { !$0.hasPrefix(".") })

        let opened = try ArchiveReader.open(output, extractingInto: work.url.appendingPathComponent("store"))
        #expect(opened.name.rawValue == "unet" && opened.version == "2.0" && opened.handler == .imageSegmenter)
        #expect(opened.manifest.model.configFile == "config.yaml")
        #expect(opened.config.settings.batchSize == 4)
        guard case .imageSegmenter(let spec) = opened.handlerSpec else { Issue.record("wrong spec"); return }
        #expect(spec.inputSize == ImageSize(height: 96, width: 128))
        #expect(try String(contentsOf: opened.configFile!, encoding: .utf8).hasPrefix("# keep this comment\nbatchSize: 4\n"))
        #expect(try Data(contentsOf: opened.serializedFile) == Data(contentsOf: model))
        #expect(try String(contentsOf: opened.url(of: "sample.txt"), encoding: .utf8) == "hello")
        #expect(try String(contentsOf: opened.url(of: "nested/deep.txt"), encoding: .utf8) == "deep")
        #expect(!FileManager.default.fileExists(atPath: opened.url(of: "__pycache__").path))
    }

    @Test func largeFilesStreamThroughEveryFormat() throws {
        let work = try TemporaryFolder()
        var generator = SystemRandomNumberGenerator()
        let big = (0..<(3 << 20)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let weights = try work.file("big.pt", bytes: big)
        let package = try ModelPackage.prepare(PackRequest(modelName: "big", serializedFile: weights, handler: "image_classifier"))
        for format in [ArchiveFormat.zip, .tarGzip] {
            let output = try ArchiveWriter.write(package, to: work.url, format: format)
            let opened = try ArchiveReader.open(output, extractingInto: work.url.appendingPathComponent("store"))
            #expect(try Data(contentsOf: opened.serializedFile) == Data(big))
        }
    }

    @Test func refusesToOverwriteUnlessForced() throws {
        let work = try TemporaryFolder()
        let package = try ModelPackage.prepare(PackRequest(modelName: "unet", serializedFile: model, handler: "image_segmenter"))
        let output = try ArchiveWriter.write(package, to: work.url, format: .zip)
        #expect(throws: ArchiveError.outputExists(path: output.path)) {
            try ArchiveWriter.write(package, to: work.url, format: .zip)
        }
        try ArchiveWriter.write(package, to: work.url, format: .zip, overwrite: true)
        let folder = try ArchiveWriter.write(package, to: work.url, format: .folder)
        try ArchiveWriter.write(package, to: work.url, format: .folder, overwrite: true)
        #expect(work.listing() == ["unet", "unet.mar", "unet/MAR-INF", "unet/MAR-INF/MANIFEST.json", "unet/unet_tiny.pt"])
        _ = folder
    }

    @Test func specFileAndConfigHandlerMustAgree() throws {
        let work = try TemporaryFolder()
        let spec = handlers.appendingPathComponent("image_segmenter.yaml").path
        let same = try work.file("same.yaml", "handler:\n" + (try String(contentsOfFile: spec, encoding: .utf8))
            .split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n"))
        let package = try ModelPackage.prepare(PackRequest(modelName: "m", serializedFile: model, handler: spec, configFile: same))
        #expect(package.manifest.model.configFile == "same.yaml")

        let different = try work.file("different.yaml", "handler:\n  kind: image_segmenter\n  numClasses: 2\n")
        let error = expectArchiveError {
            _ = try ModelPackage.prepare(PackRequest(modelName: "m", serializedFile: model, handler: spec, configFile: different))
        }
        guard case .handlerConflict = error else { Issue.record("\(String(describing: error))"); return }
    }

    @Test func configMustMatchHandlerName() throws {
        let work = try TemporaryFolder()
        let config = try work.file("model-config.yaml", "handler:\n  kind: text_classifier\n")
        let error = expectArchiveError {
            _ = try ModelPackage.prepare(PackRequest(modelName: "m", serializedFile: model, handler: "image_segmenter", configFile: config))
        }
        guard case .invalidConfig(_, let issues) = error else { Issue.record("\(String(describing: error))"); return }
        #expect(issues.first?.key == "handler.kind" && issues.first?.line == 2)
    }

    @Test func refusesBadRequests() throws {
        let work = try TemporaryFolder()
        let other = try work.file("sub/unet_tiny.pt", "clash")
        #expect(throws: ArchiveError.pythonHandler("handler.py")) {
            try ModelPackage.prepare(PackRequest(modelName: "m", serializedFile: model, handler: "handler.py"))
        }
        #expect(throws: ArchiveError.invalidModelName("a/b")) {
            try ModelPackage.prepare(PackRequest(modelName: "a/b", serializedFile: model, handler: "image_segmenter"))
        }
        let missing = work.url.appendingPathComponent("missing.pt")
        #expect(throws: ArchiveError.notFound(path: missing.path, role: "serialized file")) {
            try ModelPackage.prepare(PackRequest(modelName: "m", serializedFile: missing, handler: "image_segmenter"))
        }
        let clash = expectArchiveError {
            _ = try ModelPackage.prepare(PackRequest(modelName: "m", serializedFile: model, handler: "image_segmenter", extraFiles: [other]))
        }
        #expect(clash?.description.contains("Two files would be stored as \"unet_tiny.pt\"") == true)
        #expect(throws: ArchiveError.missingFile(path: "the archive", file: "vocab.txt",
                                                  referencedBy: "the text_classifier handler's default handler.vocab")) {
            try ModelPackage.prepare(PackRequest(modelName: "m", serializedFile: model, handler: "text_classifier"))
        }
        let runtime = expectArchiveError {
            _ = try ModelPackage.prepare(PackRequest(modelName: "m", serializedFile: model, handler: "image_segmenter", runtime: "java"))
        }
        #expect(runtime?.description.contains("Unknown runtime \"java\"") == true)
    }

    @Test func pythonFilesAreStoredWithAWarning() throws {
        let work = try TemporaryFolder()
        let modelFile = try work.file("model.py", "class Net: pass\n")
        let requirements = try work.file("requirements.txt", "torch\n")
        let package = try ModelPackage.prepare(PackRequest(
            modelName: "m", serializedFile: model, handler: "image_segmenter",
            requirementsFile: requirements, modelFile: modelFile))
        #expect(package.manifest.model.modelFile == "model.py" && package.manifest.model.requirementsFile == "requirements.txt")
        #expect(package.warnings.count == 2 && package.warnings[0].contains("never runs Python"))
    }
}
