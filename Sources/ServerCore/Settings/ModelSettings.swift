import ModelArchive

/// How one model version is served.
///
/// Resolved in one order, each layer an ``Override`` of the one before: the server's defaults,
/// the archive's `model-config.yaml`, the config's `models` key, the registration's parameters,
/// then any scale call.
public struct ModelSettings: Sendable, Equatable {
    public var minWorkers: Int
    public var maxWorkers: Int
    public var batchSize: Int
    /// Milliseconds a worker waits for a batch to fill after its first request.
    public var maxBatchDelay: Int
    /// Seconds a request may take from arrival to answer.
    public var responseTimeout: Int
    /// Seconds a worker may take to load.
    public var startupTimeout: Int
    public var forceCPU: Bool
    public var deviceIds: [Int]
    /// libtorch intra-op threads per worker thread.
    public var intraOpThreads: Int
    /// Freeze and optimise the module at load (verified against the plain module).
    public var optimize: Bool
    /// Workers on one device share one module; false loads one per worker (models with state).
    public var shareModule: Bool
    /// Convert weights and floating-point inputs to this type at load (verified; float32 keeps the file's).
    public var precision: ModelConfig.Precision

    public init(minWorkers: Int = 1, maxWorkers: Int = 1, batchSize: Int = 1, maxBatchDelay: Int = 100,
                responseTimeout: Int = 120, startupTimeout: Int = 120, forceCPU: Bool = false, deviceIds: [Int] = [],
                intraOpThreads: Int = 1, optimize: Bool = true, shareModule: Bool = true, precision: ModelConfig.Precision = .float32) {
        self.shareModule = shareModule
        self.precision = precision
        self.minWorkers = minWorkers
        self.maxWorkers = maxWorkers
        self.batchSize = batchSize
        self.maxBatchDelay = maxBatchDelay
        self.responseTimeout = responseTimeout
        self.startupTimeout = startupTimeout
        self.forceCPU = forceCPU
        self.deviceIds = deviceIds
        self.intraOpThreads = intraOpThreads
        self.optimize = optimize
    }

    /// Settings from a model's config, with the server's defaults where it is silent.
    init(config: ModelConfig, defaults: ServerConfiguration) {
        let workers = config.minWorkers ?? defaults.defaultWorkersPerModel
        self.init(
            minWorkers: workers,
            maxWorkers: max(workers, config.maxWorkers ?? workers),
            batchSize: config.batchSize ?? 1,
            maxBatchDelay: config.maxBatchDelay ?? 100,
            responseTimeout: config.responseTimeout ?? defaults.defaultResponseTimeout,
            startupTimeout: config.startupTimeout ?? defaults.defaultStartupTimeout,
            forceCPU: config.deviceType == .cpu,
            deviceIds: config.deviceIds ?? [],
            intraOpThreads: config.intraOpThreads ?? defaults.intraOpThreads,
            optimize: config.optimizesAtLoad,
            shareModule: config.sharesModule,
            precision: config.precision ?? .float32)
    }
}

extension ModelSettings {
    /// The settings one layer (model config, the config's `models` key, a registration, a
    /// snapshot, a scale call) sets; nil leaves the layer below in force. Coded with the names
    /// TorchServe gives them, which `model-config.yaml`, the `models` key and the snapshot share.
    public struct Override: Sendable, Equatable, Codable {
        public var minWorkers: Int?
        public var maxWorkers: Int?
        public var batchSize: Int?
        /// Milliseconds a worker waits for a batch to fill.
        public var maxBatchDelay: Int?
        /// Seconds from arrival to answer.
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

        /// Every value of `settings`: what a snapshot records.
        public init(_ settings: ModelSettings) {
            self.init(minWorkers: settings.minWorkers, maxWorkers: settings.maxWorkers, batchSize: settings.batchSize,
                      maxBatchDelay: settings.maxBatchDelay, responseTimeout: settings.responseTimeout,
                      startupTimeout: settings.startupTimeout)
        }

        /// The values each setting may take, wherever it comes from.
        public enum Range {
            public static let batchSize = 1...1024
            public static let maxBatchDelay = 0...60_000
            public static let workers = 0...256
            public static let responseTimeout = 1...86_400
            public static let startupTimeout = 1...86_400
        }

        /// Checks every value against ``Range``: a snapshot or config file is input too.
        /// - Throws: `ModelServerError.badRequest` naming the first setting out of range.
        public func validate() throws(ModelServerError) {
            let checks: [(String, Int?, ClosedRange<Int>)] = [
                ("batchSize", batchSize, Range.batchSize), ("maxBatchDelay", maxBatchDelay, Range.maxBatchDelay),
                ("minWorkers", minWorkers, Range.workers), ("maxWorkers", maxWorkers, Range.workers),
                ("responseTimeout", responseTimeout, Range.responseTimeout), ("startupTimeout", startupTimeout, Range.startupTimeout),
            ]
            for (name, value, range) in checks {
                if let value, !range.contains(value) {
                    throw .badRequest("\(name) must be in \(range.lowerBound)...\(range.upperBound), got \(value)")
                }
            }
        }
    }

    /// Applies a layer: each value it sets replaces this one; `maxWorkers` never ends below `minWorkers`.
    public mutating func apply(_ layer: Override) {
        if let value = layer.batchSize { batchSize = value }
        if let value = layer.maxBatchDelay { maxBatchDelay = value }
        if let value = layer.responseTimeout { responseTimeout = value }
        if let value = layer.startupTimeout { startupTimeout = value }
        if let value = layer.minWorkers {
            minWorkers = value
            maxWorkers = max(maxWorkers, value)
        }
        if let value = layer.maxWorkers { maxWorkers = max(minWorkers, value) }
    }

    /// A version's settings: the server's defaults, then the archive's model config, then each
    /// of `layers` in order (the config's `models` entry, the registration).
    init(config: ModelConfig, defaults: ServerConfiguration, layers: [Override]) {
        self.init(config: config, defaults: defaults)
        for layer in layers { apply(layer) }
    }
}
