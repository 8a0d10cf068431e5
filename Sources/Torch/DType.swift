import CTorch

/// A tensor element type.
public enum DType: Sendable, Hashable, CustomStringConvertible {
    case float32, float64, float16, bfloat16, int64, int32, int16, int8, uint8, bool
    /// A type libtorch has that this wrapper does not name.
    case other

    init(_ raw: ctorch_dtype) {
        switch raw {
        case CTORCH_FLOAT32: self = .float32
        case CTORCH_FLOAT64: self = .float64
        case CTORCH_FLOAT16: self = .float16
        case CTORCH_BFLOAT16: self = .bfloat16
        case CTORCH_INT64: self = .int64
        case CTORCH_INT32: self = .int32
        case CTORCH_INT16: self = .int16
        case CTORCH_INT8: self = .int8
        case CTORCH_UINT8: self = .uint8
        case CTORCH_BOOL: self = .bool
        default: self = .other
        }
    }

    var raw: ctorch_dtype {
        switch self {
        case .float32: return CTORCH_FLOAT32
        case .float64: return CTORCH_FLOAT64
        case .float16: return CTORCH_FLOAT16
        case .bfloat16: return CTORCH_BFLOAT16
        case .int64: return CTORCH_INT64
        case .int32: return CTORCH_INT32
        case .int16: return CTORCH_INT16
        case .int8: return CTORCH_INT8
        case .uint8: return CTORCH_UINT8
        case .bool: return CTORCH_BOOL
        case .other: return CTORCH_OTHER_DTYPE
        }
    }

    /// Bytes per element.
    public var byteCount: Int {
        switch self {
        case .float64, .int64: return 8
        case .float32, .int32: return 4
        case .float16, .bfloat16, .int16: return 2
        case .int8, .uint8, .bool: return 1
        case .other: return 0
        }
    }

    public var description: String {
        switch self {
        case .float32: return "float32"
        case .float64: return "float64"
        case .float16: return "float16"
        case .bfloat16: return "bfloat16"
        case .int64: return "int64"
        case .int32: return "int32"
        case .int16: return "int16"
        case .int8: return "int8"
        case .uint8: return "uint8"
        case .bool: return "bool"
        case .other: return "other"
        }
    }
}

/// A Swift type that can be a tensor element, with its libtorch dtype.
public protocol TensorElement: Sendable {
    static var dtype: DType { get }
}

extension Float: TensorElement { public static var dtype: DType { .float32 } }
extension Double: TensorElement { public static var dtype: DType { .float64 } }
extension Int64: TensorElement { public static var dtype: DType { .int64 } }
extension Int32: TensorElement { public static var dtype: DType { .int32 } }
extension Int16: TensorElement { public static var dtype: DType { .int16 } }
extension Int8: TensorElement { public static var dtype: DType { .int8 } }
extension UInt8: TensorElement { public static var dtype: DType { .uint8 } }
extension Bool: TensorElement { public static var dtype: DType { .bool } }

extension DType {
    /// Whether elements are floating-point numbers.
    public var isFloatingPoint: Bool {
        switch self {
        case .float32, .float64, .float16, .bfloat16: return true
        default: return false
        }
    }
}
