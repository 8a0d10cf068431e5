import Torch

/// An element type of the Open Inference Protocol (KServe v2), by its protocol name.
public enum TensorDatatype: String, Sendable, CaseIterable, Equatable {
    case bool = "BOOL"
    case uint8 = "UINT8"
    case int8 = "INT8"
    case int16 = "INT16"
    case int32 = "INT32"
    case int64 = "INT64"
    case fp16 = "FP16"
    case fp32 = "FP32"
    case fp64 = "FP64"
    /// Byte strings (text, encoded images); not a libtorch type.
    case bytes = "BYTES"

    /// Bytes per element in the binary form; nil for BYTES, whose elements vary.
    public var byteCount: Int? {
        switch self {
        case .bool, .uint8, .int8: return 1
        case .int16, .fp16: return 2
        case .int32, .fp32: return 4
        case .int64, .fp64: return 8
        case .bytes: return nil
        }
    }

    /// The datatypes a request may send (API.md): those libtorch models take, and BYTES.
    public static let accepted: [TensorDatatype] = [.bool, .uint8, .int32, .int64, .fp16, .fp32, .fp64, .bytes]

    var dtype: DType? {
        switch self {
        case .bool: return .bool
        case .uint8: return .uint8
        case .int8: return .int8
        case .int16: return .int16
        case .int32: return .int32
        case .int64: return .int64
        case .fp16: return .float16
        case .fp32: return .float32
        case .fp64: return .float64
        case .bytes: return nil
        }
    }

    /// The protocol's name for a libtorch type; nil for types it has none for (bfloat16).
    init?(_ dtype: DType) {
        switch dtype {
        case .bool: self = .bool
        case .uint8: self = .uint8
        case .int8: self = .int8
        case .int16: self = .int16
        case .int32: self = .int32
        case .int64: self = .int64
        case .float16: self = .fp16
        case .float32: self = .fp32
        case .float64: self = .fp64
        case .bfloat16, .other: return nil
        }
    }
}

/// A named tensor in host memory, as protocol layers hand it to the core and get it back.
///
/// Numeric elements are kept as bytes, row-major and little-endian (the binary form of the
/// Open Inference Protocol); BYTES elements as one byte string each.
public struct HostTensor: Sendable, Equatable {
    public enum Contents: Sendable, Equatable {
        /// Little-endian elements, row-major.
        case numeric([UInt8])
        /// One byte string per element, row-major.
        case strings([[UInt8]])
    }

    public var name: String
    public var datatype: TensorDatatype
    public var shape: [Int]
    public var contents: Contents

    /// A tensor whose contents agree with its datatype and shape.
    /// - Throws: `ModelServerError.invalidInput` naming the tensor when they do not.
    public init(name: String, datatype: TensorDatatype, shape: [Int], contents: Contents) throws(ModelServerError) {
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw .invalidInput("tensor \(name): shape \(shape) has a negative dimension")
        }
        // Sizes come from clients: every product is checked, so no shape can trap the process.
        guard let count = Self.elementCount(of: shape) else {
            throw .invalidInput("tensor \(name): shape \(shape) holds more elements than any request can carry")
        }
        switch (datatype.byteCount, contents) {
        case (let size?, .numeric(let bytes)):
            let (needed, overflow) = count.multipliedReportingOverflow(by: size)
            guard !overflow, bytes.count == needed else {
                let expected = overflow ? "more bytes than any request can carry" : "\(needed) bytes"
                throw .invalidInput(
                    "tensor \(name): shape \(shape) of \(datatype.rawValue) holds \(count) elements (\(expected)), but \(bytes.count / size) elements (\(bytes.count) bytes) were given")
            }
        case (nil, .strings(let items)):
            guard items.count == count else {
                throw .invalidInput("tensor \(name): shape \(shape) holds \(count) elements, but \(items.count) were given")
            }
        default:
            throw .invalidInput("tensor \(name): \(datatype.rawValue) contents of the wrong kind")
        }
        self.name = name
        self.datatype = datatype
        self.shape = shape
        self.contents = contents
    }

    /// Elements in the tensor (0 for a shape too large to count, which `init` never admits).
    public var elementCount: Int { Self.elementCount(of: shape) ?? 0 }

    /// The product of `shape`'s dimensions; nil when a dimension is negative or the product overflows.
    static func elementCount(of shape: [Int]) -> Int? {
        var count = 1
        for size in shape {
            guard size >= 0 else { return nil }
            let (product, overflow) = count.multipliedReportingOverflow(by: size)
            guard !overflow else { return nil }
            count = product
        }
        return count
    }

    /// The bytes of a numeric tensor; empty for BYTES.
    public var numericBytes: [UInt8] {
        if case .numeric(let bytes) = contents { return bytes }
        return []
    }

    /// The byte strings of a BYTES tensor; empty for numeric ones.
    public var strings: [[UInt8]] {
        if case .strings(let items) = contents { return items }
        return []
    }

    // MARK: libtorch

    /// A libtorch CPU tensor with these elements.
    func torchTensor() throws(ModelServerError) -> Tensor {
        guard let dtype = datatype.dtype else {
            throw .invalidInput("tensor \(name) is BYTES; only numeric tensors go to the model's forward pass")
        }
        do {
            return try Tensor.copying(bytes: numericBytes, shape: shape, dtype: dtype)
        } catch {
            throw .invalidInput("tensor \(name): \(error)")
        }
    }

    /// The host copy of a model output; bfloat16 becomes FP32, which the protocol names.
    init(name: String, tensor: Tensor) throws(ModelServerError) {
        var host = tensor
        let bytes: [UInt8]
        do {
            if tensor.dtype == .bfloat16 { host = try tensor.converted(to: .float32) }
            bytes = try host.bytes()
        } catch {
            throw .modelFailure("reading output \(name) failed: \(error)")
        }
        guard let datatype = TensorDatatype(host.dtype) else {
            throw .modelFailure("output \(name) has element type \(host.dtype), which the protocol cannot carry")
        }
        try self.init(name: name, datatype: datatype, shape: host.shape, contents: .numeric(bytes))
    }

    /// The tensors of a forward pass's result: `output__0`, `output__1`… for a tensor, tuple or
    /// list, the keys for a dict.
    static func outputs(of output: ModuleOutput) throws(ModelServerError) -> [HostTensor] {
        func tensor(_ value: ModuleOutput, _ name: String) throws(ModelServerError) -> HostTensor {
            guard case .tensor(let tensor) = value else {
                throw .modelFailure("output \(name) is \(value.kindDescription), not a tensor; the protocol carries tensors only")
            }
            return try HostTensor(name: name, tensor: tensor)
        }
        switch output {
        case .tensor:
            return [try tensor(output, "output__0")]
        case .tuple(let items), .list(let items):
            var result: [HostTensor] = []
            for (index, item) in items.enumerated() { result.append(try tensor(item, "output__\(index)")) }
            return result
        case .dict(let entries):
            var result: [HostTensor] = []
            for entry in entries { result.append(try tensor(entry.value, entry.key)) }
            return result
        case .none, .other:
            throw .modelFailure("the model returned \(output.kindDescription), not tensors")
        }
    }

    /// Joins tensors of equal datatype and trailing shape along the first dimension.
    static func concatenated(_ parts: [HostTensor], name: String) throws(ModelServerError) -> HostTensor {
        guard let first = parts.first else {
            throw .modelFailure("no outputs to join for \(name)")
        }
        guard parts.allSatisfy({ $0.datatype == first.datatype && $0.shape.dropFirst() == first.shape.dropFirst() }) else {
            throw .invalidInput(
                "the inputs give \(name) outputs of different shapes \(parts.map(\.shape)); send inputs of one size, or one per request")
        }
        let rows = parts.reduce(0) { $0 + ($1.shape.first ?? 1) }
        let shape = [rows] + first.shape.dropFirst()
        switch first.contents {
        case .numeric: return try HostTensor(name: name, datatype: first.datatype, shape: shape, contents: .numeric(parts.flatMap(\.numericBytes)))
        case .strings: return try HostTensor(name: name, datatype: first.datatype, shape: shape, contents: .strings(parts.flatMap(\.strings)))
        }
    }
}
