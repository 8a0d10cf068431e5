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
