import ServerCore

/// An element type of the Open Inference Protocol (KServe v2), by its protocol name, and its
/// mapping to the core's element types.
package enum KServeDatatype: String, Sendable, CaseIterable, Equatable {
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
    package var byteCount: Int? {
        switch self {
        case .bool, .uint8, .int8: return 1
        case .int16, .fp16: return 2
        case .int32, .fp32: return 4
        case .int64, .fp64: return 8
        case .bytes: return nil
        }
    }

    /// The datatypes a request may send (API.md): those libtorch models take, and BYTES.
    package static let accepted: [KServeDatatype] = [.bool, .uint8, .int32, .int64, .fp16, .fp32, .fp64, .bytes]

    /// The core's element type; nil for BYTES.
    package var elementType: TensorData.ElementType? {
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

    /// The protocol's name for a core element type; nil for those it has none for (bfloat16).
    package init?(_ type: TensorData.ElementType) {
        switch type {
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
