import CTorch

/// Where a tensor or module lives.
public enum Device: Sendable, Hashable, CustomStringConvertible {
    case cpu
    case cuda(Int)

    var raw: (ctorch_device_type, Int32) {
        switch self {
        case .cpu: return (CTORCH_DEVICE_CPU, 0)
        case .cuda(let index): return (CTORCH_DEVICE_CUDA, Int32(clamping: index))
        }
    }

    /// Whether this is a GPU.
    public var isCUDA: Bool {
        if case .cuda = self { return true }
        return false
    }

    /// `cpu` or `cuda:<index>`, as PyTorch writes devices.
    public var description: String {
        switch self {
        case .cpu: return "cpu"
        case .cuda(let index): return "cuda:\(index)"
        }
    }
}

/// Chooses the device of each worker of a model from the GPUs the process can use.
///
/// Worker k runs on `cuda:(k mod N)` over the usable GPUs, or over the model's `deviceIds`
/// when it gives them; on the CPU when there is no GPU or the model asks for the CPU.
/// The GPU count is injected so the choice is testable on machines without one.
public struct DevicePlacement: Sendable, Equatable {
    /// GPUs the process may use (visible devices, lowered by `number_of_gpu`).
    public let gpuCount: Int

    /// - Parameters:
    ///   - visibleGPUs: devices libtorch sees, normally `TorchRuntime.cudaDeviceCount`.
    ///   - limit: the configured `number_of_gpu`, if any.
    public init(visibleGPUs: Int, limit: Int? = nil) {
        let visible = max(0, visibleGPUs)
        gpuCount = limit.map { min(max(0, $0), visible) } ?? visible
    }

    /// The device for worker `workerIndex` (0-based) of a model.
    /// - Parameters:
    ///   - forceCPU: the model config says `deviceType: cpu`.
    ///   - deviceIds: the model config's `deviceIds`; ids the process cannot use are an error.
    public func device(forWorker workerIndex: Int, forceCPU: Bool = false, deviceIds: [Int] = []) throws(TorchError) -> Device {
        if forceCPU || gpuCount == 0 { return .cpu }
        let index = max(0, workerIndex)
        if deviceIds.isEmpty { return .cuda(index % gpuCount) }
        if let bad = deviceIds.first(where: { $0 < 0 || $0 >= gpuCount }) {
            throw TorchError.invalidArgument(
                "deviceIds contains \(bad), but only \(gpuCount) GPU(s) are usable (ids 0..<\(gpuCount))")
        }
        return .cuda(deviceIds[index % deviceIds.count])
    }
}
