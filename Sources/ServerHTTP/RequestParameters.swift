import Foundation
import Hummingbird
import ServerCore

/// Query parameters (and, for registration, the same keys in a JSON body), validated once.
struct RequestParameters {
    private var values: [String: String]

    init(_ request: Request) {
        values = Dictionary(
            request.uri.queryParameters.map { (String($0.key), String($0.value)) },
            uniquingKeysWith: { first, _ in first })
    }

    /// Adds the keys of a JSON object body; query parameters win.
    mutating func merge(jsonBody body: ByteBuffer) throws {
        guard body.readableBytes > 0 else { return }
        let object: [String: ParameterValue]
        do {
            object = try JSONDecoder().decode([String: ParameterValue].self, from: Data(buffer: body))
        } catch {
            throw ModelServerError.badRequest("the body must be a JSON object of registration parameters (strings, numbers, booleans)")
        }
        for (key, value) in object where values[key] == nil {
            values[key] = value.text
        }
    }

    func string(_ name: String) -> String? {
        values[name]
    }

    func required(_ name: String) throws -> String {
        guard let value = values[name], !value.isEmpty else {
            throw ModelServerError.badRequest("parameter \(name) is required")
        }
        return value
    }

    func int(_ name: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let text = values[name] else { return nil }
        guard let value = Int(text), range.contains(value) else {
            throw ModelServerError.badRequest("parameter \(name) must be an integer in \(range.lowerBound)...\(range.upperBound), got '\(text)'")
        }
        return value
    }

    func bool(_ name: String) throws -> Bool? {
        guard let text = values[name] else { return nil }
        switch text.lowercased() {
        case "true": return true
        case "false": return false
        default: throw ModelServerError.badRequest("parameter \(name) must be true or false, got '\(text)'")
        }
    }
}

/// A JSON parameter value, kept as the text a query parameter would carry.
private struct ParameterValue: Decodable {
    let text: String

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let value = try? container.decode(Bool.self) {
            text = value ? "true" : "false"
        } else if let value = try? container.decode(Int.self) {
            text = String(value)
        } else if let value = try? container.decode(Double.self) {
            text = String(value)
        } else {
            text = try container.decode(String.self)
        }
    }
}
