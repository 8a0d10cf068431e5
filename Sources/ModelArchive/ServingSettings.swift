/// How a model version is served — workers, batching, timeouts — as one layer sets it:
/// `model-config.yaml`, the server config's `models` key, a registration, a snapshot or a scale
/// call. nil leaves the layer below in force. The names are TorchServe's, which all of those
/// share. The server resolves the layers in order into its `ModelSettings`.
public struct ServingSettings: Sendable, Equatable, Codable {
    public var minWorkers: Int?
    public var maxWorkers: Int?
    /// Requests per forward pass.
    public var batchSize: Int?
    /// Milliseconds a worker waits for a batch to fill.
    public var maxBatchDelay: Int?
    /// Seconds from a request's arrival to its answer.
    public var responseTimeout: Int?
    /// Seconds a worker may take to load.
    public var startupTimeout: Int?

    public init(minWorkers: Int? = nil, maxWorkers: Int? = nil, batchSize: Int? = nil, maxBatchDelay: Int? = nil,
                responseTimeout: Int? = nil, startupTimeout: Int? = nil) {
        self.minWorkers = minWorkers
        self.maxWorkers = maxWorkers
        self.batchSize = batchSize
        self.maxBatchDelay = maxBatchDelay
        self.responseTimeout = responseTimeout
        self.startupTimeout = startupTimeout
    }

    /// The values each setting may take, wherever it comes from.
    public enum Range {
        public static let batchSize = 1...1024
        public static let maxBatchDelay = 0...60_000
        public static let workers = 0...256
        public static let responseTimeout = 1...86_400
        public static let startupTimeout = 1...86_400
    }

    /// What is wrong with the first value outside ``Range`` (`batchSize must be in 1...1024, got 5000`); nil when all fit.
    public var outOfRange: String? {
        let checks: [(String, Int?, ClosedRange<Int>)] = [
            ("batchSize", batchSize, Range.batchSize), ("maxBatchDelay", maxBatchDelay, Range.maxBatchDelay),
            ("minWorkers", minWorkers, Range.workers), ("maxWorkers", maxWorkers, Range.workers),
            ("responseTimeout", responseTimeout, Range.responseTimeout), ("startupTimeout", startupTimeout, Range.startupTimeout),
        ]
        for (name, value, range) in checks {
            if let value, !range.contains(value) { return "\(name) must be in \(range.lowerBound)...\(range.upperBound), got \(value)" }
        }
        return nil
    }
}
