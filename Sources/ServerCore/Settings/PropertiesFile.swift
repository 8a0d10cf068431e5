/// A Java `.properties` file as TorchServe reads `config.properties`: `key=value` or
/// `key: value` lines, `#` and `!` comments, a trailing backslash continues a line.
public struct PropertiesFile: Sendable, Equatable {
    /// Keys in file order with their values and 1-based line numbers.
    public var entries: [(key: String, value: String, line: Int)]

    public static func == (lhs: PropertiesFile, rhs: PropertiesFile) -> Bool {
        lhs.entries.map { "\($0.key)=\($0.value)@\($0.line)" } == rhs.entries.map { "\($0.key)=\($0.value)@\($0.line)" }
    }

    public init(parsing text: String) {
        entries = []
        var pending = ""
        var startLine = 0
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = String(rawLine)
            if line.hasSuffix("\r") { line.removeLast() }
            if pending.isEmpty {
                let trimmed = line.drop { $0 == " " || $0 == "\t" }
                if trimmed.isEmpty || trimmed.hasPrefix("#") || trimmed.hasPrefix("!") { continue }
                startLine = index + 1
                line = String(trimmed)
            } else {
                line = String(line.drop { $0 == " " || $0 == "\t" })
            }
            if line.hasSuffix("\\") {
                pending += line.dropLast()
                continue
            }
            let logical = pending + line
            pending = ""
            entries.append(Self.split(logical, line: startLine))
        }
        if !pending.isEmpty { entries.append(Self.split(pending, line: startLine)) }
    }

    private static func split(_ line: String, line number: Int) -> (key: String, value: String, line: Int) {
        guard let separator = line.firstIndex(where: { $0 == "=" || $0 == ":" }) else {
            return (line.trimmingSpaces, "", number)
        }
        return (String(line[..<separator]).trimmingSpaces, String(line[line.index(after: separator)...]).trimmingSpaces, number)
    }

    /// The last value given for `key`.
    public subscript(key: String) -> String? {
        entries.last { $0.key == key }?.value
    }
}

extension String {
    var trimmingSpaces: String {
        var result = Substring(self)
        while let first = result.first, first == " " || first == "\t" { result.removeFirst() }
        while let last = result.last, last == " " || last == "\t" { result.removeLast() }
        return String(result)
    }
}
