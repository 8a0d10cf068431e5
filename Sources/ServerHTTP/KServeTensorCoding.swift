import Foundation
import ServerCore

/// The wire format of KServe v2 (Open Inference Protocol) inference: JSON tensors, and the
/// binary tensor data extension (a JSON header of `Inference-Header-Content-Length` bytes, then
/// the little-endian tensors of the inputs that give `binary_data_size`, in order).
package enum KServeTensorCoding {
    /// A decoded inference request.
    struct Request {
        var id: String?
        var inputs: [KServeTensor]
        /// Output names in the order asked, nil when the request names none.
        var outputNames: [String]?
        /// Names of the outputs to send as binary data.
        var binaryOutputs: (String) -> Bool
        /// `parameters.timeout`, in microseconds on the wire.
        var timeout: Duration?
    }

    // MARK: Request

    /// Decodes a request body; `headerLength` is the `Inference-Header-Content-Length` header.
    static func decodeRequest(_ body: [UInt8], headerLength: String?) throws -> Request {
        var json = body[...]
        var binary: ArraySlice<UInt8> = []
        if let headerLength {
            guard let length = Int(headerLength.trimmingCharacters(in: .whitespaces)), length >= 0, length <= body.count else {
                throw ModelServerError.badRequest(
                    "Inference-Header-Content-Length must be the JSON header's length in bytes (0...\(body.count)), got '\(headerLength)'")
            }
            json = body[..<length]
            binary = body[length...]
        }
        guard json.first(where: { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }) == UInt8(ascii: "{") else {
            throw ModelServerError.unsupportedMediaType(
                json.isEmpty ? "the body is empty; send a JSON inference request" : "the body is not a JSON inference request object")
        }
        let wire: WireRequest
        do {
            wire = try JSONDecoder().decode(WireRequest.self, from: Data(json))
        } catch let error as ModelServerError {
            throw error
        } catch let error as DecodingError {
            let scope = headerLength == nil ? "" : " (its JSON header, the first \(json.count) bytes as Inference-Header-Content-Length says)"
            throw ModelServerError.badRequest("invalid inference request\(scope): \(describe(error))")
        }

        var inputs: [KServeTensor] = []
        var names = Set<String>()
        for input in wire.inputs {
            guard names.insert(input.name).inserted else {
                throw ModelServerError.badRequest("input \(input.name) is given twice")
            }
            let contents: KServeTensor.Contents
            if let size = input.binaryDataSize {
                guard input.data == nil else {
                    throw ModelServerError.badRequest("input \(input.name) has both data and binary_data_size; send one")
                }
                guard size >= 0, size <= binary.count else {
                    throw ModelServerError.invalidInput(
                        "input \(input.name): binary_data_size \(size) but only \(binary.count) bytes of binary data are left in the body")
                }
                let chunk = binary.prefix(size)
                binary = binary.dropFirst(size)
                contents = input.datatype == .bytes ? .strings(try unpackStrings(chunk, input: input.name)) : .numeric(Array(chunk))
            } else if let data = input.data {
                contents = data
            } else {
                throw ModelServerError.badRequest("input \(input.name) has no data (and no binary_data_size)")
            }
            inputs.append(try KServeTensor(name: input.name, datatype: input.datatype, shape: input.shape, contents: contents))
        }
        guard binary.isEmpty else {
            throw ModelServerError.invalidInput(
                "\(binary.count) bytes of binary data follow the JSON header that no input's binary_data_size claims")
        }

        let binaryDefault = wire.parameters?["binary_data_output"]?.bool ?? false
        var perOutput: [String: Bool] = [:]
        for output in wire.outputs ?? [] {
            perOutput[output.name] = output.parameters?["binary_data"]?.bool ?? binaryDefault
        }
        var timeout: Duration?
        if let parameter = wire.parameters?["timeout"] {
            guard let microseconds = parameter.int, microseconds > 0 else {
                throw ModelServerError.badRequest("parameters.timeout must be a positive integer of microseconds")
            }
            timeout = .microseconds(microseconds)
        }
        return Request(
            id: wire.id, inputs: inputs, outputNames: wire.outputs?.map(\.name),
            binaryOutputs: { perOutput[$0] ?? binaryDefault }, timeout: timeout)
    }

    /// BYTES in binary form: each element a 4-byte little-endian length, then its bytes.
    package static func unpackStrings(_ data: ArraySlice<UInt8>, input: String) throws(ModelServerError) -> [[UInt8]] {
        var items: [[UInt8]] = []
        var rest = data
        while !rest.isEmpty {
            guard rest.count >= 4 else { throw .invalidInput("input \(input): BYTES binary data ends inside an element's length") }
            let length = rest.prefix(4).reversed().reduce(0) { $0 << 8 | Int($1) }
            rest = rest.dropFirst(4)
            guard length <= rest.count else {
                throw .invalidInput("input \(input): a BYTES element claims \(length) bytes but only \(rest.count) follow")
            }
            items.append(Array(rest.prefix(length)))
            rest = rest.dropFirst(length)
        }
        return items
    }

    /// A decoding error as a client can act on it: where in the request, and what was wrong.
    static func describe(_ error: DecodingError) -> String {
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            let location = path(context.codingPath)
            return (location.isEmpty ? "" : "\(location): ") + context.debugDescription
        case .keyNotFound(let key, let context):
            let location = path(context.codingPath)
            return "\(location.isEmpty ? "" : location + ".")\(key.stringValue) is missing"
        @unknown default:
            return "\(error)"
        }
    }

    /// A coding path as a client reads it: `inputs[0].data[5]`.
    static func path(_ keys: [any CodingKey]) -> String {
        keys.reduce("") { text, key in
            if let index = key.intValue { return text + "[\(index)]" }
            return text.isEmpty ? key.stringValue : text + "." + key.stringValue
        }
    }

    // MARK: Response

    /// The response body, and the JSON header's length when binary outputs follow it.
    /// - Parameter version: the version that answered.
    static func encodeResponse(model: String, version: String, outputs: [KServeTensor], id: String?,
                               binary: (String) -> Bool) -> (body: [UInt8], headerLength: Int?) {
        var json = "{\"model_name\":\(jsonString(model)),\"model_version\":\(jsonString(version))"
        if let id { json += ",\"id\":\(jsonString(id))" }
        json += ",\"outputs\":["
        var tail: [UInt8] = []
        for (index, output) in outputs.enumerated() {
            if index > 0 { json += "," }
            json += "{\"name\":\(jsonString(output.name)),\"datatype\":\"\(output.datatype.rawValue)\",\"shape\":[\(output.shape.map(String.init).joined(separator: ","))]"
            if binary(output.name) {
                let bytes = binaryData(output)
                json += ",\"parameters\":{\"binary_data_size\":\(bytes.count)}}"
                tail += bytes
            } else {
                json += ",\"data\":["
                appendJSONData(output, to: &json)
                json += "]}"
            }
        }
        json += "]}"
        let header = Array(json.utf8)
        return outputs.contains(where: { binary($0.name) }) ? (header + tail, header.count) : (header, nil)
    }

    /// A tensor's binary form: numeric bytes as they are, BYTES elements each after a 4-byte length.
    package static func binaryData(_ tensor: KServeTensor) -> [UInt8] {
        switch tensor.data.elements {
        case .numeric(_, let bytes):
            return bytes
        case .strings(let items):
            var out: [UInt8] = []
            out.reserveCapacity(items.reduce(0) { $0 + 4 + $1.count })
            for item in items {
                let length = UInt32(clamping: item.count)
                out += [UInt8(length & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length >> 16 & 0xFF), UInt8(length >> 24)]
                out += item
            }
            return out
        }
    }

    /// The elements as JSON values, flat and row-major; non-finite floats as `null`.
    static func appendJSONData(_ tensor: KServeTensor, to json: inout String) {
        switch tensor.data.elements {
        case .strings(let items):
            json += items.map { jsonString(String(decoding: $0, as: UTF8.self)) }.joined(separator: ",")
        case .numeric(_, let bytes):
            func append<T>(_ type: T.Type, _ format: (T) -> String) {
                let size = MemoryLayout<T>.size
                bytes.withUnsafeBytes { raw in
                    let count = raw.count / size
                    json.reserveCapacity(json.utf8.count + count * 8)
                    for index in 0..<count {
                        if index > 0 { json += "," }
                        json += format(raw.loadUnaligned(fromByteOffset: index * size, as: T.self))
                    }
                }
            }
            func float<F: BinaryFloatingPoint & CustomStringConvertible>(_ value: F) -> String {
                value.isFinite ? value.description : "null"
            }
            switch tensor.datatype {
            case .bool: append(UInt8.self) { $0 != 0 ? "true" : "false" }
            case .uint8: append(UInt8.self) { String($0) }
            case .int8: append(Int8.self) { String($0) }
            case .int16: append(Int16.self) { String($0) }
            case .int32: append(Int32.self) { String($0) }
            case .int64: append(Int64.self) { String($0) }
            case .fp16: append(UInt16.self) { float(Float16(bitPattern: $0)) }
            case .fp32: append(Float.self) { float($0) }
            case .fp64: append(Double.self) { float($0) }
            case .bytes: break
            }
        }
    }
}
