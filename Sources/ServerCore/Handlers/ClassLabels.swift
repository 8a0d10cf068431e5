import Foundation
import ModelArchive

/// Class names from TorchServe's `index_to_name.json`: `{"0": "cat", "1": "dog"}`, or ImageNet's form
/// `{"0": ["n01440764", "tench"], …}` whose last element is the name. A class without a name is
/// called by its index (`"7"`), as TorchServe does. Two classes may share a name (torchvision's
/// ImageNet file names two classes "crane"); an answer then keeps the more probable of them.
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
            names[index] = name
        }
        self.names = names
    }

    /// The labels file a built-in handler reads when its spec names none, as TorchServe's default handlers do.
    public static let conventionalFile = "index_to_name.json"

    /// The labels of an archive's handler: the file its spec names (which must be there), else the
    /// archive's `index_to_name.json` when it has one, else class indices.
    public static func of(_ archive: OpenedArchive, named file: String?) throws(ModelServerError) -> ClassLabels {
        if let file {
            let url = archive.url(of: file)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw .invalidModel("the archive has no labels file \(file), which its handler section names")
            }
            return try ClassLabels(contentsOf: url)
        }
        let conventional = archive.url(of: conventionalFile)
        guard FileManager.default.fileExists(atPath: conventional.path) else { return .indices }
        return try ClassLabels(contentsOf: conventional)
    }

    /// The name of class `index`, or the index itself as a string.
    public func name(ofClass index: Int) -> String {
        names[index] ?? String(index)
    }
}
