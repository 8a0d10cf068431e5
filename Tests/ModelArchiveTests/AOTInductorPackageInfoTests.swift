import Foundation
import ModelArchive
import TestFixtures
import Testing

/// Reading an AOTInductor package's facts from its zip, without libtorch (so on both builds).
@Suite struct AOTInductorPackageInfoTests {
    @Test func readsTheTargetDeviceAndBatchOfBothFixtures() throws {
        let dynamic = try #require(try AOTInductorPackageInfo.read(Fixtures.url("models/unet_tiny_aoti_dynamic.pt2")))
        #expect(dynamic == AOTInductorPackageInfo(modelName: "model", device: "cpu", batch: .dynamic(max: 8)))
        let fixed = try #require(try AOTInductorPackageInfo.read(Fixtures.url("models/unet_tiny_aoti_batch1.pt2")))
        #expect(fixed == AOTInductorPackageInfo(modelName: "model", device: "cpu", batch: .fixed(1)))
    }

    @Test func torchScriptAndOtherFilesAreNoPackage() throws {
        #expect(try AOTInductorPackageInfo.read(Fixtures.url("models/unet_tiny.pt")) == nil, "a TorchScript zip")
        #expect(try AOTInductorPackageInfo.read(Fixtures.url("models/not_a_model.pt")) == nil, "a text file")
    }

    @Test func aDamagedPackageIsAnError() throws {
        let data = try Data(contentsOf: Fixtures.url("models/unet_tiny_aoti_dynamic.pt2"))
        let cut = FileManager.default.temporaryDirectory.appendingPathComponent("cut-\(UUID().uuidString).pt2")
        try data.prefix(data.count / 2).write(to: cut)
        defer { try? FileManager.default.removeItem(at: cut) }
        #expect(throws: ArchiveError.self) { try AOTInductorPackageInfo.read(cut) }
    }
}
