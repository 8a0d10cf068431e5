import Foundation

/// Class names from TorchServe's `index_to_name.json`: `{"0": "cat", "1": "dog"}`, or ImageNet's form
/// `{"0": ["n01440764", "tench"], …}` whose last element is the name. A class without a name is
/// called by its index (`"7"`), as TorchServe does.
public struct ClassLabels: Sendable, Equatable {
    /// Class index → name.
    public let names: [Int: String]

    /// No names: every class is called by its index.
    public static let indices = ClassLabels(names: [:])

    public init(names: [Int: String]) {
        self.names = names
    }

    /// Reads an `index_to_name.json`.
    public init(contentsOf url: URL) throws(ModelServerError) {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw .invalidModel("cannot read the labels \(url.lastPathComponent): \(error.localizedDescription)")
        }
        try self.init(json: data, fileName: url.lastPathComponent)
    }

    /// Parses the JSON of an `index_to_name.json`; `fileName` names it in errors.
    public init(json data: Data, fileName: String = "index_to_name.json") throws(ModelServerError) {
        let expected = "a JSON object of class index → name, like {\"0\": \"cat\", \"1\": \"dog\"}"
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw .invalidModel("the labels \(fileName) are not JSON (\(error.localizedDescription)); expected \(expected)")
        }
        guard let entries = object as? [String: Any] else {
            throw .invalidModel("the labels \(fileName) are not \(expected)")
        }
        var names: [Int: String] = [:]
        var seen: [String: Int] = [:]
        for (key, value) in entries {
            guard let index = Int(key), index >= 0, String(index) == key else {
                throw .invalidModel("the labels \(fileName) have the key \"\(key)\", not a class index; expected \(expected)")
            }
            let name: String
            if let string = value as? String {
                name = string
            } else if let list = value as? [Any], let last = list.last as? String, list.allSatisfy({ $0 is String }) {
                name = last
            } else {
                throw .invalidModel("the labels \(fileName) give class \(key) a value that is not a name; expected \(expected)")
            }
            if let other = seen[name] {
                throw .invalidModel("the labels \(fileName) name classes \(min(other, index)) and \(max(other, index)) both \"\(name)\"; names must differ")
            }
            seen[name] = index
            names[index] = name
        }
        self.names = names
    }

    /// The name of class `index`, or the index itself as a string.
    public func name(ofClass index: Int) -> String {
        names[index] ?? String(index)
    }
}
