import Foundation
import ServerCore

// The JSON structure of a KServe v2 inference request as it is decoded: parameters, inputs
// (with their `data`, flat or nested, read as the declared datatype) and requested outputs.

/// A request or output `parameters` value.
enum WireParameter: Decodable {
    case bool(Bool), int(Int), double(Double), string(String), other

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else {
            self = .other
        }
    }

    var bool: Bool? {
        switch self {
        case .bool(let value): return value
        case .string(let text): return ["true": true, "false": false][text.lowercased()]
        default: return nil
        }
    }

    var int: Int? {
        switch self {
        case .int(let value): return value
        case .string(let text): return Int(text)
        default: return nil
        }
    }
}

struct WireRequest: Decodable {
    var id: String?
    var parameters: [String: WireParameter]?
    var inputs: [WireInput]
    var outputs: [WireOutput]?
}

struct WireOutput: Decodable {
    var name: String
    var parameters: [String: WireParameter]?
}

struct WireInput: Decodable {
    var name: String
    var shape: [Int]
    var datatype: KServeDatatype
    var binaryDataSize: Int?
    var data: KServeTensor.Contents?

    enum CodingKeys: String, CodingKey {
        case name, shape, datatype, parameters, data
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        shape = try container.decode([Int].self, forKey: .shape)
        let typeName = try container.decode(String.self, forKey: .datatype)
        guard let datatype = KServeDatatype(rawValue: typeName), KServeDatatype.accepted.contains(datatype) else {
            throw ModelServerError.badRequest(
                "input \(name): datatype '\(typeName)' is not supported; use one of \(KServeDatatype.accepted.map(\.rawValue).joined(separator: ", "))")
        }
        self.datatype = datatype
        let parameters = try container.decodeIfPresent([String: WireParameter].self, forKey: .parameters)
        if let size = parameters?["binary_data_size"] {
            guard let bytes = size.int else {
                throw ModelServerError.badRequest("input \(name): binary_data_size must be an integer")
            }
            binaryDataSize = bytes
        }
        if container.contains(.data), try !container.decodeNil(forKey: .data) {
            var elements = try container.nestedUnkeyedContainer(forKey: .data)
            var reader = ElementReader(datatype: datatype)
            try reader.read(&elements)
            data = reader.contents
        }
    }
}

/// Reads `data`, flat or nested to any depth, row-major, as the declared datatype's elements.
struct ElementReader {
    let datatype: KServeDatatype
    var bytes: [UInt8] = []
    var strings: [[UInt8]] = []

    init(datatype: KServeDatatype) {
        self.datatype = datatype
    }

    var contents: KServeTensor.Contents {
        datatype == .bytes ? .strings(strings) : .numeric(bytes)
    }

    mutating func read(_ container: inout any UnkeyedDecodingContainer) throws {
        // Each array holds either only elements or only arrays; its first entry says which.
        var nested: Bool?
        while !container.isAtEnd {
            if nested == true {
                var inner = try container.nestedUnkeyedContainer()
                try read(&inner)
                continue
            }
            do {
                try readElement(&container)
                nested = false
            } catch let error as DecodingError where nested == nil {
                guard var inner = try? container.nestedUnkeyedContainer() else { throw error }
                nested = true
                try read(&inner)
            }
        }
    }

    private mutating func readElement(_ container: inout any UnkeyedDecodingContainer) throws {
        func append<T>(_ value: T) {
            withUnsafeBytes(of: value) { bytes.append(contentsOf: $0) }
        }
        // Numbers are range-checked here, so the client learns which element is wrong and why.
        func outOfRange(_ value: Double, at index: Int) -> ModelServerError {
            let location = KServeTensorCoding.path(container.codingPath) + "[\(index)]"
            return .badRequest("\(location): \(value) is not a valid \(datatype.rawValue) element")
        }
        func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
            let index = container.currentIndex
            // A failed decode leaves the element in place, so it can be read again as a number.
            guard let value = try? container.decode(Int64.self) else { throw outOfRange(try container.decode(Double.self), at: index) }
            guard let exact = T(exactly: value) else { throw outOfRange(Double(value), at: index) }
            return exact
        }
        func float<T: BinaryFloatingPoint>(_ type: T.Type) throws -> T {
            let index = container.currentIndex
            let value = try container.decode(Double.self)
            let converted = T(value)
            guard converted.isFinite else { throw outOfRange(value, at: index) }
            return converted
        }
        switch datatype {
        case .bool: append(UInt8(try container.decode(Bool.self) ? 1 : 0))
        case .uint8: append(try integer(UInt8.self))
        case .int8: append(try integer(Int8.self))
        case .int16: append(try integer(Int16.self))
        case .int32: append(try integer(Int32.self))
        case .int64: append(try integer(Int64.self))
        case .fp16: append(try float(Float16.self).bitPattern)
        case .fp32: append(try float(Float.self))
        case .fp64: append(try float(Double.self))
        case .bytes: strings.append(Array(try container.decode(String.self).utf8))
        }
    }
}
