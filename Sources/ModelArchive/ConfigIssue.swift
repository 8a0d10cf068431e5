/// One error or warning found in `model-config.yaml` or a handler spec.
public struct ConfigIssue: Equatable, Sendable, Codable, CustomStringConvertible {
    /// The YAML line (1-based), when known.
    public var line: Int?
    /// The key, dotted from the top level: `batchSize`, `handler.inputSize`.
    public var key: String
    /// What is wrong: `has 1 value`, `is not a known key`.
    public var problem: String
    /// What is expected instead, when there is something to say.
    public var expected: String?

    public init(line: Int?, key: String, problem: String, expected: String? = nil) {
        self.line = line
        self.key = key
        self.problem = problem
        self.expected = expected
    }

    /// `12: handler.inputSize has 1 value; expected [height, width], two integers from 1 to 16384`.
    public var description: String {
        let location = line.map { "\($0): " } ?? ""
        let tail = expected.map { "; expected \($0)" } ?? ""
        return "\(location)\(key) \(problem)\(tail)"
    }
}
