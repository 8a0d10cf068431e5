import ModelArchive

/// How one model version is served, resolved once from registration parameters,
/// `model-config.yaml` and server defaults, in that order.
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
