import CTorch

extension Tensor {
    /// A CPU tensor holding a copy of `bytes`: the elements of `shape` as `dtype`, row-major, in the
    /// host's byte order (little-endian on every platform libtorch runs on).
    ///
    /// This is how tensors of any element type (float16 and bool included) arrive from a wire format.
    public static func copying(bytes: [UInt8], shape: [Int], dtype: DType) throws(TorchError) -> Tensor {
        guard dtype != .other else { throw TorchError.invalidArgument("cannot build a tensor of an unnamed element type") }
        let count = try checkedElementCount(of: shape)
        let (needed, overflow) = count.multipliedReportingOverflow(by: dtype.byteCount)
        guard !overflow, bytes.count == needed else {
            throw TorchError.invalidArgument(
                "shape \(shape) of \(dtype) needs \(overflow ? "more" : String(needed)) bytes, but \(bytes.count) were given")
        }
        let tensor = try Tensor.empty(shape: shape, dtype: dtype)
        guard !bytes.isEmpty else { return tensor }
        let destination = try tensor.rawData()
        bytes.withUnsafeBytes { source in
            if let base = source.baseAddress { destination.copyMemory(from: base, byteCount: source.count) }
        }
        return tensor
    }

    /// The elements' bytes, row-major, in the host's byte order (copied to the host and made
    /// contiguous first when needed).
    public func bytes() throws(TorchError) -> [UInt8] {
        guard dtype != .other else {
            throw TorchError.invalidArgument("cannot read a tensor of an element type this wrapper does not name")
        }
        let host = try contiguousOnCPU()
        let byteCount = host.count * dtype.byteCount
        guard byteCount > 0 else { return [] }
        let source = try host.rawData()
        let result = [UInt8](UnsafeRawBufferPointer(start: source, count: byteCount))
        withExtendedLifetime(host) {}
        return result
    }

    private func rawData() throws(TorchError) -> UnsafeMutableRawPointer {
        var raw: UnsafeMutableRawPointer?
        try check(ctorch_tensor_data(handle, &raw), "reading tensor memory")
        guard let raw else { throw TorchError.invalidArgument("tensor has no memory") }
        return raw
    }
}

extension DType {
    /// A number that tells element types apart (libtorch's code in the C shim), for grouping tensors
    /// that can be joined.
    public var code: Int { Int(raw.rawValue) }
}
