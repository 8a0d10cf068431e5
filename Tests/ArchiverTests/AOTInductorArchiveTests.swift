import Foundation
import ModelArchive
import TestFixtures
import Testing

/// `archiver --serialized-file model.pt2` and `archiver inspect` on AOTInductor packages; neither
/// loads libtorch for them, so they run the same on both builds.
@Suite struct AOTInductorArchiveTests {
    static let executable = BuiltExecutable("archiver")

    @Test(.enabled(if: AOTInductorArchiveTests.executable.isBuilt))
    func packsAPackageAndInspectShowsItsTargetDeviceAndBatch() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("archiver-aoti-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("out"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        for name in ["unet_tiny_aoti_dynamic.pt2", "unet_tiny_aoti_batch1.pt2"] {
            try FileManager.default.copyItem(at: Fixtures.url("models/\(name)"), to: folder.appendingPathComponent(name))
        }
        try "minWorkers: 1\nbatchSize: 4\nhandler:\n  inputSize: [96, 128]\n".write(
            to: folder.appendingPathComponent("model-config.yaml"), atomically: true, encoding: .utf8)
        let cases = [("unet_tiny_aoti_dynamic.pt2", "dynamic", "batch dynamic (1 to 8)"), ("unet_tiny_aoti_batch1.pt2", "fixed", "batch 1")]
        for (file, name, batch) in cases {
            let pack = try Self.executable.run(
                ["--model-name", name, "--serialized-file", file, "--handler", "image_segmenter",
                 "--config-file", "model-config.yaml", "--export-path", "out"], in: folder)
            #expect(pack.status == 0, "\(pack.output)")
            #expect(pack.output.contains("AOTInductor package, target device cpu, \(batch)"), "\(pack.output)")

            let mar = folder.appendingPathComponent("out/\(name).mar")
            let opened = try ArchiveReader.open(mar, extractingInto: folder.appendingPathComponent("work"))
            #expect(opened.manifest.model.serializedFile == file)
            #expect(opened.aotInductor?.device == "cpu")

            let inspect = try Self.executable.run(["inspect", "out/\(name).mar"], in: folder)
            #expect(inspect.status == 0, "\(inspect.output)")
            #expect(inspect.output.contains("Serialized file: \(file): AOTInductor package, target device cpu, \(batch)"), "\(inspect.output)")
        }
    }
}
