import CTorch
import Foundation

/// A loaded TorchScript module. The handle is owned by this object and freed with it.
///
/// `forward` may be called from several threads at once: TorchScript runs the graph without
/// mutating the module, which is how workers of one model share one copy of the weights.
public final class ScriptModule: @unchecked Sendable {
    let handle: OpaquePointer

    /// The device the module's weights live on.
    public let device: Device

    /// The floating-point type of the module's weights, which its floating-point inputs must have.
    public let floatType: DType

    /// Bytes of parameters and buffers, as loaded (or as converted).
    public var weightBytes: Int { Int(ctorch_module_weight_bytes(handle)) }

    private init(handle: OpaquePointer, device: Device, floatType: DType = .float32) {
        self.handle = handle
        self.device = device
        self.floatType = floatType
    }

    deinit {
        ctorch_module_free(handle)
    }

    /// Loads a TorchScript file (from `torch.jit.trace` / `torch.jit.script` + `save`) onto `device`.
    ///
    /// A missing file, a file that is not TorchScript (e.g. a `state_dict` saved by
    /// `torch.save`) and a damaged archive each throw their own `TorchError`.
    public convenience init(contentsOf url: URL, device: Device = .cpu) throws(TorchError) {
        let path = url.path
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw TorchError.fileNotFound(path: path)
        }
        let (type, index) = device.raw
        var out: OpaquePointer?
        if ctorch_module_load(path, type, index, &out) != CTORCH_OK || out == nil {
            throw ScriptModule.classifyLoadFailure(path: path, message: lastError())
        }
        guard let out else { throw TorchError.loadFailed(path: path, message: "no module returned") }
        self.init(handle: out, device: device)
    }

    /// A frozen copy with libtorch's inference optimisations (BatchNorm folded into
    /// convolutions, oneDNN kernels where they apply). This module is left as it is.
    public func optimized() throws(TorchError) -> ScriptModule {
        var out: OpaquePointer?
        try check(ctorch_module_optimized(handle, &out), "freezing and optimising the module")
        guard let out else { throw TorchError.operationFailed(operation: "optimising", message: "no module returned") }
        return ScriptModule(handle: out, device: device, floatType: floatType)
    }

    /// A copy whose floating-point weights are `dtype` (`.bfloat16`, `.float16`); this module is
    /// left as it is. Inputs of the copy must be of that type too.
    public func converted(to dtype: DType) throws(TorchError) -> ScriptModule {
        var out: OpaquePointer?
        try check(ctorch_module_converted(handle, dtype.raw, &out), "converting the module to \(dtype)")
        guard let out else { throw TorchError.operationFailed(operation: "converting", message: "no module returned") }
        return ScriptModule(handle: out, device: device, floatType: dtype)
    }

    /// Runs `forward(inputs...)` in inference mode. Inputs must be on the module's device.
    public func forward(_ inputs: [Tensor]) throws(TorchError) -> ModuleOutput {
        let handles: [OpaquePointer?] = inputs.map { $0.handle }
        var out: OpaquePointer?
        let status = handles.withUnsafeBufferPointer { ctorch_module_forward(handle, $0.baseAddress, $0.count, &out) }
        withExtendedLifetime(inputs) {}
        try check(status, "forward with inputs \(inputs.map(\.shape))")
        guard let out else { throw TorchError.operationFailed(operation: "forward", message: "no output returned") }
        return try ModuleOutput(consuming: out)
    }

    /// Runs `forward(list)` in inference mode: the tensors go in as one `List[Tensor]` argument,
    /// as torchvision's detection models take their images. Tensors must be on the module's device.
    public func forward(list tensors: [Tensor]) throws(TorchError) -> ModuleOutput {
        let handles: [OpaquePointer?] = tensors.map { $0.handle }
        var out: OpaquePointer?
        let status = handles.withUnsafeBufferPointer { ctorch_module_forward_list(handle, $0.baseAddress, $0.count, &out) }
        withExtendedLifetime(tensors) {}
        try check(status, "forward with a list of \(tensors.count) tensors \(tensors.map(\.shape))")
        guard let out else { throw TorchError.operationFailed(operation: "forward", message: "no output returned") }
        return try ModuleOutput(consuming: out)
    }

    /// Runs `forward(input)`.
    public func forward(_ input: Tensor) throws(TorchError) -> ModuleOutput {
        try forward([input])
    }

    /// Tells apart the ways a load fails, by what the file is and what libtorch said.
    static func classifyLoadFailure(path: String, message: String) -> TorchError {
        var head: [UInt8] = []
        if let file = FileHandle(forReadingAtPath: path) {
            head = [UInt8]((try? file.read(upToCount: 4)) ?? Data())
            try? file.close()
        }
        let firstLine = message.split(separator: "\n", maxSplits: 1).first.map(String.init) ?? message
        if head.isEmpty {
            return .notTorchScript(path: path, detail: "the file is empty")
        }
        let isZip = head.starts(with: [0x50, 0x4B, 0x03, 0x04])
        if !isZip {
            if head[0] == 0x80 {
                return .notTorchScript(
                    path: path,
                    detail: "looks like a legacy pickle saved by torch.save (a state_dict or a whole Python model); "
                        + "export the model with torch.jit.trace or torch.jit.script and save that")
            }
            return .notTorchScript(path: path, detail: "not a zip archive, so not a file saved by torch.jit.save")
        }
        if message.contains("constants.pkl") || message.contains("code/") {
            return .notTorchScript(
                path: path,
                detail: "looks like a state_dict or model saved by torch.save, which holds no TorchScript code; "
                    + "export the model with torch.jit.trace or torch.jit.script and save that")
        }
        if message.contains("central directory") || message.contains("failed reading") || message.contains("truncated")
            || message.contains("invalid header") || message.contains("file read failed") {
            return .damagedFile(path: path, detail: "zip archive unreadable, likely truncated: \(firstLine)")
        }
        return .loadFailed(path: path, message: firstLine)
    }
}
