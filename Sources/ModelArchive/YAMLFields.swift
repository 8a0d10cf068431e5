import Yams

/// Typed, line-aware reads of one YAML mapping; every failure is recorded as a ``ConfigIssue``
/// and the read returns `nil`, so one pass reports all errors of a document.
struct YAMLFields {
    let prefix: String
    let diagnostics: ConfigDiagnostics
    private(set) var entries: [(key: String, keyLine: Int?, value: Node)] = []

    /// Reads `mapping`'s keys; keys are reported as `prefix + key` (`handler.inputSize`).
    init(_ mapping: Node.Mapping, prefix: String, diagnostics: ConfigDiagnostics) {
        self.prefix = prefix
        self.diagnostics = diagnostics
        var seen: Set<String> = []
        for (keyNode, value) in mapping {
            guard case .scalar(let scalar) = keyNode else {
                diagnostics.error(prefix + "(key)", line: keyNode.mark?.line, "is not a plain key",
                                  expected: "a name such as batchSize")
                continue
            }
            let key = scalar.string
            if !seen.insert(key).inserted {
                diagnostics.error(prefix + key, line: keyNode.mark?.line, "appears twice",
                                  expected: "each key once")
                continue
            }
            entries.append((key, keyNode.mark?.line, value))
        }
    }

    var keys: [String] { entries.map(\.key) }

    func node(_ key: String) -> Node? {
        entries.first { $0.key == key }?.value
    }

    func line(of key: String) -> Int? {
        entries.first { $0.key == key }?.keyLine
    }

    /// Reports every key not in `known`: as an error (handler sections) or a warning (top level).
    func reportUnknownKeys(known: Set<String>, asErrors: Bool, expected: String) {
        for entry in entries where !known.contains(entry.key) {
            if asErrors {
                diagnostics.error(prefix + entry.key, line: entry.keyLine, "is not a known key", expected: expected)
            } else {
                diagnostics.warning(prefix + entry.key, line: entry.keyLine, "is not a known key and was ignored",
                                    expected: expected)
            }
        }
    }

    // MARK: Scalars

    func int(_ key: String, in range: ClosedRange<Int>) -> Int? {
        guard let node = presentValue(key) else { return nil }
        guard node.tagName == .int, let value = Self.integer(node) else {
            fail(key, node, "is \(Self.render(node))", expected: "an integer from \(range.lowerBound) to \(range.upperBound)")
            return nil
        }
        guard range.contains(value) else {
            fail(key, node, "is \(value), out of range",
                 expected: "an integer from \(range.lowerBound) to \(range.upperBound)")
            return nil
        }
        return value
    }

    func double(_ key: String, in range: ClosedRange<Double>) -> Double? {
        guard let node = presentValue(key) else { return nil }
        let expected = "a number from \(range.lowerBound) to \(range.upperBound)"
        guard node.tagName == .int || node.tagName == .float, let value = node.float, value.isFinite else {
            fail(key, node, "is \(Self.render(node))", expected: expected)
            return nil
        }
        guard range.contains(value) else {
            fail(key, node, "is \(value), out of range", expected: expected)
            return nil
        }
        return value
    }

    func bool(_ key: String) -> Bool? {
        guard let node = presentValue(key) else { return nil }
        guard node.tagName == .bool, let value = node.bool else {
            fail(key, node, "is \(Self.render(node))", expected: "true or false")
            return nil
        }
        return value
    }

    func string(_ key: String, expected: String) -> String? {
        guard let node = presentValue(key) else { return nil }
        guard case .scalar(let scalar) = node, node.tagName != .null, !scalar.string.isEmpty else {
            fail(key, node, "is \(Self.render(node))", expected: expected)
            return nil
        }
        return scalar.string
    }

    /// A string that must be one of `T`'s raw values.
    func choice<T: RawRepresentable & CaseIterable>(_ key: String, as type: T.Type) -> T? where T.RawValue == String {
        let allowed = T.allCases.map(\.rawValue).joined(separator: " or ")
        guard let node = presentValue(key), let raw = string(key, expected: allowed) else { return nil }
        guard let value = T(rawValue: raw) else {
            fail(key, node, "is \"\(Excerpt.of(raw))\"", expected: allowed)
            return nil
        }
        return value
    }

    /// A relative file name inside the archive (`index_to_name.json`, `vocab/vocab.txt`).
    func fileName(_ key: String) -> String? {
        let expected = "a file name inside the archive, such as index_to_name.json"
        guard let node = presentValue(key), let name = string(key, expected: expected) else { return nil }
        guard (try? EntryPath.components(of: name)) != nil else {
            fail(key, node, "is \"\(Excerpt.of(name))\", which leaves the archive", expected: expected)
            return nil
        }
        return name
    }

    // MARK: Sequences

    func ints(_ key: String, count: ClosedRange<Int>, each range: ClosedRange<Int>, expected: String) -> [Int]? {
        guard let items = sequence(key, count: count, expected: expected) else { return nil }
        var values: [Int] = []
        for item in items {
            guard item.tagName == .int, let value = Self.integer(item), range.contains(value) else {
                fail(key, item, "has the item \(Self.render(item))", expected: expected)
                return nil
            }
            values.append(value)
        }
        return values
    }

    func doubles(_ key: String, count: ClosedRange<Int>, where isValid: (Double) -> Bool, expected: String) -> [Double]? {
        guard let items = sequence(key, count: count, expected: expected) else { return nil }
        var values: [Double] = []
        for item in items {
            guard item.tagName == .int || item.tagName == .float, let value = item.float, value.isFinite, isValid(value) else {
                fail(key, item, "has the item \(Self.render(item))", expected: expected)
                return nil
            }
            values.append(value)
        }
        return values
    }

    func strings(_ key: String, count: ClosedRange<Int>, expected: String) -> [String]? {
        guard let items = sequence(key, count: count, expected: expected) else { return nil }
        var values: [String] = []
        for item in items {
            guard case .scalar(let scalar) = item, item.tagName != .null else {
                fail(key, item, "has the item \(Self.render(item))", expected: expected)
                return nil
            }
            values.append(scalar.string)
        }
        return values
    }

    private func sequence(_ key: String, count: ClosedRange<Int>, expected: String) -> [Node]? {
        guard let node = presentValue(key) else { return nil }
        guard case .sequence(let sequence) = node else {
            fail(key, node, "is \(Self.render(node))", expected: expected)
            return nil
        }
        let items = Array(sequence)
        guard count.contains(items.count) else {
            fail(key, node, "has \(items.count) \(items.count == 1 ? "item" : "items")", expected: expected)
            return nil
        }
        return items
    }

    // MARK: Helpers

    /// The key's value, or `nil` when the key is absent; a key with no value is an error.
    private func presentValue(_ key: String) -> Node? {
        guard let node = node(key) else { return nil }
        if node.tagName == .null {
            fail(key, node, "has no value", expected: nil)
            return nil
        }
        return node
    }

    func fail(_ key: String, _ node: Node, _ problem: String, expected: String?) {
        diagnostics.error(prefix + key, line: node.mark?.line ?? line(of: key), problem, expected: expected)
    }

    /// Items of a sequence that ``render(_:)`` shows before `…`.
    static let renderedItems = 4

    /// A short rendering of a node for messages: `"abc"`, `12`, `[1, 2]`, `a mapping`.
    ///
    /// Bounded whatever the node: a scalar is cut to ``Excerpt/maxScalars`` characters; a sequence
    /// shows at most ``renderedItems`` items, two levels deep, ``Excerpt/maxScalars`` characters in
    /// all. `…` marks what was left out.
    static func render(_ node: Node) -> String {
        guard case .sequence = node else { return render(node, levels: 0) }
        return Excerpt.of(render(node, levels: 2))
    }

    private static func render(_ node: Node, levels: Int) -> String {
        switch node {
        case .scalar(let scalar):
            switch node.tagName {
            case .null: return "empty"
            case .str: return "\"\(Excerpt.of(scalar.string))\""
            default: return Excerpt.of(scalar.string)
            }
        case .sequence(let sequence):
            guard levels > 0 else { return sequence.isEmpty ? "[]" : "[…]" }
            var items = sequence.prefix(renderedItems).map { render($0, levels: levels - 1) }
            if sequence.count > renderedItems { items.append("…") }
            return "[" + items.joined(separator: ", ") + "]"
        case .mapping:
            return "a mapping"
        }
    }

    /// A node's integer value, as Yams reads `tag:yaml.org,2002:int` (decimal, `0x`, `0o`, `0b`,
    /// `_` separators, YAML 1.1 sexagesimal `1:30`), or `nil` when it does not fit an `Int`.
    ///
    /// Yams' own sexagesimal conversion multiplies without overflow checks and traps on
    /// `1:0:0:0:0:0:0:0:0:0:0:0`, so those are computed here.
    static func integer(_ node: Node) -> Int? {
        guard case .scalar(let scalar) = node else { return nil }
        guard scalar.string.contains(":") else { return node.int }
        guard scalar.style == .any || scalar.style == .plain else { return nil }
        var digits = Substring(scalar.string.filter { $0 != "_" })
        var negative = false
        if digits.first == "-" || digits.first == "+" {
            negative = digits.first == "-"
            digits = digits.dropFirst()
        }
        var value = 0
        for part in digits.split(separator: ":", omittingEmptySubsequences: false) {
            guard let digit = Int(part, radix: 10), digit >= 0 else { return nil }
            let (shifted, overflow) = value.multipliedReportingOverflow(by: 60)
            let (sum, carry) = shifted.addingReportingOverflow(digit)
            guard !overflow, !carry else { return nil }
            value = sum
        }
        return negative ? -value : value
    }
}

extension Node {
    /// The resolved tag (`tag:yaml.org,2002:int`...); Yams keeps `Tag.name` internal.
    var tagName: Tag.Name { Tag.Name(rawValue: tag.description) }
}
