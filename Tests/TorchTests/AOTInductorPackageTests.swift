import Foundation
import TestFixtures
import Testing
import Torch

/// The AOTInductor packages of the tiny U-Net (scripts/fixtures/make_aoti_fixtures.py) through the
/// shim: on the libtorch 2 build they give the TorchScript module's output; on the Debian build
/// loading one says which build can.
@Suite struct AOTInductorPackageTests {
    static let dynamic = Fixtures.url("models/unet_tiny_aoti_dynamic.pt2")
    static let batch1 = Fixtures.url("models/unet_tiny_aoti_batch1.pt2")

    func unetInput(batch: Int = 1) throws -> Tensor {
        let one = try readFloats("models/unet_input.f32")
        return try Tensor.copying(Array([[Float]](repeating: one, count: batch).joined()), shape: [batch, 3, 96, 128])
    }

    @Test(.enabled(if: TorchRuntime.canLoadAOTInductor))
    func dynamicPackageGivesTheTorchScriptOutputForAnyBatch() throws {
        let package = try AOTInductorPackage(contentsOf: Self.dynamic, runners: 2)
        #expect(package.targetDevice == "cpu")
        #expect(package.device == .cpu)
        #expect(package.weightBytes > 10_000, "the U-Net's constants")
        let reference = try #require(try ScriptModule(contentsOf: Fixtures.url("models/unet_tiny.pt")).forward(try unetInput()).firstTensor)
        let single = try #require(package.forward([try unetInput()]).firstTensor)
        #expect(single.shape == [1, 5, 96, 128])
        #expect(try single.maxAbsDifference(reference) < 1e-4)
        let three = try #require(package.forward([try unetInput(batch: 3)]).firstTensor)
        #expect(three.shape == [3, 5, 96, 128])
        #expect(try three.narrow(dim: 0, start: 2, length: 1).maxAbsDifference(reference) < 1e-4)
    }

    @Test(.enabled(if: TorchRuntime.canLoadAOTInductor))
    func packageCompiledForBatchOneAnswersOneRow() throws {
        let package = try AOTInductorPackage(contentsOf: Self.batch1)
        let reference = try Tensor.copying(try readFloats("models/unet_output.f32"), shape: [1, 5, 96, 128])
        #expect(try #require(package.forward([try unetInput()]).firstTensor).maxAbsDifference(reference) < 1e-4)
        // Its generated input checks are off by default: a batch of 2 is read as its first row.
        #expect(try #require(package.forward([try unetInput(batch: 2)]).firstTensor).shape == [1, 5, 96, 128])
    }

    /// Compiled with default settings, as a user's package would be: its shared object names
    /// libtorch.so, which the process must already have loaded (on the CPU extraction, the
    /// stand-in scripts/setup builds; on Debian's build the package is refused before that).
    @Test(.enabled(if: TorchRuntime.canLoadAOTInductor))
    func packageCompiledWithDefaultSettingsLoads() throws {
        let package = try AOTInductorPackage(contentsOf: Fixtures.url("models/unet_tiny_aoti_default.pt2"))
        let reference = try Tensor.copying(try readFloats("models/unet_output.f32"), shape: [1, 5, 96, 128])
        #expect(try #require(package.forward([try unetInput()]).firstTensor).maxAbsDifference(reference) < 1e-4)
    }

    @Test(.enabled(if: !TorchRuntime.canLoadAOTInductor))
    func debianBuildSaysWhichBuildLoadsAPackage() throws {
        let error = #expect(throws: TorchError.self) { try AOTInductorPackage(contentsOf: Self.dynamic) }
        #expect(error?.description.contains("scripts/setup --libtorch pytorch") == true, "\(String(describing: error))")
    }
}
