import Torch

/// A tensor in host memory: what callers hand the core and get back, free of any wire format.
///
/// A shape and its elements, row-major: numbers of one libtorch type as bytes in the host's order
/// (little-endian), or byte strings (texts, encoded images), which only handlers take and give.
public struct TensorData: Sendable, Equatable {
    /// The element type of a numeric tensor: libtorch's.
    public typealias ElementType = DType

    /// The elements, by kind.
    public enum Elements: Sendable, Equatable {
        /// Elements of a libtorch type, as bytes in the host's order (little-endian), row-major.
        case numeric(ElementType, [UInt8])
        /// One byte string per element, row-major.
        case strings([[UInt8]])
    }

    /// The size of each dimension.
    public let shape: [Int]
    /// The elements, as many as `shape` holds.
    public let elements: Elements

    /// A tensor whose elements agree with its shape.
    /// - Throws: `ModelServerError.invalidInput` when they do not, or the shape cannot be counted.
    public init(shape: [Int], elements: Elements) throws(ModelServerError) {
        guard let count = Self.elementCount(of: shape) else {
            throw .invalidInput("shape \(shape) has a negative dimension or more elements than any tensor can hold")
        }
        switch elements {
        case .numeric(let dtype, let bytes):
            guard dtype != .other else { throw .invalidInput("a tensor of shape \(shape) has an unnamed element type") }
            let (needed, overflow) = count.multipliedReportingOverflow(by: dtype.byteCount)
            guard !overflow, bytes.count == needed else {
                let expected = overflow ? "more bytes than any tensor can hold" : "\(needed) bytes"
                throw .invalidInput("shape \(shape) of \(dtype) needs \(expected), but \(bytes.count) bytes were given")
            }
        case .strings(let items):
            guard items.count == count else {
                throw .invalidInput("shape \(shape) holds \(count) elements, but \(items.count) were given")
            }
        }
        self.shape = shape
        self.elements = elements
    }

    /// The product of `shape`'s dimensions; nil when a dimension is negative or the product overflows.
    /// (libtorch's own check, for layers that do not import Torch.)
    public static func elementCount(of shape: [Int]) -> Int? {
        Tensor.elementCount(of: shape)
    }

    /// The element type of a numeric tensor; nil for byte strings.
    public var dtype: ElementType? {
        if case .numeric(let dtype, _) = elements { return dtype }
        return nil
    }

    /// The bytes of a numeric tensor; empty for byte strings.
    public var numericBytes: [UInt8] {
        if case .numeric(_, let bytes) = elements { return bytes }
        return []
    }

    /// The elements of a byte-string tensor; empty for numeric ones.
    public var strings: [[UInt8]] {
        if case .strings(let items) = elements { return items }
        return []
    }

    // MARK: libtorch

    /// A libtorch CPU tensor with these elements.
    /// - Throws: `invalidInput` for byte strings, which no model takes, or elements libtorch refuses.
    func torchTensor() throws(ModelServerError) -> Tensor {
        guard case .numeric(let dtype, let bytes) = elements else {
            throw .invalidInput("a tensor of byte strings cannot go to a model's forward pass; only numeric tensors can")
        }
        do {
            return try Tensor.copying(bytes: bytes, shape: shape, dtype: dtype)
        } catch {
            throw .invalidInput("\(error)")
        }
    }

    /// The host copy of a libtorch tensor, in its own element type.
    init(_ tensor: Tensor) throws(ModelServerError) {
        let bytes: [UInt8]
        do {
            bytes = try tensor.bytes()
        } catch {
            throw .modelFailure("reading a \(tensor.dtype) tensor failed: \(error)")
        }
        try self.init(shape: tensor.shape, elements: .numeric(tensor.dtype, bytes))
    }
}

/// Where a tensor sits among a model's inputs or outputs: its position (in the inputs, or in a
/// returned tuple or list; 0 for a lone tensor), or its name (a dict key, a named input, or the
/// name a handler gives its output).
public enum TensorKey: Sendable, Hashable, CustomStringConvertible {
    /// The position, from 0.
    case index(Int)
    /// The name.
    case name(String)

    public var description: String {
        switch self {
        case .index(let index): return "\(index)"
        case .name(let name): return name
        }
    }
}

/// One output tensor, keyed as the model or its handler returns it.
public struct OutputTensor: Sendable, Equatable {
    /// Where the tensor sits in the model's (or handler's) result.
    public var key: TensorKey
    /// Its shape and elements.
    public var data: TensorData

    public init(key: TensorKey, data: TensorData) {
        self.key = key
        self.data = data
    }

    /// The tensors of a forward pass's result, in the model's order: by position for a tensor,
    /// tuple or list, by key for a dict.
    /// - Throws: `modelFailure` when the result holds anything but tensors.
    static func outputs(of output: ModuleOutput) throws(ModelServerError) -> [OutputTensor] {
        func tensor(_ value: ModuleOutput, _ key: TensorKey) throws(ModelServerError) -> OutputTensor {
            guard case .tensor(let tensor) = value else {
                throw .modelFailure("output \(key) is \(value.kindDescription), not a tensor; only tensors can be returned as outputs")
            }
            do {
                return OutputTensor(key: key, data: try TensorData(tensor))
            } catch .modelFailure(let message) {
                throw .modelFailure("output \(key): \(message)")
            }
        }
        switch output {
        case .tensor:
            return [try tensor(output, .index(0))]
        case .tuple(let items), .list(let items):
            var result: [OutputTensor] = []
            for (index, item) in items.enumerated() { result.append(try tensor(item, .index(index))) }
            return result
        case .dict(let entries):
            var result: [OutputTensor] = []
            for entry in entries { result.append(try tensor(entry.value, .name(entry.key))) }
            return result
        case .none, .other:
            throw .modelFailure("the model returned \(output.kindDescription), not tensors")
        }
    }
}
