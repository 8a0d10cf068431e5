/// Short, single-line renderings of values that came from an archive or a config file, for
/// messages: an input can hold megabytes in one name or value, and a message echoes at most an
/// excerpt of it.
public enum Excerpt {
    /// Unicode scalars of an input kept in a message; longer values end in `…`.
    public static let maxScalars = 80

    /// `text` cut to ``maxScalars`` scalars (then `…`), control characters escaped (`\n`, `\u{1B}`)
    /// so that a value cannot break a log line.
    public static func of(_ text: String, limit: Int = maxScalars) -> String {
        var result = String.UnicodeScalarView()
        var count = 0
        for scalar in text.unicodeScalars {
            if count == limit {
                result.append("…")
                break
            }
            count += 1
            switch scalar {
            case "\n": result.append(contentsOf: "\\n".unicodeScalars)
            case "\r": result.append(contentsOf: "\\r".unicodeScalars)
            case "\t": result.append(contentsOf: "\\t".unicodeScalars)
            case _ where scalar.value < 0x20 || (0x7F..<0xA0).contains(scalar.value)
                || (0x2028...0x2029).contains(scalar.value):
                result.append(contentsOf: "\\u{\(String(scalar.value, radix: 16, uppercase: true))}".unicodeScalars)
            default: result.append(scalar)
            }
        }
        return String(result)
    }
}
