import CTorch
import Foundation

/// A loaded AOTInductor package: a model compiled ahead of time by
/// `torch._inductor.aoti_compile_and_package` into a `.pt2`, run through libtorch's package
/// loader (libtorch 2 builds only; ``TorchRuntime/canLoadAOTInductor`` says whether this one can).
///
/// The package runs on the device it was compiled for: a CPU package on the CPU whatever device a
/// worker was given, a CUDA one on the worker's GPU. Its weights are float32 as compiled; there is
/// nothing to convert or optimise. `forward` may be called from several threads at once: the
/// package holds `runners` instances of the model, and a call waits while all of them are busy.
public final class AOTInductorPackage: InferenceModule, @unchecked Sendable {
    let handle: OpaquePointer

    public let device: Device
    public var floatType: DType { .float32 }
    public var weightBytes: Int { Int(ctorch_package_weight_bytes(handle)) }
    /// The device the package was compiled for, from its metadata ("cpu", "cuda").
    public let targetDevice: String

    /// Loads the package at `url`.
    /// - Parameters:
    ///   - modelName: the model inside the package ("model" unless it was compiled with another name).
    ///   - device: the worker's device; a CUDA package runs on its GPU, a CPU package on the CPU.
    ///   - runners: instances of the model, so that as many forward calls can run at once.
    public init(contentsOf url: URL, modelName: String = "model", device: Device = .cpu, runners: Int = 1) throws(TorchError) {
        let path = url.path
        guard FileManager.default.isReadableFile(atPath: path) else { throw TorchError.fileNotFound(path: path) }
        guard TorchRuntime.canLoadAOTInductor else {
            throw TorchError.loadFailed(path: path, message: TorchRuntime.aotInductorUnavailableReason)
        }
        let index: Int32 = if case .cuda(let gpu) = device { Int32(clamping: gpu) } else { 0 }
        var out: OpaquePointer?
        if ctorch_package_load(path, modelName, max(1, runners), index, &out) != CTORCH_OK || out == nil {
            let message = lastError()
            throw TorchError.loadFailed(path: path, message: message.split(separator: "\n", maxSplits: 1).first.map(String.init) ?? message)
        }
        guard let out else { throw TorchError.loadFailed(path: path, message: "no package returned") }
        handle = out
        var value: UnsafeMutablePointer<CChar>?
        let target = ctorch_package_metadata(out, "AOTI_DEVICE_KEY", &value) == CTORCH_OK ? value.map { String(cString: $0) } : nil
        ctorch_string_free(value)
        targetDevice = target ?? "cpu"
        self.device = targetDevice == "cuda" && device.isCUDA ? device : .cpu
    }

    deinit {
        ctorch_package_free(handle)
    }

    /// A value of the package's metadata (`AOTI_DEVICE_KEY`, `AOTI_CPU_ISA`, …), or nil.
    public func metadata(_ key: String) -> String? {
        var value: UnsafeMutablePointer<CChar>?
        guard ctorch_package_metadata(handle, key, &value) == CTORCH_OK, let value else { return nil }
        defer { ctorch_string_free(value) }
        return String(cString: value)
    }

    /// Runs the compiled model on its flattened inputs: one output comes back as a tensor, several as a tuple.
    public func forward(_ inputs: [Tensor]) throws(TorchError) -> ModuleOutput {
        let handles: [OpaquePointer?] = inputs.map { $0.handle }
        var out: OpaquePointer?
        let status = handles.withUnsafeBufferPointer { ctorch_package_run(handle, $0.baseAddress, $0.count, &out) }
        withExtendedLifetime(inputs) {}
        try check(status, "running the AOTInductor package on inputs \(inputs.map(\.shape))")
        guard let out else { throw TorchError.operationFailed(operation: "running the package", message: "no output returned") }
        return try ModuleOutput(consuming: out)
    }

    /// The same as `forward(_:)`: a package takes its inputs flattened, a list's tensors one by one.
    public func forward(list tensors: [Tensor]) throws(TorchError) -> ModuleOutput {
        try forward(tensors)
    }
}
