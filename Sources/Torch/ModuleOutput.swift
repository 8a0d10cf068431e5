import CTorch

/// What a TorchScript `forward` returned.
public indirect enum ModuleOutput: Sendable {
    case tensor(Tensor)
    case tuple([ModuleOutput])
    case list([ModuleOutput])
    /// Entries in the dict's order; keys that are not strings are printed.
    case dict([(key: String, value: ModuleOutput)])
    case none
    /// A value of another type (a number, a string, ...), named as libtorch names it.
    case other(typeName: String)

    /// Reads a C value into Swift, recursively.
    init(consuming handle: OpaquePointer) throws(TorchError) {
        defer { ctorch_value_free(handle) }
        switch ctorch_value_kind_of(handle) {
        case CTORCH_VALUE_TENSOR:
            self = .tensor(try Tensor.make("reading a tensor output") { ctorch_value_tensor(handle, $0) })
        case CTORCH_VALUE_TUPLE:
            self = .tuple(try ModuleOutput.elements(of: handle))
        case CTORCH_VALUE_LIST:
            self = .list(try ModuleOutput.elements(of: handle))
        case CTORCH_VALUE_DICT:
            let values = try ModuleOutput.elements(of: handle)
            var entries: [(key: String, value: ModuleOutput)] = []
            for (index, value) in values.enumerated() {
                var key: UnsafeMutablePointer<CChar>?
                try check(ctorch_value_dict_key(handle, index, &key), "reading a dict output key")
                defer { ctorch_string_free(key) }
                entries.append((key.map { String(cString: $0) } ?? "", value))
            }
            self = .dict(entries)
        case CTORCH_VALUE_NONE:
            self = .none
        default:
            self = .other(typeName: String(cString: ctorch_value_type_name(handle)))
        }
    }

    private static func elements(of handle: OpaquePointer) throws(TorchError) -> [ModuleOutput] {
        var result: [ModuleOutput] = []
        for index in 0..<ctorch_value_count(handle) {
            var element: OpaquePointer?
            try check(ctorch_value_element(handle, index, &element), "reading output element \(index)")
            guard let element else { throw TorchError.operationFailed(operation: "reading output", message: "missing element") }
            result.append(try ModuleOutput(consuming: element))
        }
        return result
    }

    /// The tensor itself, or the tensor under `key` in a dict.
    public func tensor(named key: String) -> Tensor? {
        switch self {
        case .tensor(let tensor): return tensor
        case .dict(let entries):
            if case .tensor(let tensor)? = entries.first(where: { $0.key == key })?.value { return tensor }
            return nil
        default: return nil
        }
    }

    /// The first tensor: the tensor itself, a tuple's or list's first element, a dict's first value.
    public var firstTensor: Tensor? {
        switch self {
        case .tensor(let tensor): return tensor
        case .tuple(let items), .list(let items): return items.first?.firstTensor
        case .dict(let entries): return entries.first?.value.firstTensor
        case .none, .other: return nil
        }
    }

    /// A short description of the output's structure, for error messages.
    public var kindDescription: String {
        switch self {
        case .tensor(let tensor): return "tensor \(tensor.shape)"
        case .tuple(let items): return "tuple of \(items.count)"
        case .list(let items): return "list of \(items.count)"
        case .dict(let entries): return "dict with keys \(entries.map(\.key))"
        case .none: return "None"
        case .other(let name): return name
        }
    }
}

extension ModuleOutput {
    /// The same structure with every tensor replaced by `transform(tensor)`.
    public func mapTensors(_ transform: (Tensor) throws(TorchError) -> Tensor) throws(TorchError) -> ModuleOutput {
        switch self {
        case .tensor(let tensor):
            return .tensor(try transform(tensor))
        case .tuple(let items):
            var mapped: [ModuleOutput] = []
            for item in items { mapped.append(try item.mapTensors(transform)) }
            return .tuple(mapped)
        case .list(let items):
            var mapped: [ModuleOutput] = []
            for item in items { mapped.append(try item.mapTensors(transform)) }
            return .list(mapped)
        case .dict(let entries):
            var mapped: [(key: String, value: ModuleOutput)] = []
            for entry in entries { mapped.append((entry.key, try entry.value.mapTensors(transform))) }
            return .dict(mapped)
        case .none, .other:
            return self
        }
    }
}
