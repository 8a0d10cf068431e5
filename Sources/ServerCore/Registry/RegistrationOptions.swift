import ModelArchive

/// The parameters of a registration (`POST /models`, `--models`, config `load_models`, a snapshot).
public struct RegistrationOptions: Sendable, Equatable {
    /// Archive file name or path in the model store, or an `http(s)` URL `allowed_urls` admits.
    public var url: String
    public var modelName: String?
    /// A built-in handler name, or a handler spec file (`.yaml`) in the model store, replacing the archive's.
    public var handler: String?
    /// The settings the registration sets (`initial_workers` is `minWorkers`); they beat the
    /// archive's model config and the config's `models` key.
    public var settings: ModelSettings.Override
    /// The file in the model store that an earlier download of `url` left (a restore from a
    /// snapshot): opened instead of fetching `url` again, when it is still there.
    var storedArchive: String?

    public init(url: String, modelName: String? = nil, handler: String? = nil, settings: ModelSettings.Override = .init()) {
        self.url = url
        self.modelName = modelName
        self.handler = handler
        self.settings = settings
    }

    /// A registration with the management API's parameter names.
    public init(url: String, modelName: String? = nil, batchSize: Int? = nil, maxBatchDelay: Int? = nil,
                initialWorkers: Int? = nil, responseTimeout: Int? = nil, startupTimeout: Int? = nil,
                maxWorkers: Int? = nil, handler: String? = nil) {
        self.init(url: url, modelName: modelName, handler: handler, settings: ModelSettings.Override(
            minWorkers: initialWorkers, maxWorkers: maxWorkers, batchSize: batchSize, maxBatchDelay: maxBatchDelay,
            responseTimeout: responseTimeout, startupTimeout: startupTimeout))
    }
}
