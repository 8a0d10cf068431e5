import CTorch

/// A libtorch tensor. The handle is owned by this object and freed with it.
///
/// Tensors are treated as immutable values once built; several threads may read one at once.
/// The only writer is `withUnsafeMutableBufferPointer`, used to fill a fresh tensor.
public final class Tensor: @unchecked Sendable {
    let handle: OpaquePointer

    init(handle: OpaquePointer) {
        self.handle = handle
    }

    deinit {
        ctorch_tensor_free(handle)
    }

    /// Wraps the result of a C call that creates a tensor.
    static func make(_ operation: @autoclosure () -> String,
                     _ body: (UnsafeMutablePointer<OpaquePointer?>) -> ctorch_status) throws(TorchError) -> Tensor {
        var out: OpaquePointer?
        try check(body(&out), operation())
        guard let out else { throw TorchError.operationFailed(operation: operation(), message: "no tensor returned") }
        return Tensor(handle: out)
    }

    // MARK: Creating

    /// A new CPU tensor whose contents are unspecified; fill it with `withUnsafeMutableBufferPointer`.
    public static func empty(shape: [Int], dtype: DType) throws(TorchError) -> Tensor {
        let dims = try dimensions(shape)
        return try dims.withUnsafeBufferPointer { (dims) throws(TorchError) -> Tensor in
            try make("creating a \(dtype) tensor of shape \(shape)") {
                ctorch_tensor_empty(dims.baseAddress, dims.count, dtype.raw, $0)
            }
        }
    }

    /// A CPU tensor holding a copy of `values`.
    public static func copying<Element: TensorElement>(_ values: [Element], shape: [Int]) throws -> Tensor {
        let count = try checkedElementCount(of: shape)
        guard count == values.count else {
            throw TorchError.invalidArgument("shape \(shape) holds \(count) elements, but \(values.count) were given")
        }
        let tensor = try Tensor.empty(shape: shape, dtype: Element.dtype)
        try tensor.withUnsafeMutableBufferPointer(as: Element.self) { buffer in
            _ = buffer.initialize(from: values)
        }
        return tensor
    }

    /// A CPU tensor over memory the caller owns, without copying it.
    ///
    /// `owner` is retained until libtorch releases the memory, so the memory must stay valid as
    /// long as `owner` lives (for example a buffer object that owns `pointer`).
    public static func adopting(
        _ pointer: UnsafeMutableRawPointer, shape: [Int], dtype: DType, owner: AnyObject
    ) throws(TorchError) -> Tensor {
        let dims = try dimensions(shape)
        let context = Unmanaged.passRetained(owner).toOpaque()
        do {
            return try dims.withUnsafeBufferPointer { (dims) throws(TorchError) -> Tensor in
                try make("wrapping memory as a \(dtype) tensor of shape \(shape)") {
                    ctorch_tensor_from_blob(pointer, dims.baseAddress, dims.count, dtype.raw, { context in
                        if let context { Unmanaged<AnyObject>.fromOpaque(context).release() }
                    }, context, $0)
                }
            }
        } catch {
            // libtorch did not take the memory, so the deleter will never run.
            Unmanaged<AnyObject>.fromOpaque(context).release()
            throw error
        }
    }

    private static func dimensions(_ shape: [Int]) throws(TorchError) -> [Int64] {
        _ = try checkedElementCount(of: shape)
        return shape.map(Int64.init)
    }

    /// The product of `shape`'s dimensions; nil when a dimension is negative or the product
    /// overflows (shapes can come from clients: a product is never computed unchecked).
    public static func elementCount(of shape: [Int]) -> Int? {
        var count = 1
        for size in shape {
            guard size >= 0 else { return nil }
            let (product, overflow) = count.multipliedReportingOverflow(by: size)
            guard !overflow else { return nil }
            count = product
        }
        return count
    }

    /// ``elementCount(of:)``, or an error saying what is wrong with the shape.
    static func checkedElementCount(of shape: [Int]) throws(TorchError) -> Int {
        guard shape.allSatisfy({ $0 >= 0 }) else { throw TorchError.invalidArgument("tensor shape \(shape) has a negative dimension") }
        guard let count = elementCount(of: shape) else {
            throw TorchError.invalidArgument("tensor shape \(shape) has more elements than memory can hold")
        }
        return count
    }

    // MARK: Inspecting

    /// Sizes of each dimension.
    public var shape: [Int] {
        let rank = ctorch_tensor_ndim(handle)
        var sizes = [Int64](repeating: 0, count: rank)
        sizes.withUnsafeMutableBufferPointer { ctorch_tensor_shape(handle, $0.baseAddress, rank) }
        return sizes.map { Int($0) }
    }

    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }

    /// Element type.
    public var dtype: DType { DType(ctorch_tensor_dtype(handle)) }

    /// The device holding the data.
    public var device: Device {
        var type = CTORCH_DEVICE_CPU
        var index: Int32 = 0
        ctorch_tensor_device(handle, &type, &index)
        return type == CTORCH_DEVICE_CUDA ? .cuda(Int(index)) : .cpu
    }

    // MARK: Reading and writing memory

    /// Calls `body` with the elements of this contiguous CPU tensor, in row-major order.
    public func withUnsafeBufferPointer<Element: TensorElement, Result>(
        as type: Element.Type, _ body: (UnsafeBufferPointer<Element>) throws -> Result
    ) throws -> Result {
        // A tensor with no elements may have no memory at all (a detector that found nothing).
        guard count > 0 else {
            try checkType(type)
            return try body(UnsafeBufferPointer(start: nil, count: 0))
        }
        let pointer = try dataPointer(as: type)
        return try body(UnsafeBufferPointer(start: pointer, count: count))
    }

    /// Calls `body` with the writable elements of this contiguous CPU tensor, in row-major order.
    public func withUnsafeMutableBufferPointer<Element: TensorElement, Result>(
        as type: Element.Type, _ body: (UnsafeMutableBufferPointer<Element>) throws -> Result
    ) throws -> Result {
        guard count > 0 else {
            try checkType(type)
            return try body(UnsafeMutableBufferPointer(start: nil, count: 0))
        }
        let pointer = try dataPointer(as: type)
        return try body(UnsafeMutableBufferPointer(start: pointer, count: count))
    }

    /// The elements as a Swift array (copied to the host first if needed).
    public func toArray<Element: TensorElement>(of type: Element.Type) throws -> [Element] {
        let host = try contiguousOnCPU()
        return try host.withUnsafeBufferPointer(as: type) { Array($0) }
    }

    private func checkType<Element: TensorElement>(_ type: Element.Type) throws(TorchError) {
        guard dtype == Element.dtype else {
            throw TorchError.invalidArgument("tensor holds \(dtype) elements, not \(Element.dtype)")
        }
    }

    private func dataPointer<Element: TensorElement>(as type: Element.Type) throws(TorchError) -> UnsafeMutablePointer<Element> {
        try checkType(type)
        var raw: UnsafeMutableRawPointer?
        try check(ctorch_tensor_data(handle, &raw), "reading tensor memory")
        guard let raw else { throw TorchError.invalidArgument("tensor has no memory") }
        return raw.assumingMemoryBound(to: Element.self)
    }

    // MARK: Operations

    /// This tensor on `device` (the same tensor when already there).
    public func to(_ device: Device) throws(TorchError) -> Tensor {
        let (type, index) = device.raw
        return try Tensor.make("moving a tensor to \(device)") { ctorch_tensor_to_device(handle, type, index, $0) }
    }

    /// A contiguous CPU tensor with the same values (no copy when this already is one).
    public func contiguousOnCPU() throws(TorchError) -> Tensor {
        try Tensor.make("copying a tensor to the CPU") { ctorch_tensor_contiguous_cpu(handle, $0) }
    }

    /// The values converted to `dtype`.
    public func converted(to dtype: DType) throws(TorchError) -> Tensor {
        try Tensor.make("converting a tensor to \(dtype)") { ctorch_tensor_to_dtype(handle, dtype.raw, $0) }
    }

    /// Indices of the maxima along `dim` (int64, that dimension removed).
    public func argmax(dim: Int) throws(TorchError) -> Tensor {
        try Tensor.make("argmax over dimension \(dim) of shape \(shape)") { ctorch_tensor_argmax(handle, Int64(dim), $0) }
    }

    /// The class map of `(N, C, ...)` scores: uint8 `(N, ...)`, the index of the first maximum over
    /// dimension 1 (NaN as the maximum), as `argmax(dim: 1)` converted to uint8, in one pass over
    /// float32 scores on the CPU. At most 256 classes.
    public func classMap() throws(TorchError) -> Tensor {
        try Tensor.make("class map of shape \(shape)") { ctorch_tensor_class_map(handle, $0) }
    }

    /// Softmax along `dim`, in float32.
    public func softmax(dim: Int) throws(TorchError) -> Tensor {
        try Tensor.make("softmax over dimension \(dim) of shape \(shape)") { ctorch_tensor_softmax(handle, Int64(dim), $0) }
    }

    /// The `k` largest values along `dim`, sorted descending, and their indices.
    public func topK(_ k: Int, dim: Int) throws(TorchError) -> (values: Tensor, indices: Tensor) {
        var values: OpaquePointer?
        var indices: OpaquePointer?
        try check(ctorch_tensor_topk(handle, Int64(k), Int64(dim), &values, &indices),
                  "top-\(k) over dimension \(dim) of shape \(shape)")
        guard let values, let indices else {
            throw TorchError.operationFailed(operation: "top-k", message: "no tensors returned")
        }
        return (Tensor(handle: values), Tensor(handle: indices))
    }

    /// The slice at `index` along `dim` (that dimension removed), sharing storage.
    public func select(dim: Int, index: Int) throws(TorchError) -> Tensor {
        try Tensor.make("selecting index \(index) of dimension \(dim) of shape \(shape)") {
            ctorch_tensor_select(handle, Int64(dim), Int64(index), $0)
        }
    }

    /// `length` entries from `start` along `dim`, sharing storage.
    public func narrow(dim: Int, start: Int, length: Int) throws(TorchError) -> Tensor {
        try Tensor.make("narrowing dimension \(dim) of shape \(shape) to \(start)..<\(start + length)") {
            ctorch_tensor_narrow(handle, Int64(dim), Int64(start), Int64(length), $0)
        }
    }

    /// Largest absolute elementwise difference to `other` (shapes must broadcast).
    public func maxAbsDifference(_ other: Tensor) throws(TorchError) -> Double {
        var result = 0.0
        try check(ctorch_tensor_max_abs_diff(handle, other.handle, &result), "comparing tensors")
        return result
    }

    /// Joins tensors of equal shape along a new dimension `dim`.
    public static func stack(_ tensors: [Tensor], dim: Int = 0) throws(TorchError) -> Tensor {
        try joined(tensors, dim: dim, operation: "stacking \(tensors.count) tensors", ctorch_tensor_stack)
    }

    /// Joins tensors along the existing dimension `dim`.
    public static func concatenate(_ tensors: [Tensor], dim: Int = 0) throws(TorchError) -> Tensor {
        try joined(tensors, dim: dim, operation: "concatenating \(tensors.count) tensors", ctorch_tensor_cat)
    }

    private static func joined(
        _ tensors: [Tensor], dim: Int, operation: String,
        _ join: (UnsafePointer<OpaquePointer?>?, Int, Int64, UnsafeMutablePointer<OpaquePointer?>?) -> ctorch_status
    ) throws(TorchError) -> Tensor {
        let handles: [OpaquePointer?] = tensors.map { $0.handle }
        let result = try handles.withUnsafeBufferPointer { (buffer) throws(TorchError) -> Tensor in
            try make(operation) { join(buffer.baseAddress, buffer.count, Int64(dim), $0) }
        }
        withExtendedLifetime(tensors) {}
        return result
    }
}
