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
        let workers = config.settings.minWorkers ?? defaults.defaultWorkersPerModel
        self.init(
            minWorkers: workers, maxWorkers: workers,
            responseTimeout: defaults.defaultResponseTimeout, startupTimeout: defaults.defaultStartupTimeout,
            forceCPU: config.deviceType == .cpu, deviceIds: config.deviceIds ?? [],
            intraOpThreads: config.intraOpThreads ?? defaults.intraOpThreads, optimize: config.optimizesAtLoad,
            shareModule: config.sharesModule, precision: config.precision ?? .float32)
        apply(config.settings)
    }
}

extension ModelSettings {
    /// The settings one layer (model config, the config's `models` key, a registration, a
    /// snapshot, a scale call) sets; nil leaves the layer below in force.
    public typealias Override = ServingSettings

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

extension ServingSettings {
    /// Every value of `settings`: what a snapshot records.
    public init(_ settings: ModelSettings) {
        self.init(minWorkers: settings.minWorkers, maxWorkers: settings.maxWorkers, batchSize: settings.batchSize,
                  maxBatchDelay: settings.maxBatchDelay, responseTimeout: settings.responseTimeout,
                  startupTimeout: settings.startupTimeout)
    }

    /// Checks every value against ``Range``: a snapshot or config file is input too.
    /// - Throws: `ModelServerError.badRequest` naming the first setting out of range.
    public func validate() throws(ModelServerError) {
        if let problem = outOfRange { throw .badRequest(problem) }
    }
}
