import Foundation
import Logging
import Metrics
import ModelArchive
import Torch

/// The core of the server: the registry of models and versions, their workers and queues.
///
/// Every behaviour of the server can be exercised here without HTTP.
public final class ModelServer: @unchecked Sendable {
    public let configuration: ServerConfiguration
    public let placement: DevicePlacement
    /// Where the core's metrics go; the HTTP layer records its own through the same factory.
    public let metricsFactory: any MetricsFactory
    let hostname = ProcessInfo.processInfo.hostName
    let logger: Logger

    private let lock = NSLock()
    /// Versions by model name, in registration order.
    private var models: [String: [ModelVersion]] = [:]
    private var defaults: [String: String] = [:]
    private var startupModels: Set<String> = []
    private var nextWorkerID = 9000
    private var draining = false
    private let snapshots: SnapshotStore?
    /// Serialises snapshot writes so a later state never lands before an earlier one.
    private let snapshotLock = NSLock()

    /// - Parameters:
    ///   - visibleGPUs: CUDA devices to place workers on; nil asks libtorch.
    ///   - snapshots: where the registry is persisted after every management change; nil: nowhere.
    ///   - metricsFactory: where metrics are recorded; the process-wide factory by default.
    public init(configuration: ServerConfiguration, logger: Logger, visibleGPUs: Int? = nil, snapshots: SnapshotStore? = nil,
                metricsFactory: any MetricsFactory = MetricsSystem.factory) {
        self.configuration = configuration
        self.metricsFactory = metricsFactory
        self.logger = logger
        self.snapshots = snapshots
        self.placement = DevicePlacement(
            visibleGPUs: visibleGPUs ?? TorchRuntime.cudaDeviceCount, limit: configuration.numberOfGPU)
    }

    // MARK: Registration

    /// Registers a model version from an archive in the model store and starts its workers.
    ///
    /// - Parameter atStartup: the model was declared at start (config or `--models`), so readiness waits for it.
    /// - Returns: the new version's description, once its initial workers are READY.
    @discardableResult
    public func register(_ options: RegistrationOptions, atStartup: Bool = false) async throws -> ModelDescription {
        let source = try resolveArchiveURL(options.url)
        let opened: OpenedArchive
        do {
            opened = try await onThread { [configuration] in
                try ArchiveReader.open(source, extractingInto: configuration.workDirectory, limits: configuration.extractionLimits)
            }
        } catch let error as ArchiveError {
            throw ModelServerError.invalidModel("\(error)")
        }
        let name = options.modelName ?? opened.name.rawValue
        guard ModelName(rawValue: name) != nil else {
            throw ModelServerError.badRequest("model_name '\(name)' is invalid: use letters, digits, '_', '-' and '.', at most 64")
        }
        let handler = try HandlerFactory.make(opened, pixelLimit: configuration.pixelLimit)
        var settings = ModelSettings(config: opened.config, defaults: configuration)
        options.apply(to: &settings)

        let version = ModelVersion(
            name: name, version: opened.version, modelURL: options.url, archive: opened, handler: handler,
            settings: settings, queueCapacity: configuration.jobQueueSize, logger: logger,
            metrics: ModelMetrics(model: name, version: opened.version, hostname: hostname, factory: metricsFactory))
        try insert(version, atStartup: atStartup)
        do {
            try await version.scale(to: settings.minWorkers, placement: placement, nextWorkerID: allocateWorkerID)
        } catch {
            remove(version)
            version.shutdown()
            throw error
        }
        logger.info("registered \(name) version \(opened.version) with \(settings.minWorkers) workers")
        try persist()
        return try describe(model: name, version: opened.version)[0]
    }

    private func insert(_ version: ModelVersion, atStartup: Bool) throws(ModelServerError) {
        lock.lock()
        defer { lock.unlock() }
        if models[version.name, default: []].contains(where: { $0.version == version.version }) {
            throw .conflict("Model version \(version.version) for model \(version.name) has already been registered")
        }
        models[version.name, default: []].append(version)
        if defaults[version.name] == nil { defaults[version.name] = version.version }
        if atStartup { startupModels.insert(version.name) }
    }

    private func remove(_ version: ModelVersion) {
        lock.lock()
        defer { lock.unlock() }
        models[version.name]?.removeAll { $0 === version }
        if models[version.name]?.isEmpty == true {
            models[version.name] = nil
            defaults[version.name] = nil
        }
    }

    private func allocateWorkerID() -> Int {
        lock.lock()
        defer { lock.unlock() }
        nextWorkerID += 1
        return nextWorkerID - 1
    }

    /// A registration `url` resolved inside the model store (symlinks too); anything else is refused.
    func resolveArchiveURL(_ url: String) throws(ModelServerError) -> URL {
        let lowered = url.lowercased()
        if lowered.hasPrefix("file:") {
            throw .archiveURLNotAllowed("file:// URLs are not allowed; name an archive in the model store")
        }
        if lowered.hasPrefix("http://") || lowered.hasPrefix("https://") {
            throw .archiveURLNotAllowed("URL \(url) matches no allowed_urls pattern; only the model store is allowed")
        }
        let store = configuration.modelStore.standardizedFileURL.resolvingSymlinksInPath()
        let candidate = (url.hasPrefix("/") ? URL(fileURLWithPath: url) : store.appendingPathComponent(url))
            .standardizedFileURL.resolvingSymlinksInPath()
        guard candidate.path.hasPrefix(store.path + "/") else {
            throw .archiveURLNotAllowed("\(url) is outside the model store \(store.path)")
        }
        guard FileManager.default.fileExists(atPath: candidate.path) else {
            throw .archiveNotFound("Model archive not found in the model store: \(url)")
        }
        return candidate
    }

    // MARK: Inference

    /// Runs one prediction on a model's default version, or on `version`.
    public func predict(model: String, version: String? = nil, request: InferenceRequest) async throws -> InferenceResponse {
        let target = try resolve(model: model, version: version)
        let limit = Duration.seconds(target.settings.responseTimeout)
        return try await target.submit(request, timeout: min(request.timeout ?? limit, limit))
    }

    func resolve(model: String, version: String?) throws(ModelServerError) -> ModelVersion {
        lock.lock()
        defer { lock.unlock() }
        guard let versions = models[model] else { throw .modelNotFound(model: model) }
        let wanted = version ?? defaults[model]
        guard let found = versions.first(where: { $0.version == wanted }) else {
            throw .versionNotFound(model: model, version: wanted ?? "")
        }
        return found
    }

    // MARK: Describing

    /// The default version, a given version, or all versions (`"all"`) of a model.
    public func describe(model: String, version: String? = nil) throws(ModelServerError) -> [ModelDescription] {
        lock.lock()
        let versions = models[model] ?? []
        let defaultVersion = defaults[model]
        let atStartup = startupModels.contains(model)
        lock.unlock()
        guard !versions.isEmpty else { throw .modelNotFound(model: model) }
        let chosen: [ModelVersion]
        switch version {
        case "all": chosen = versions
        case nil: chosen = versions.filter { $0.version == defaultVersion }
        case let wanted?: chosen = versions.filter { $0.version == wanted }
        }
        guard !chosen.isEmpty else { throw .versionNotFound(model: model, version: version ?? "") }
        return chosen.map { entry in
            ModelDescription(
                modelName: entry.name, modelVersion: entry.version, modelURL: entry.modelURL,
                runtime: entry.archive.manifest.runtime, handler: entry.archive.handler.rawValue,
                isDefault: entry.version == defaultVersion, settings: entry.settings, workers: entry.workerInfos,
                weightBytes: entry.weightBytes, queueCapacity: entry.queue.capacity,
                pendingRequests: entry.queue.pending, loadedAtStartup: atStartup)
        }
    }

    /// Names of registered models and the URL of each default version, sorted by name.
    public func listModels() -> [(name: String, url: String)] {
        lock.lock()
        defer { lock.unlock() }
        return models.keys.sorted().compactMap { name in
            let chosen = models[name]?.first { $0.version == defaults[name] }
            return chosen.map { (name, $0.modelURL) }
        }
    }

    // MARK: Management

    /// Runs exactly `minWorkers` workers for a model's default version, or for `version`.
    /// - Parameter wait: wait until new workers are READY (or failed).
    public func scale(model: String, version: String? = nil, minWorkers: Int, maxWorkers: Int, wait: Bool) async throws {
        let target = try resolve(model: model, version: version)
        target.updateSettings { $0.minWorkers = minWorkers; $0.maxWorkers = maxWorkers }
        try persist()
        if wait {
            try await target.scale(to: minWorkers, placement: placement, nextWorkerID: allocateWorkerID)
        } else {
            let placement = self.placement
            Task { [logger] in
                do {
                    try await target.scale(to: minWorkers, placement: placement, nextWorkerID: self.allocateWorkerID)
                } catch {
                    logger.error("scaling \(model) to \(minWorkers) workers failed: \(error)")
                }
            }
        }
    }

    /// Makes `version` the one `/predictions/{model}` uses.
    public func setDefault(model: String, version: String) throws(ModelServerError) {
        _ = try resolve(model: model, version: version)
        lock.lock()
        defaults[model] = version
        lock.unlock()
        logger.info("default version of \(model) is now \(version)")
        try persist()
    }

    /// Unregisters a model's default version, or `version`; queued requests are answered 503.
    /// Refuses to remove the default version while other versions remain.
    public func unregister(model: String, version: String? = nil) throws(ModelServerError) {
        lock.lock()
        guard let versions = models[model] else {
            lock.unlock()
            throw .modelNotFound(model: model)
        }
        let wanted = version ?? defaults[model]
        guard let target = versions.first(where: { $0.version == wanted }) else {
            lock.unlock()
            throw .versionNotFound(model: model, version: wanted ?? "")
        }
        if target.version == defaults[model] && versions.count > 1 {
            lock.unlock()
            throw .invalidVersionOperation(
                "Cannot remove the default version \(target.version) of model \(model) while other versions exist; set another default first")
        }
        models[model]?.removeAll { $0 === target }
        if models[model]?.isEmpty == true {
            models[model] = nil
            defaults[model] = nil
            startupModels.remove(model)
        }
        lock.unlock()
        target.shutdown()
        if let folder = target.archive.extractedFolder {
            try? FileManager.default.removeItem(at: folder)
        }
        logger.info("unregistered \(model) version \(target.version)")
        try persist()
    }

    // MARK: Snapshots

    /// The registry as a snapshot.
    public func snapshot() -> Snapshot {
        lock.lock()
        defer { lock.unlock() }
        let entries = models.keys.sorted().compactMap { name -> Snapshot.Model? in
            guard let versions = models[name], let defaultVersion = defaults[name] else { return nil }
            return Snapshot.Model(name: name, defaultVersion: defaultVersion, versions: versions.map { version in
                let settings = version.settings
                return Snapshot.Version(
                    version: version.version, url: version.modelURL, minWorkers: settings.minWorkers,
                    maxWorkers: settings.maxWorkers, batchSize: settings.batchSize, maxBatchDelay: settings.maxBatchDelay,
                    responseTimeout: settings.responseTimeout, startupTimeout: settings.startupTimeout)
            })
        }
        return Snapshot(createdOn: Date().formatted(.iso8601), models: entries)
    }

    /// Writes the current registry to the snapshot store, if there is one.
    func persist() throws(ModelServerError) {
        guard let snapshots else { return }
        snapshotLock.lock()
        defer { snapshotLock.unlock() }
        do {
            try snapshots.write(snapshot())
        } catch {
            logger.error("snapshot not written: \(error)")
            throw .modelFailure("the change was applied but the snapshot could not be written: \(error)")
        }
    }

    /// Registers every model version of a snapshot with its settings and restores the defaults.
    /// - Returns: descriptions of what failed to load (the rest are registered).
    public func restore(_ snapshot: Snapshot) async -> [String] {
        var failures: [String] = []
        for model in snapshot.models {
            for version in model.versions {
                let options = RegistrationOptions(
                    url: version.url, modelName: model.name, batchSize: version.batchSize,
                    maxBatchDelay: version.maxBatchDelay, initialWorkers: version.minWorkers,
                    responseTimeout: version.responseTimeout, startupTimeout: version.startupTimeout,
                    maxWorkers: version.maxWorkers)
                do {
                    try await register(options, atStartup: true)
                } catch {
                    failures.append("\(model.name) version \(version.version) from \(version.url): \(error)")
                }
            }
            try? setDefault(model: model.name, version: model.defaultVersion)
        }
        return failures
    }

    /// The version `/predictions/{model}` would use, if the model exists.
    public func defaultVersion(of model: String) -> String? {
        lock.lock()
        defer { lock.unlock() }
        return defaults[model]
    }

    /// Sets the gauges that describe the present (workers, queues, memory); call before a scrape.
    public func updateGauges() {
        lock.lock()
        let all = models.values.flatMap { $0 }
        lock.unlock()
        var deviceBytes: [String: Int] = [:]
        for version in all {
            let dimensions = version.metrics.dimensions
            let infos = version.workerInfos
            for status in [WorkerStatus.loading, .ready, .unloading, .failed] {
                Gauge(label: MetricName.workers, dimensions: dimensions + [("status", status.rawValue)], factory: metricsFactory)
                    .record(infos.filter { $0.status == status }.count)
            }
            Gauge(label: MetricName.queuePending, dimensions: dimensions, factory: metricsFactory).record(version.queue.pending)
            for (device, bytes) in version.weightBytesByDevice { deviceBytes[device.description, default: 0] += bytes }
        }
        for (device, bytes) in deviceBytes {
            Gauge(label: MetricName.deviceMemory, dimensions: [("device", device)], factory: metricsFactory).record(bytes)
        }
        Gauge(label: MetricName.residentMemory, dimensions: [], factory: metricsFactory).record(residentMemoryBytes())
    }

    // MARK: Health

    /// Flips readiness to 503 ("draining") while requests are still answered, so load
    /// balancers stop routing here before the listeners close.
    public func beginDraining() {
        lock.lock()
        draining = true
        lock.unlock()
        logger.info("draining: readiness is now 503")
    }

    /// nil when ready; else why not (for `/ping`'s 503).
    public var unreadyReason: String? {
        lock.lock()
        let declared = startupModels.sorted()
        let isDraining = draining
        lock.unlock()
        if isDraining { return "server is draining" }
        for name in declared {
            guard let version = try? resolve(model: name, version: nil) else { continue }
            if version.settings.minWorkers > 0 && version.readyWorkerCount == 0 {
                return "model \(name): no live worker"
            }
        }
        return nil
    }

    /// Stops every worker; queued requests are answered 503.
    public func shutdown() {
        lock.lock()
        let all = models.values.flatMap { $0 }
        models.removeAll()
        defaults.removeAll()
        lock.unlock()
        for version in all {
            version.shutdown()
            if let folder = version.archive.extractedFolder {
                try? FileManager.default.removeItem(at: folder)
            }
        }
    }
}

/// Runs blocking work (file I/O, unpacking) on a thread of its own, off the cooperative pool.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try body() })
        }
    }
}
