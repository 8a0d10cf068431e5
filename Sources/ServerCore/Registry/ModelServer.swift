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
    /// Start-up models (by the name or file that declared them) still loading.
    private var startupLoading: [String] = []
    /// Start-up models that failed to load, with the reason.
    private var startupFailures: [(model: String, reason: String)] = []
    private var nextWorkerID = 9000
    private var draining = false
    private let snapshots: SnapshotStore?
    /// Serialises snapshot writes so a later state never lands before an earlier one.
    private let snapshotLock = NSLock()
    /// The first wait before a failed worker is replaced.
    let restartDelay: Duration
    let downloader: ArchiveDownloader

    /// - Parameters:
    ///   - visibleGPUs: CUDA devices to place workers on; nil asks libtorch.
    ///   - snapshots: where the registry is persisted after every management change; nil: nowhere.
    ///   - metricsFactory: where metrics are recorded; the process-wide factory by default.
    ///   - restartDelay: the first wait before a worker that failed to load is replaced (then 1, 2, 3, 5… times it).
    ///   - downloadLimit: the largest archive an `http(s)` registration may download, in bytes.
    public init(configuration: ServerConfiguration, logger: Logger, visibleGPUs: Int? = nil, snapshots: SnapshotStore? = nil,
                metricsFactory: any MetricsFactory = MetricsSystem.factory, restartDelay: Duration = .seconds(1),
                downloadLimit: Int64 = 2 << 30) {
        self.configuration = configuration
        self.restartDelay = restartDelay
        self.downloader = ArchiveDownloader(allowedPatterns: configuration.allowedURLs, limit: downloadLimit)
        self.metricsFactory = metricsFactory
        self.logger = logger
        self.snapshots = snapshots
        self.placement = DevicePlacement(
            visibleGPUs: visibleGPUs ?? TorchRuntime.cudaDeviceCount, limit: configuration.numberOfGPU)
        PathRedaction.register(workDirectory: configuration.workDirectory, modelStore: configuration.modelStore)
    }

    // MARK: Registration

    /// Registers a model version from an archive and starts its workers.
    ///
    /// - Parameters:
    ///   - atStartup: the model was declared at start (config or `--models`), so readiness waits for it.
    ///   - wait: wait until the initial workers are READY; a failed load then rolls the registration
    ///     back. Without waiting, the version is registered (and in the snapshot) once its archive
    ///     opened, its workers load in the background, and failed ones are replaced with backoff.
    /// - Returns: the new version's description.
    @discardableResult
    public func register(_ options: RegistrationOptions, atStartup: Bool = false, wait: Bool = true) async throws -> ModelDescription {
        let version = try await prepare(options)
        do {
            try insert(version, atStartup: atStartup)
        } catch {
            discardUnpacked(version.archive)
            throw error
        }
        let workers = version.settings.minWorkers
        if wait {
            try await startOrRollBack(version, workers: workers)
            version.superviseWorkers()
            logger.info("registered \(version.name) version \(version.version) with \(workers) workers")
            try persist()
        } else {
            version.superviseWorkers()
            try persist()
            logger.info("registered \(version.name) version \(version.version); \(workers) workers loading")
            Task { [logger] in
                do {
                    try await version.scale(to: workers)
                } catch {
                    logger.error("loading \(version.name) version \(version.version): \(error)")
                }
            }
        }
        return try describe(model: version.name, version: version.version)[0]
    }

    /// Fetches (when it is a URL) and opens the archive, builds its handler and settings.
    private func prepare(_ options: RegistrationOptions) async throws -> ModelVersion {
        let (source, downloaded) = try await locateArchive(options)
        var opened: OpenedArchive
        do {
            opened = try await onThread { [configuration] in
                try ArchiveReader.open(source, extractingInto: configuration.workDirectory, limits: configuration.extractionLimits)
            }
        } catch let error as ArchiveError {
            throw ModelServerError.invalidModel("\(error)")
        }
        do {
            let name = options.modelName ?? opened.name.rawValue
            guard ModelName(rawValue: name) != nil else {
                throw ModelServerError.badRequest("model_name '\(Excerpt.of(name))' is invalid: use letters, digits, '_', '-' and '.', at most 64")
            }
            if let handler = options.handler {
                opened.handlerSpec = try handlerSpec(handler, replacing: opened)
                opened.handler = opened.handlerSpec.kind
            }
            let handler = try HandlerFactory.make(opened, pixelLimit: configuration.pixelLimit)
            var settings = ModelSettings(config: opened.config, defaults: configuration)
            options.apply(to: &settings)
            return ModelVersion(
                name: name, version: opened.version, modelURL: options.url, storedArchive: downloaded ? source.lastPathComponent : nil,
                archive: opened, handler: handler,
                handlerOverride: options.handler, settings: settings, queueCapacity: configuration.jobQueueSize, placement: placement,
                allocateWorkerID: { [weak self] in self?.allocateWorkerID() ?? 0 }, restartDelay: restartDelay, logger: logger,
                metrics: ModelMetrics(model: name, version: opened.version, hostname: hostname, factory: metricsFactory))
        } catch {
            // Refused after unpacking: the unpacked copy goes too.
            discardUnpacked(opened)
            throw error
        }
    }

    /// Deletes the folder an archive was unpacked into, if it was unpacked.
    private func discardUnpacked(_ archive: OpenedArchive) {
        if let folder = archive.extractedFolder { try? FileManager.default.removeItem(at: folder) }
    }

    /// The spec a registration's `handler` names: a built-in kind (the archive's own spec when
    /// it is that kind, else the kind's defaults) or a `.yaml` spec file in the model store.
    private func handlerSpec(_ handler: String, replacing archive: OpenedArchive) throws(ModelServerError) -> HandlerSpec {
        let lowered = handler.lowercased()
        if lowered.hasSuffix(".yaml") || lowered.hasSuffix(".yml") {
            let file = try resolveArchiveURL(handler)
            do {
                return try HandlerSpec.load(contentsOf: file)
            } catch {
                throw .invalidModel("handler spec \(handler): \(error)")
            }
        }
        let kind: HandlerKind
        do {
            kind = try HandlerKind(handlerName: handler)
        } catch {
            throw .invalidModel("\(error)")
        }
        return archive.handler == kind ? archive.handlerSpec : .defaults(for: kind)
    }

    /// Starts a just-inserted version's workers and waits for them; if they fail to load, the
    /// version leaves the registry again and the error is rethrown.
    private func startOrRollBack(_ version: ModelVersion, workers: Int) async throws {
        do {
            try await version.scale(to: workers)
        } catch {
            remove(version)
            version.shutdown()
            version.metrics.destroy()
            discardUnpacked(version.archive)
            throw error
        }
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

    /// A registration's archive as a local file: an allowed `http(s)` URL is downloaded into the
    /// model store first (unless an earlier download of it is named and still there); anything
    /// else must resolve inside the store.
    /// - Returns: the file, and whether it is a download of an `http(s)` URL.
    func locateArchive(_ options: RegistrationOptions) async throws(ModelServerError) -> (file: URL, downloaded: Bool) {
        let url = options.url
        let lowered = url.lowercased()
        guard lowered.hasPrefix("http://") || lowered.hasPrefix("https://") else { return (try resolveArchiveURL(url), false) }
        if let stored = options.storedArchive, let file = try? resolveArchiveURL(stored) {
            logger.info("using \(stored) in the model store, downloaded earlier from \(url)")
            return (file, true)
        }
        let file = try await downloader.download(url, into: configuration.modelStore)
        logger.info("downloaded \(url) to \(file.path)")
        return (file, true)
    }

    /// A registration `url` resolved inside the model store (symlinks too); anything else is refused.
    func resolveArchiveURL(_ url: String) throws(ModelServerError) -> URL {
        let lowered = url.lowercased()
        if lowered.hasPrefix("file:") {
            throw .archiveURLNotAllowed("file:// URLs are not allowed; name an archive in the model store")
        }
        if lowered.hasPrefix("http://") || lowered.hasPrefix("https://") {
            throw .archiveURLNotAllowed("URL \(url) is not a file in the model store")
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
        var target = try resolve(model: model, version: version)
        var response: InferenceResponse
        do {
            response = try await submit(request, to: target)
        } catch ModelServerError.unavailable(let message) where version == nil && target.isRetiring {
            // The default version was swapped out between resolving and queueing: the new one answers.
            target = try resolve(model: model, version: nil)
            guard !target.isRetiring else { throw ModelServerError.unavailable(message) }
            response = try await submit(request, to: target)
        }
        response.version = target.version
        guard response.body.count <= configuration.maxResponseSize else {
            throw ModelServerError.modelFailure(
                "Model \(model) produced a \(response.body.count)-byte response, more than max_response_size (\(configuration.maxResponseSize)); raise max_response_size or ask for a smaller output")
        }
        return response
    }

    private func submit(_ request: InferenceRequest, to target: ModelVersion) async throws -> InferenceResponse {
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
                pendingRequests: entry.queue.pending, loadedAtStartup: atStartup, loadTimings: entry.loadTimings)
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
            try await target.scale(to: minWorkers)
        } else {
            Task { [logger] in
                do {
                    try await target.scale(to: minWorkers)
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

    /// Unregisters a model's default version, or `version`. New requests get 404 at once;
    /// queued and running ones finish (up to `drainTimeout`, the rest are answered 503).
    /// Refuses to remove the default version while other versions remain.
    public func unregister(model: String, version: String? = nil, drainTimeout: Duration = .seconds(120)) async throws(ModelServerError) {
        let target = try detachForUnregister(model: model, version: version)
        try persist()
        await retire(target, timeout: drainTimeout)
        logger.info("unregistered \(model) version \(target.version)")
    }

    private func detachForUnregister(model: String, version: String?) throws(ModelServerError) -> ModelVersion {
        lock.lock()
        defer { lock.unlock() }
        guard let versions = models[model] else { throw .modelNotFound(model: model) }
        let wanted = version ?? defaults[model]
        guard let target = versions.first(where: { $0.version == wanted }) else {
            throw .versionNotFound(model: model, version: wanted ?? "")
        }
        if target.version == defaults[model] && versions.count > 1 {
            throw .invalidVersionOperation(
                "Cannot remove the default version \(target.version) of model \(model) while other versions exist; set another default first")
        }
        detach(target)
        return target
    }

    /// Removes a version from the registry; the caller holds `lock`.
    private func detach(_ target: ModelVersion) {
        let model = target.name
        models[model]?.removeAll { $0 === target }
        if models[model]?.isEmpty == true {
            models[model] = nil
            defaults[model] = nil
            startupModels.remove(model)
        }
    }

    /// Lets a detached version finish its queue, then stops it, deletes its unpacked files and
    /// removes its metric series (unless the same version was registered again meanwhile).
    private func retire(_ target: ModelVersion, timeout: Duration) async {
        await target.drainAndShutdown(timeout: timeout)
        if let folder = target.archive.extractedFolder {
            try? FileManager.default.removeItem(at: folder)
        }
        if (try? resolve(model: target.name, version: target.version)) == nil { target.metrics.destroy() }
    }

    /// Counts an answered inference request in `ts_inference_responses_total`, under the
    /// version that answered when it is registered; requests naming a model or version that is
    /// not registered are counted under `(unknown)`, so clients cannot create series at will.
    public func countResponse(model: String, version: String?, code: Int) {
        if let target = try? resolve(model: model, version: version) {
            target.metrics.response(code: code)
        } else {
            ModelMetrics.responses([("model_name", "(unknown)"), ("model_version", "(unknown)")], code: code, factory: metricsFactory)
                .increment()
        }
    }

    /// Replaces the default version of `model` without downtime: loads the archive at `url`
    /// with the default's settings and warms it up, makes it the default atomically, then
    /// drains and unregisters the old default. A failed load leaves the old version serving.
    /// - Returns: the old and the new version.
    public func swap(model: String, url: String, drainTimeout: Duration = .seconds(120)) async throws -> (old: String, new: String) {
        let old = try resolve(model: model, version: nil)
        let settings = old.settings
        let options = RegistrationOptions(
            url: url, modelName: model, batchSize: settings.batchSize, maxBatchDelay: settings.maxBatchDelay,
            initialWorkers: max(1, settings.minWorkers), responseTimeout: settings.responseTimeout,
            startupTimeout: settings.startupTimeout, maxWorkers: settings.maxWorkers)
        let candidate = try await prepare(options)
        do {
            try insert(candidate, atStartup: false)
        } catch {
            discardUnpacked(candidate.archive)
            throw error
        }
        // Loading warms every batch size up, so the first request after the flip pays nothing extra.
        try await startOrRollBack(candidate, workers: max(1, settings.minWorkers))
        candidate.superviseWorkers()
        lock.withLock {
            defaults[model] = candidate.version
            if models[model]?.contains(where: { $0 === old }) == true { detach(old) }
        }
        logger.info("swapped \(model): version \(candidate.version) is default, draining \(old.version)")
        try persist()
        await retire(old, timeout: drainTimeout)
        return (old.version, candidate.version)
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
                    responseTimeout: settings.responseTimeout, startupTimeout: settings.startupTimeout,
                    handler: version.handlerOverride, archive: version.storedArchive)
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
    /// - Returns: what failed to load, by model (the rest are registered).
    public func restore(_ snapshot: Snapshot) async -> [(model: String, reason: String)] {
        var failures: [(model: String, reason: String)] = []
        for model in snapshot.models {
            for version in model.versions {
                var options = RegistrationOptions(
                    url: version.url, modelName: model.name, batchSize: version.batchSize,
                    maxBatchDelay: version.maxBatchDelay, initialWorkers: version.minWorkers,
                    responseTimeout: version.responseTimeout, startupTimeout: version.startupTimeout,
                    maxWorkers: version.maxWorkers, handler: version.handler)
                // A download is opened from the store again; snapshots written before `archive`
                // existed name the file the download was saved as, the URL's last component.
                options.storedArchive = version.archive ?? URL(string: version.url)?.lastPathComponent
                do {
                    try options.validate()
                    try await register(options, atStartup: true)
                } catch {
                    failures.append((model.name, "version \(version.version) from \(version.url): \(error)"))
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
            for status in WorkerStatus.allCases {
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

    /// Registers the models declared for start-up (the snapshot's, then `load_models` /
    /// `--models`), one after another, while readiness says which one is loading. Failures are
    /// kept and make readiness 503 with the reason; the rest still load.
    public func loadStartupModels(snapshot: Snapshot?, registrations: [RegistrationOptions]) async {
        let labels = (snapshot?.models.map(\.name) ?? []) + registrations.map(Self.label)
        lock.withLock { startupLoading = labels }
        if let snapshot {
            let failures = await restore(snapshot)
            lock.withLock {
                startupFailures += failures
                startupLoading.removeFirst(min(snapshot.models.count, startupLoading.count))
            }
        }
        for registration in registrations {
            let label = Self.label(registration)
            do {
                let description = try await register(registration, atStartup: true)
                logger.info("model \(description.modelName) version \(description.modelVersion) ready")
            } catch ModelServerError.conflict where snapshot != nil {
                logger.info("model \(label) already restored from the snapshot")
            } catch {
                logger.error("model \(label) failed to load: \(error)")
                lock.withLock { startupFailures.append((label, "\(error)")) }
            }
            lock.withLock { if !startupLoading.isEmpty { startupLoading.removeFirst() } }
        }
    }

    private static func label(_ registration: RegistrationOptions) -> String {
        registration.modelName ?? registration.url
    }

    /// nil when ready; else why not (for `/ping`'s 503).
    public var unreadyReason: String? {
        lock.lock()
        let declared = startupModels.sorted()
        let isDraining = draining
        let loading = startupLoading.first
        let failure = startupFailures.first
        lock.unlock()
        if isDraining { return "server is draining" }
        if let failure { return "model \(failure.model): failed to load: \(failure.reason)" }
        if let loading { return "model \(loading): loading" }
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
