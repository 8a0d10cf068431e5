import Foundation

/// Class probabilities as the built-in classifiers answer them (TorchServe's convention):
/// `{"label": probability, …}`, highest first, ties lower index first, probabilities as
/// float32's shortest round-tripping decimal. Where two of the chosen classes share a name, the
/// more probable one answers (a JSON object cannot hold a name twice).
struct ClassProbabilities {
    var labels: ClassLabels

    /// The JSON object of the `count` most probable classes (all when nil).
    func jsonObject(_ probabilities: [Float], top count: Int? = nil) -> String {
        let order = probabilities.indices.sorted {
            probabilities[$0] > probabilities[$1] || (probabilities[$0] == probabilities[$1] && $0 < $1)
        }
        let chosen = count.map { order.prefix($0) } ?? order[...]
        var named = Set<String>()
        let members = chosen.compactMap { index -> String? in
            let name = labels.name(ofClass: index)
            guard named.insert(name).inserted else { return nil }
            return "\(Self.jsonString(name)):\(probabilities[index].description)"
        }
        return "{" + members.joined(separator: ",") + "}"
    }

    /// A JSON string literal (RFC 8259 escapes; other characters as they are).
    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
