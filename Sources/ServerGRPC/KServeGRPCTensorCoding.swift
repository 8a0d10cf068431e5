import Foundation
import ServerCore
import ServerHTTP

/// The gRPC form of KServe v2 tensors: inputs from `raw_input_contents` (little-endian bytes by
/// position; BYTES elements each after a 4-byte little-endian length) or from each input's
/// typed `contents`, into the same ``KServeTensor`` the HTTP route builds; outputs back as raw
/// contents (as Triton answers) or typed ones.
enum KServeGRPCTensorCoding {
    /// The request's inputs, checked as the HTTP route checks them.
    /// - Throws: `ModelServerError.badRequest`/`.invalidInput` naming the input.
    static func inputs(of request: Inference_ModelInferRequest) throws(ModelServerError) -> [KServeTensor] {
        let raw = request.rawInputContents
        if !raw.isEmpty && raw.count != request.inputs.count {
            throw .badRequest(
                "raw_input_contents has \(raw.count) entries for \(request.inputs.count) inputs; send one entry per input, in the inputs' order")
        }
        var tensors: [KServeTensor] = []
        var names = Set<String>()
        for (position, input) in request.inputs.enumerated() {
            guard names.insert(input.name).inserted else { throw .badRequest("input \(input.name) is given twice") }
            guard let datatype = KServeDatatype(rawValue: input.datatype), KServeDatatype.accepted.contains(datatype) else {
                throw .badRequest(
                    "input \(input.name): datatype '\(input.datatype)' is not supported; use one of \(KServeDatatype.accepted.map(\.rawValue).joined(separator: ", "))")
            }
            let contents: KServeTensor.Contents
            if raw.isEmpty {
                contents = try typedContents(input, datatype: datatype, position: position)
            } else {
                guard filledFields(input.contents).isEmpty else {
                    throw .badRequest("input \(input.name) has contents while the request has raw_input_contents; send one form for all inputs")
                }
                let bytes = [UInt8](raw[position])
                contents = datatype == .bytes
                    ? .strings(try KServeTensorCoding.unpackStrings(bytes[...], input: input.name)) : .numeric(bytes)
            }
            tensors.append(try KServeTensor(name: input.name, datatype: datatype, shape: input.shape.map { Int($0) }, contents: contents))
        }
        return tensors
    }

    /// The typed field a datatype's elements go in (the protocol's table).
    static func contentsField(of datatype: KServeDatatype) -> String? {
        switch datatype {
        case .bool: return "bool_contents"
        case .int8, .int16, .int32: return "int_contents"
        case .int64: return "int64_contents"
        case .uint8: return "uint_contents"
        case .fp32: return "fp32_contents"
        case .fp64: return "fp64_contents"
        case .bytes: return "bytes_contents"
        case .fp16: return nil
        }
    }

    private static func filledFields(_ contents: Inference_InferTensorContents) -> [String] {
        var fields: [String] = []
        if !contents.boolContents.isEmpty { fields.append("bool_contents") }
        if !contents.intContents.isEmpty { fields.append("int_contents") }
        if !contents.int64Contents.isEmpty { fields.append("int64_contents") }
        if !contents.uintContents.isEmpty { fields.append("uint_contents") }
        if !contents.uint64Contents.isEmpty { fields.append("uint64_contents") }
        if !contents.fp32Contents.isEmpty { fields.append("fp32_contents") }
        if !contents.fp64Contents.isEmpty { fields.append("fp64_contents") }
        if !contents.bytesContents.isEmpty { fields.append("bytes_contents") }
        return fields
    }

    /// An input's typed contents as the little-endian bytes (or strings) of its datatype, each
    /// element range-checked so the client learns which one is wrong.
    private static func typedContents(_ input: Inference_ModelInferRequest.InferInputTensor, datatype: KServeDatatype,
                                      position: Int) throws(ModelServerError) -> KServeTensor.Contents {
        let contents = input.contents
        guard let field = contentsField(of: datatype) else {
            throw .badRequest("input \(input.name): \(datatype.rawValue) has no typed contents; send it in raw_input_contents")
        }
        let filled = filledFields(contents)
        guard filled.allSatisfy({ $0 == field }) else {
            throw .badRequest(
                "input \(input.name): \(datatype.rawValue) elements go in contents.\(field), but the request filled \(filled.map { "contents.\($0)" }.joined(separator: ", "))")
        }
        var bytes: [UInt8] = []
        func append<T: FixedWidthInteger>(_ value: T) {
            withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
        }
        func narrow<Source: BinaryInteger, Target: FixedWidthInteger>(
            _ values: [Source], to type: Target.Type
        ) throws(ModelServerError) {
            for (index, value) in values.enumerated() {
                guard let exact = Target(exactly: value) else {
                    throw .badRequest("inputs[\(position)].contents.\(field)[\(index)]: \(value) is not a valid \(datatype.rawValue) element")
                }
                append(exact)
            }
        }
        switch datatype {
        case .bool: for value in contents.boolContents { bytes.append(value ? 1 : 0) }
        case .uint8: try narrow(contents.uintContents, to: UInt8.self)
        case .int8: try narrow(contents.intContents, to: Int8.self)
        case .int16: try narrow(contents.intContents, to: Int16.self)
        case .int32: for value in contents.intContents { append(value) }
        case .int64: for value in contents.int64Contents { append(value) }
        case .fp32: for value in contents.fp32Contents { append(value.bitPattern) }
        case .fp64: for value in contents.fp64Contents { append(value.bitPattern) }
        case .bytes: return .strings(contents.bytesContents.map { [UInt8]($0) })
        case .fp16: break
        }
        return .numeric(bytes)
    }

    // MARK: Outputs

    /// The response's outputs: raw contents, one entry per output in order; typed contents
    /// when `typed` is asked and every output has a typed form (FP16 has none: then raw).
    static func encode(_ outputs: [KServeTensor], typed: Bool,
                       into response: inout Inference_ModelInferResponse) {
        let typed = typed && outputs.allSatisfy { contentsField(of: $0.datatype) != nil }
        for output in outputs {
            var tensor = Inference_ModelInferResponse.InferOutputTensor()
            tensor.name = output.name
            tensor.datatype = output.datatype.rawValue
            tensor.shape = output.shape.map { Int64($0) }
            if typed {
                tensor.contents = typedContents(output)
            } else {
                response.rawOutputContents.append(Data(KServeTensorCoding.binaryData(output)))
            }
            response.outputs.append(tensor)
        }
    }

    private static func typedContents(_ output: KServeTensor) -> Inference_InferTensorContents {
        var contents = Inference_InferTensorContents()
        switch output.data.elements {
        case .strings(let items):
            contents.bytesContents = items.map { Data($0) }
        case .numeric(_, let bytes):
            func values<T>(_ type: T.Type) -> [T] {
                bytes.withUnsafeBytes { raw in
                    (0..<raw.count / MemoryLayout<T>.size).map { raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self) }
                }
            }
            switch output.datatype {
            case .bool: contents.boolContents = values(UInt8.self).map { $0 != 0 }
            case .uint8: contents.uintContents = values(UInt8.self).map { UInt32($0) }
            case .int8: contents.intContents = values(Int8.self).map { Int32($0) }
            case .int16: contents.intContents = values(Int16.self).map { Int32($0) }
            case .int32: contents.intContents = values(Int32.self)
            case .int64: contents.int64Contents = values(Int64.self)
            case .fp32: contents.fp32Contents = values(Float.self)
            case .fp64: contents.fp64Contents = values(Double.self)
            case .fp16, .bytes: break
            }
        }
        return contents
    }
}

extension Inference_InferParameter {
    /// The value as a boolean (`true`/`false` strings too), nil for other kinds.
    var boolValue: Bool? {
        switch parameterChoice {
        case .boolParam(let value): return value
        case .stringParam(let text): return ["true": true, "false": false][text.lowercased()]
        default: return nil
        }
    }

    /// The value as an integer, nil for other kinds or values out of range.
    var intValue: Int? {
        switch parameterChoice {
        case .int64Param(let value): return Int(exactly: value)
        case .uint64Param(let value): return Int(exactly: value)
        case .stringParam(let text): return Int(text)
        default: return nil
        }
    }
}
