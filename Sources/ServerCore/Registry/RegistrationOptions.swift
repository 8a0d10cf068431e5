/// The parameters of a registration (`POST /models`, `--models`, config `load_models`).
public struct RegistrationOptions: Sendable, Equatable {
    /// Archive file name or path in the model store, or an `http(s)` URL `allowed_urls` admits.
    public var url: String
    public var modelName: String?
    /// A built-in handler name, or a handler spec file (`.yaml`) in the model store, replacing the archive's.
    public var handler: String?
    public var batchSize: Int?
    public var maxBatchDelay: Int?
    public var initialWorkers: Int?
    public var responseTimeout: Int?
    public var startupTimeout: Int?
    public var maxWorkers: Int?
    /// The file in the model store that an earlier download of `url` left (a restore from a
    /// snapshot): opened instead of fetching `url` again, when it is still there.
    var storedArchive: String?

    public init(url: String, modelName: String? = nil, batchSize: Int? = nil, maxBatchDelay: Int? = nil,
                initialWorkers: Int? = nil, responseTimeout: Int? = nil, startupTimeout: Int? = nil,
                maxWorkers: Int? = nil, handler: String? = nil) {
        self.maxWorkers = maxWorkers
        self.handler = handler
        self.url = url
        self.modelName = modelName
        self.batchSize = batchSize
        self.maxBatchDelay = maxBatchDelay
        self.initialWorkers = initialWorkers
        self.responseTimeout = responseTimeout
        self.startupTimeout = startupTimeout
    }

    /// The values each setting may take, wherever it comes from: the management API checks its
    /// parameters against them, a restore checks the snapshot's (a file on disk is input too).
    public enum Range {
        public static let batchSize = 1...1024
        public static let maxBatchDelay = 0...60_000
        public static let workers = 0...256
        public static let responseTimeout = 1...86_400
        public static let startupTimeout = 1...86_400
    }

    /// Checks every setting against ``Range``.
    /// - Throws: `ModelServerError.badRequest` naming the first setting out of range.
    public func validate() throws(ModelServerError) {
        let checks: [(String, Int?, ClosedRange<Int>)] = [
            ("batch_size", batchSize, Range.batchSize), ("max_batch_delay", maxBatchDelay, Range.maxBatchDelay),
            ("initial_workers", initialWorkers, Range.workers), ("max_worker", maxWorkers, Range.workers),
            ("response_timeout", responseTimeout, Range.responseTimeout), ("startup_timeout", startupTimeout, Range.startupTimeout),
        ]
        for (name, value, range) in checks {
            if let value, !range.contains(value) {
                throw .badRequest("\(name) must be in \(range.lowerBound)...\(range.upperBound), got \(value)")
            }
        }
    }

    /// Registration parameters beat the model config.
    func apply(to settings: inout ModelSettings) {
        if let batchSize { settings.batchSize = batchSize }
        if let maxBatchDelay { settings.maxBatchDelay = maxBatchDelay }
        if let initialWorkers {
            settings.minWorkers = initialWorkers
            settings.maxWorkers = max(settings.maxWorkers, initialWorkers)
        }
        if let responseTimeout { settings.responseTimeout = responseTimeout }
        if let startupTimeout { settings.startupTimeout = startupTimeout }
        if let maxWorkers { settings.maxWorkers = max(settings.minWorkers, maxWorkers) }
    }
}
