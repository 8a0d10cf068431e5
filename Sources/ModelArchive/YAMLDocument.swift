import Yams

/// Errors and warnings collected while reading one YAML document.
///
/// Each list keeps its first ``maxIssues``; the rest are counted and summed up in one last issue,
/// so a document with a million unknown keys gives a message of a few lines.
final class ConfigDiagnostics {
    /// Issues kept per list (errors, warnings).
    static let maxIssues = 20

    private(set) var errors: [ConfigIssue] = []
    private(set) var warnings: [ConfigIssue] = []
    private var droppedErrors = 0
    private var droppedWarnings = 0

    /// Errors in line order (issues without a line last), as a reader goes through the file.
    var sortedErrors: [ConfigIssue] { Self.sorted(errors) + Self.summary(droppedErrors, "errors") }
    var sortedWarnings: [ConfigIssue] { Self.sorted(warnings) + Self.summary(droppedWarnings, "warnings") }

    private static func sorted(_ issues: [ConfigIssue]) -> [ConfigIssue] {
        issues.enumerated().sorted { a, b in
            (a.element.line ?? .max, a.offset) < (b.element.line ?? .max, b.offset)
        }.map(\.element)
    }

    private static func summary(_ dropped: Int, _ noun: String) -> [ConfigIssue] {
        dropped == 0 ? [] : [ConfigIssue(line: nil, key: "(document)", problem: "has \(dropped) more \(noun), not listed")]
    }

    func error(_ key: String, line: Int?, _ problem: String, expected: String? = nil) {
        append(ConfigIssue(line: line, key: Excerpt.of(key), problem: problem, expected: expected))
    }

    func warning(_ key: String, line: Int?, _ problem: String, expected: String? = nil) {
        guard warnings.count < Self.maxIssues else {
            droppedWarnings += 1
            return
        }
        warnings.append(ConfigIssue(line: line, key: Excerpt.of(key), problem: problem, expected: expected))
    }

    /// Records an error.
    func append(_ issue: ConfigIssue) {
        guard errors.count < Self.maxIssues else {
            droppedErrors += 1
            return
        }
        errors.append(issue)
    }
}

/// Parses YAML text into its root node, turning a syntax error into a ``ConfigIssue`` with its line.
///
/// Every YAML document this module reads (`model-config.yaml`, handler specs) goes through
/// ``root(of:diagnostics:)``, which bounds it before and after Yams composes it: the text's size,
/// nesting and aliases (``YAMLPreScan``), then the composed tree's depth and size with aliases
/// expanded, so nothing downstream walks more than ``maxNodes`` nodes.
enum YAMLDocument {
    /// The largest document read: 1 MiB (real model definitions are a few hundred bytes).
    static let maxBytes = 1 << 20
    /// The deepest nesting of lists and mappings: 64 levels (real ones use 3). The lexical estimate
    /// is checked against it before composing, the real depth after.
    static let maxDepth = 64
    /// Aliases (`*name`) in one document: 16. Each alias can copy a whole subtree under another,
    /// so their number bounds how deep and large the composed tree can get.
    static let maxAliases = 16
    /// Nodes of the composed tree with every alias expanded: 100 000.
    static let maxNodes = 100_000

    static func root(of text: String, diagnostics: ConfigDiagnostics) -> Node? {
        let size = text.utf8.count
        guard size <= maxBytes else {
            diagnostics.error("(document)", line: nil, "is \(size) bytes, more than the \(maxBytes) read",
                              expected: "a model definition of at most 1 MiB")
            return nil
        }
        if let issue = YAMLPreScan.check(text, maxDepth: maxDepth, maxAliases: maxAliases) {
            diagnostics.append(issue)
            return nil
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            switch error {
            case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
                 .composer(_, let problem, let mark, _):
                diagnostics.error("(document)", line: mark.line, "is not valid YAML: \(Excerpt.of(problem))",
                                  expected: "YAML `key: value` lines, two-space indentation")
            default:
                diagnostics.error("(document)", line: nil, "is not valid YAML: \(Excerpt.of("\(error)"))",
                                  expected: "UTF-8 YAML text")
            }
            return nil
        } catch {
            diagnostics.error("(document)", line: nil, "is not valid YAML: \(Excerpt.of("\(error)"))",
                              expected: "UTF-8 YAML text")
            return nil
        }
        if let root, let issue = checkExpanded(root) {
            diagnostics.append(issue)
            return nil
        }
        return root
    }

    /// Walks the composed tree, aliases expanded, without recursion and stopping at the first
    /// node past ``maxNodes`` or ``maxDepth``. Aliased nodes share storage, so composing a
    /// "billion laughs" document is cheap; only walking it is not, and this walk stops early.
    static func checkExpanded(_ root: Node, maxDepth: Int = maxDepth, maxNodes: Int = maxNodes) -> ConfigIssue? {
        var pending: [(node: Node, depth: Int)] = [(root, 0)]
        var count = 1
        while let (node, depth) = pending.popLast() {
            var children: [Node] = []
            switch node {
            case .scalar:
                continue
            case .sequence(let sequence):
                children = Array(sequence.prefix(maxNodes + 1))
            case .mapping(let mapping):
                for (key, value) in mapping.prefix(maxNodes) {
                    children.append(key)
                    children.append(value)
                }
            }
            if depth + 1 > maxDepth {
                return ConfigIssue(line: node.mark?.line, key: "(document)",
                                   problem: "nests lists and mappings more than \(maxDepth) levels deep (aliases expanded)",
                                   expected: "at most \(maxDepth) levels of nesting")
            }
            count += children.count
            if count > maxNodes {
                return ConfigIssue(line: node.mark?.line, key: "(document)",
                                   problem: "has more than \(maxNodes) values once its aliases (*name) are expanded",
                                   expected: "a model definition of at most \(maxNodes) values; write fewer repeats")
            }
            pending.append(contentsOf: children.map { ($0, depth + 1) })
        }
        return nil
    }
}
