import ServerCore

/// A named tensor as the Open Inference Protocol (KServe v2) carries it: the core's tensor with
/// a protocol name and datatype.
package struct KServeTensor: Sendable, Equatable {
    /// The elements as a request gives them, before they are checked against the shape.
    package enum Contents: Sendable, Equatable {
        /// Little-endian elements, row-major.
        case numeric([UInt8])
        /// One byte string per element, row-major.
        case strings([[UInt8]])
    }

    package var name: String
    package var datatype: KServeDatatype
    /// The shape and the elements.
    package var data: TensorData

    package var shape: [Int] { data.shape }

    /// A tensor whose contents agree with its datatype and shape.
    /// - Throws: `ModelServerError.invalidInput` naming the tensor when they do not.
    package init(name: String, datatype: KServeDatatype, shape: [Int], contents: Contents) throws(ModelServerError) {
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw .invalidInput("tensor \(name): shape \(shape) has a negative dimension")
        }
        // Sizes come from clients: every product is checked, so no shape can trap the process.
        guard let count = TensorData.elementCount(of: shape) else {
            throw .invalidInput("tensor \(name): shape \(shape) holds more elements than any request can carry")
        }
        let elements: TensorData.Elements
        switch (datatype.elementType, datatype.byteCount, contents) {
        case (let type?, let size?, .numeric(let bytes)):
            let (needed, overflow) = count.multipliedReportingOverflow(by: size)
            guard !overflow, bytes.count == needed else {
                let expected = overflow ? "more bytes than any request can carry" : "\(needed) bytes"
                throw .invalidInput(
                    "tensor \(name): shape \(shape) of \(datatype.rawValue) holds \(count) elements (\(expected)), but \(bytes.count / size) elements (\(bytes.count) bytes) were given")
            }
            elements = .numeric(type, bytes)
        case (nil, nil, .strings(let items)):
            guard items.count == count else {
                throw .invalidInput("tensor \(name): shape \(shape) holds \(count) elements, but \(items.count) were given")
            }
            elements = .strings(items)
        default:
            throw .invalidInput("tensor \(name): \(datatype.rawValue) contents of the wrong kind")
        }
        do {
            data = try TensorData(shape: shape, elements: elements)
        } catch .invalidInput(let message) {
            throw .invalidInput("tensor \(name): \(message)")
        }
        self.name = name
        self.datatype = datatype
    }

    /// A tensor the core gave, already consistent.
    private init(name: String, datatype: KServeDatatype, data: TensorData) {
        self.name = name
        self.datatype = datatype
        self.data = data
    }

    /// An output of the core as the protocol names it: `output__0`, `output__1`… by position,
    /// else by its key; bfloat16, which the protocol has no name for, as FP32.
    package init(_ output: OutputTensor) throws(ModelServerError) {
        let name: String
        switch output.key {
        case .index(let index): name = "output__\(index)"
        case .name(let key): name = key
        }
        switch output.data.elements {
        case .strings:
            self.init(name: name, datatype: .bytes, data: output.data)
        case .numeric(.bfloat16, let bytes):
            // A bfloat16 is the upper half of the float32 of the same value.
            var wide: [UInt8] = []
            wide.reserveCapacity(bytes.count * 2)
            for index in stride(from: 0, to: bytes.count - 1, by: 2) { wide += [0, 0, bytes[index], bytes[index + 1]] }
            self.init(name: name, datatype: .fp32, data: try TensorData(shape: output.data.shape, elements: .numeric(.float32, wide)))
        case .numeric(let type, _):
            guard let datatype = KServeDatatype(type) else {
                throw .modelFailure("output \(name) has element type \(type), which the protocol cannot carry")
            }
            self.init(name: name, datatype: datatype, data: output.data)
        }
    }

    /// Joins tensors of equal datatype and trailing shape along the first dimension.
    static func concatenated(_ parts: [KServeTensor], name: String) throws(ModelServerError) -> KServeTensor {
        guard let first = parts.first else {
            throw .modelFailure("no outputs to join for \(name)")
        }
        guard parts.allSatisfy({ $0.datatype == first.datatype && $0.shape.dropFirst() == first.shape.dropFirst() }) else {
            throw .invalidInput(
                "the inputs give \(name) outputs of different shapes \(parts.map(\.shape)); send inputs of one size, or one per request")
        }
        let rows = parts.reduce(0) { $0 + ($1.shape.first ?? 1) }
        let shape = [rows] + first.shape.dropFirst()
        let elements: TensorData.Elements
        switch first.data.elements {
        case .numeric(let type, _): elements = .numeric(type, parts.flatMap(\.data.numericBytes))
        case .strings: elements = .strings(parts.flatMap(\.data.strings))
        }
        return KServeTensor(name: name, datatype: first.datatype, data: try TensorData(shape: shape, elements: elements))
    }

    /// The requested outputs in the requested order, or all of them.
    /// - Throws: `.badRequest` for a name no output has.
    static func select(_ requested: [String]?, from outputs: [KServeTensor]) throws(ModelServerError) -> [KServeTensor] {
        guard let requested else { return outputs }
        var chosen: [KServeTensor] = []
        for name in requested {
            guard let found = outputs.first(where: { $0.name == name }) else {
                throw .badRequest("unknown output '\(name)'; the model gives \(outputs.map(\.name))")
            }
            chosen.append(found)
        }
        return chosen
    }
}
