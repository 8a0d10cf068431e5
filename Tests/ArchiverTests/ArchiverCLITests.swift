import Foundation
import ModelArchive
import TestFixtures
import Testing

/// The `archiver` executable as a user runs it (built by `swift build --build-tests`).
@Suite struct ArchiverCLITests {
    static let executable = BuiltExecutable("archiver")

    func archiver(_ arguments: [String], in folder: URL) throws -> BuiltExecutable.Run {
        try Self.executable.run(arguments, in: folder)
    }

    func workspace() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("archiver-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for name in ["unet_tiny.pt", "state_dict.pt", "truncated.pt"] {
            try FileManager.default.copyItem(at: Fixtures.url("models/\(name)"), to: folder.appendingPathComponent(name))
        }
        try "minWorkers: 1\nbatchSize: 2\nhandler:\n  inputSize: [96, 128]\n".write(
            to: folder.appendingPathComponent("model-config.yaml"), atomically: true, encoding: .utf8)
        return folder
    }

    @Test(.enabled(if: ArchiverCLITests.executable.isBuilt))
    func packsInspectsAndTheServerReaderOpensIt() throws {
        let folder = try workspace()
        defer { try? FileManager.default.removeItem(at: folder) }
        let pack = ["--model-name", "unet", "--version", "2.0", "--serialized-file", "unet_tiny.pt",
                    "--handler", "image_segmenter", "--config-file", "model-config.yaml", "--export-path", "out"]
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("out"), withIntermediateDirectories: true)
        let first = try archiver(pack, in: folder)
        #expect(first.status == 0, "\(first.output)")
        let mar = folder.appendingPathComponent("out/unet.mar")
        #expect(FileManager.default.fileExists(atPath: mar.path))

        // No silent overwrite; -f overwrites.
        let again = try archiver(pack, in: folder)
        #expect(again.status != 0)
        #expect(again.output.contains("-f") || again.output.contains("--force"), "\(again.output)")
        #expect(try archiver(pack + ["-f"], in: folder).status == 0)

        let inspect = try archiver(["inspect", "out/unet.mar"], in: folder)
        #expect(inspect.status == 0)
        #expect(inspect.output.contains("\"modelName\""))
        #expect(inspect.output.contains("image_segmenter"))

        let opened = try ArchiveReader.open(mar, extractingInto: folder.appendingPathComponent("work"))
        #expect(opened.name.rawValue == "unet")
        #expect(opened.version == "2.0")
        #expect(opened.config.settings.batchSize == 2)
    }

    @Test(.enabled(if: ArchiverCLITests.executable.isBuilt))
    func errorsNameTheProblemAndTheFix() throws {
        let folder = try workspace()
        defer { try? FileManager.default.removeItem(at: folder) }
        let cases: [([String], [String])] = [
            (["--model-name", "m", "--serialized-file", "state_dict.pt", "--handler", "image_segmenter"], ["torch.save", "torch.jit.trace"]),
            (["--model-name", "m", "--serialized-file", "truncated.pt", "--handler", "image_segmenter"], ["truncated.pt"]),
            (["--model-name", "m", "--serialized-file", "missing.pt", "--handler", "image_segmenter"], ["missing.pt"]),
            (["--model-name", "m", "--serialized-file", "unet_tiny.pt", "--handler", "handler.py"], ["Python", "image_segmenter"]),
            (["--model-name", "m", "--serialized-file", "unet_tiny.pt", "--handler", "segmenter"], ["segmenter", "image_segmenter"]),
            (["--model-name", "../evil", "--serialized-file", "unet_tiny.pt", "--handler", "image_segmenter"], ["../evil"]),
        ]
        for (arguments, mentions) in cases {
            let run = try archiver(arguments, in: folder)
            #expect(run.status != 0, "\(arguments)")
            for mention in mentions {
                #expect(run.output.contains(mention), "\(arguments): \(run.output)")
            }
            #expect(!run.output.contains("Fatal error"), "\(arguments)")
        }
        // Nothing was written for the refused archives.
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("m.mar").path))
    }
}
