import Foundation
import Logging
import Metrics
import ModelArchive
import Torch

/// The core of the server, as one façade: register, predict, describe, scale, swap and
/// unregister model versions. It delegates to the parts that do the work: the
/// ``ModelRegistry`` (the map of models and versions), the ``ArchiveLocator`` (archives in the
/// store or downloaded), ``Readiness`` and ``SnapshotPersistence``; each version runs its own
/// workers (``ModelVersion``).
///
/// Every behaviour of the server can be exercised here without HTTP.
public final class ModelServer: Sendable {
    public let configuration: ServerConfiguration
    public let placement: DevicePlacement
    /// Where the core's metrics go; the HTTP layer records its own through the same factory.
    public let metricsFactory: any MetricsFactory
    let hostname = ProcessInfo.processInfo.hostName
    let logger: Logger
    let registry = ModelRegistry()
    let readiness = Readiness()
    let archives: ArchiveLocator
    let snapshots: SnapshotPersistence
    /// The first wait before a failed worker is replaced.
    let restartDelay: Duration
    /// Fetches the images requests name by URL.
    let imageFetcher: ImageFetcher

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
        self.metricsFactory = metricsFactory
        self.logger = logger
        self.snapshots = SnapshotPersistence(store: snapshots, logger: logger)
        let downloader = ArchiveDownloader(allowedPatterns: configuration.allowedURLs, limit: downloadLimit)
        self.archives = ArchiveLocator(
            modelStore: configuration.modelStore, workDirectory: configuration.workDirectory,
            extractionLimits: configuration.extractionLimits, downloader: downloader, logger: logger)
        // An image URL passes the same allowed_urls check as a registration URL.
        self.imageFetcher = ImageFetcher(
            isAllowed: { downloader.isAllowed($0) }, addresses: FetchAddressPolicy(allowed: configuration.allowedFetchAddresses),
            sizeLimit: configuration.maxRequestSize)
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
    /// - Throws: `notPersisted` when the snapshot could not be written; the version is then not registered.
    @discardableResult
    public func register(_ options: RegistrationOptions, atStartup: Bool = false, wait: Bool = true) async throws -> ModelDescription {
        try await register(options, atStartup: atStartup, wait: wait, persisting: true)
    }

    /// `register`, writing the snapshot afterwards unless `persisting` is false (a snapshot's own
    /// versions as they are restored: the file already holds them, and writing the registry
    /// while it is half restored would drop the rest if the process died then).
    private func register(_ options: RegistrationOptions, atStartup: Bool, wait: Bool, persisting: Bool) async throws -> ModelDescription {
        let version = try await prepare(options)
        let previousDefault = registry.defaultVersion(of: version.name)
        do {
            try registry.insert(version, atStartup: atStartup)
        } catch {
            ArchiveLocator.discardUnpacked(version.archive)
            throw error
        }
        if configuredModel(version)?.defaultVersion == true { try? registry.setDefault(model: version.name, version: version.version) }
        let workers = version.settings.minWorkers
        let change = "register \(version.name) version \(version.version)"
        if wait {
            try await startOrRollBack(version, workers: workers)
            version.superviseWorkers()
            if persisting { try persistOrRollBack(version, change: change, previousDefault: previousDefault) }
            logger.info("registered \(version.name) version \(version.version) with \(workers) workers")
        } else {
            version.superviseWorkers()
            if persisting { try persistOrRollBack(version, change: change, previousDefault: previousDefault) }
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

    /// Fetches (when it is a URL) and opens the archive, builds its handler and settings. A
    /// registration refused after unpacking removes the unpacked copy.
    private func prepare(_ options: RegistrationOptions) async throws -> ModelVersion {
        let (source, downloaded) = try await archives.locate(options)
        var opened = try await archives.open(source)
        do {
            let name = options.modelName ?? opened.name.rawValue
            guard ModelName(rawValue: name) != nil else {
                throw ModelServerError.badRequest("model_name '\(Excerpt.of(name))' is invalid: use letters, digits, '_', '-' and '.', at most 64")
            }
            if let handler = options.handler {
                opened.handlerSpec = try archives.handlerSpec(handler, replacing: opened)
                opened.handler = opened.handlerSpec.kind
            }
            let handler = try HandlerFactory.make(opened, pixelLimit: configuration.pixelLimit)
            // Archive (model config) → the config's `models` key → the registration.
            let configured = configuration.modelSettings[name]?[opened.version]?.settings
            var settings = ModelSettings(config: opened.config, defaults: configuration,
                                         layers: [configured, options.settings].compactMap { $0 })
            try AOTInductorServing.adapt(opened, settings: &settings)
            return ModelVersion(
                name: name, version: opened.version, modelURL: options.url, storedArchive: downloaded ? source.lastPathComponent : nil,
                archive: opened, handler: handler, handlerOverride: options.handler, settings: settings,
                queueCapacity: configuration.jobQueueSize, placement: placement,
                allocateWorkerID: { [registry] in registry.allocateWorkerID() }, restartDelay: restartDelay, logger: logger,
                metrics: ModelMetrics(model: name, version: opened.version, hostname: hostname, factory: metricsFactory))
        } catch {
            ArchiveLocator.discardUnpacked(opened)
            throw error
        }
    }

    /// The config's `models` entry for a version, if there is one.
    private func configuredModel(_ version: ModelVersion) -> ConfiguredModel? {
        configuration.modelSettings[version.name]?[version.version]
    }

    /// Starts a just-inserted version's workers and waits for them; if they fail to load, the
    /// version leaves the registry again (with its metric series and unpacked files) and the
    /// error is rethrown.
    private func startOrRollBack(_ version: ModelVersion, workers: Int) async throws {
        do {
            try await version.scale(to: workers)
        } catch {
            rollBack(version)
            throw error
        }
    }

    /// Writes the snapshot after `version` was registered; if it cannot be written, the version
    /// leaves the registry again (the model's default back to `previousDefault`) and the error is rethrown.
    private func persistOrRollBack(_ version: ModelVersion, change: String, previousDefault: String?) throws(ModelServerError) {
        do {
            try snapshots.persist(registry, change: change)
        } catch {
            rollBack(version)
            if let previousDefault { try? registry.setDefault(model: version.name, version: previousDefault) }
            throw error
        }
    }

    /// Takes a version that was never acknowledged out of the registry, with its workers, metric
    /// series and unpacked files.
    private func rollBack(_ version: ModelVersion) {
        registry.remove(version)
        version.shutdown()
        version.metrics.destroy()
        ArchiveLocator.discardUnpacked(version.archive)
    }

    // MARK: Inference

    /// Runs one prediction on a model's default version, or on `version`.
    public func predict(model: String, version: String? = nil, request: InferenceRequest) async throws -> InferenceResponse {
        var target = try resolve(model: model, version: version)
        let request = try await fetchingImage(for: request, to: target)
        var response: InferenceResponse
        do {
            response = try await submit(request, to: target)
        } catch ModelServerError.unavailable(let message) where version == nil && target.isRetiring {
            // The default version was swapped out between resolving and queueing: the new one
            // answers. After an unregister there is none, and the 503 stands.
            guard let successor = try? resolve(model: model, version: nil), successor !== target, !successor.isRetiring else {
                throw ModelServerError.unavailable(message)
            }
            target = successor
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
        try await target.submit(request, timeout: timeout(of: request, at: target))
    }

    /// The request's timeout (`X-Request-Timeout-Ms`) capped by the version's response timeout.
    private func timeout(of request: InferenceRequest, at target: ModelVersion) -> Duration {
        let limit = Duration.seconds(target.settings.responseTimeout)
        return min(request.timeout ?? limit, limit)
    }

    /// The request with the image it names by URL (`{"url": …}`) fetched in place of its body,
    /// when the version's handler takes images; any other request as it is. The fetch happens
    /// here, before the request is queued, so that every route shares it and no worker waits on
    /// the network; it spends the request's own deadline, and the rest is left for the queue.
    private func fetchingImage(for request: InferenceRequest, to target: ModelVersion) async throws -> InferenceRequest {
        if case .forward = request.mode { return request }
        guard ModelSignature.HandlerInput(target.archive.handler) == .image, let url = try ImageURLRequest.url(in: request.body) else {
            return request
        }
        let timeout = timeout(of: request, at: target)
        let started = ContinuousClock.now
        var fetched = request
        do {
            fetched.body = try await imageFetcher.fetch(url, deadline: started.advanced(by: timeout))
        } catch {
            target.metrics.record(.fetch, ContinuousClock.now - started)
            target.metrics.fetched(error.reason)
            logger.debug("image fetch for \(target.name) failed (\(error.reason.rawValue)): \(error.message)")
            throw ModelServerError.imageFetchFailed(error)
        }
        let elapsed = ContinuousClock.now - started
        target.metrics.record(.fetch, elapsed)
        target.metrics.fetched(nil)
        fetched.contentType = nil
        fetched.timeout = max(timeout - elapsed, .milliseconds(1))
        return fetched
    }

    /// The default version of `model`, or `version`.
    func resolve(model: String, version: String?) throws(ModelServerError) -> ModelVersion {
        try registry.resolve(model: model, version: version)
    }

    // MARK: Management

    /// Runs exactly `minWorkers` workers for a model's default version, or for `version`: the
    /// last layer of its settings.
    /// - Parameter wait: wait until new workers are READY (or failed).
    public func scale(model: String, version: String? = nil, minWorkers: Int, maxWorkers: Int, wait: Bool) async throws {
        let target = try resolve(model: model, version: version)
        let previous = target.settings
        target.updateSettings { $0.apply(ModelSettings.Override(minWorkers: minWorkers, maxWorkers: maxWorkers)) }
        do {
            try snapshots.persist(registry, change: "scale \(model) version \(target.version) to \(minWorkers) workers")
        } catch {
            target.updateSettings { $0 = previous }
            throw error
        }
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

    /// Makes `version` the one requests that name no version get.
    public func setDefault(model: String, version: String) throws(ModelServerError) {
        let previous = registry.defaultVersion(of: model)
        try registry.setDefault(model: model, version: version)
        do {
            try snapshots.persist(registry, change: "set the default of \(model) to version \(version)")
        } catch {
            if let previous { try? registry.setDefault(model: model, version: previous) }
            throw error
        }
        logger.info("default version of \(model) is now \(version)")
    }

    /// Unregisters a model's default version, or `version`. New requests get 404 at once;
    /// queued and running ones finish (up to `drainTimeout`, the rest are answered 503).
    /// Refuses to remove the default version while other versions remain.
    public func unregister(model: String, version: String? = nil, drainTimeout: Duration = .seconds(120)) async throws(ModelServerError) {
        let before = registry.entry(model)
        let target = try registry.detachForUnregister(model: model, version: version)
        do {
            try snapshots.persist(registry, change: "unregister \(model) version \(target.version)")
        } catch {
            registry.reinstate(target, at: before.versions.firstIndex { $0 === target } ?? before.versions.count,
                               asDefault: before.defaultVersion == target.version, atStartup: before.atStartup)
            throw error
        }
        await retire(target, timeout: drainTimeout)
        logger.info("unregistered \(model) version \(target.version)")
    }

    /// Lets a detached version finish its queue, then stops it, deletes its unpacked files and
    /// removes its metric series (unless the same version was registered again meanwhile).
    private func retire(_ target: ModelVersion, timeout: Duration) async {
        await target.drainAndShutdown(timeout: timeout)
        ArchiveLocator.discardUnpacked(target.archive)
        if !registry.contains(model: target.name, version: target.version) { target.metrics.destroy() }
    }

    /// Replaces the default version of `model` without downtime: loads the archive at `url`
    /// with the default's settings and warms it up, makes it the default atomically, then
    /// drains and unregisters the old default. A failed load, or a snapshot that cannot be
    /// written, leaves the old version serving.
    /// - Returns: the old and the new version.
    public func swap(model: String, url: String, drainTimeout: Duration = .seconds(120)) async throws -> (old: String, new: String) {
        let old = try resolve(model: model, version: nil)
        let before = registry.entry(model)
        var settings = ModelSettings.Override(old.settings)
        settings.minWorkers = max(1, old.settings.minWorkers)
        let candidate = try await prepare(RegistrationOptions(url: url, modelName: model, settings: settings))
        do {
            try registry.insert(candidate, atStartup: false)
        } catch {
            ArchiveLocator.discardUnpacked(candidate.archive)
            throw error
        }
        // Loading warms every batch size up, so the first request after the flip pays nothing extra.
        try await startOrRollBack(candidate, workers: candidate.settings.minWorkers)
        candidate.superviseWorkers()
        registry.promote(candidate, replacing: old)
        do {
            try snapshots.persist(registry, change: "swap \(model) version \(old.version) for \(candidate.version)")
        } catch {
            registry.reinstate(old, at: before.versions.firstIndex { $0 === old } ?? 0, asDefault: true,
                               atStartup: before.atStartup, removing: candidate)
            candidate.shutdown()
            candidate.metrics.destroy()
            ArchiveLocator.discardUnpacked(candidate.archive)
            throw error
        }
        logger.info("swapped \(model): version \(candidate.version) is default, draining \(old.version)")
        await retire(old, timeout: drainTimeout)
        return (old.version, candidate.version)
    }

    // MARK: Snapshots and start-up

    /// The registry as a snapshot.
    public func snapshot() -> Snapshot {
        SnapshotPersistence.snapshot(of: registry)
    }

    /// Registers every model version of a snapshot with its settings and restores the defaults.
    /// The snapshot is not written meanwhile: the file already holds these versions.
    /// - Returns: what failed to load, by model (the rest are registered).
    public func restore(_ snapshot: Snapshot) async -> [(model: String, reason: String)] {
        var failures: [(model: String, reason: String)] = []
        for model in snapshot.models {
            for version in model.versions {
                do {
                    try version.settings.validate()
                    _ = try await register(version.registration(model: model.name), atStartup: true, wait: true, persisting: false)
                } catch {
                    failures.append((model.name, "version \(version.version) from \(version.url): \(error)"))
                }
            }
            try? registry.setDefault(model: model.name, version: model.defaultVersion)
        }
        return failures
    }

    /// Registers the models declared for start-up (the snapshot's, then `load_models` /
    /// `--models`), one after another, while readiness says which one is loading. Failures are
    /// kept and make readiness 503 with the reason; the rest still load.
    public func loadStartupModels(snapshot: Snapshot?, registrations: [RegistrationOptions]) async {
        readiness.startLoading((snapshot?.models.map(\.name) ?? []) + registrations.map { $0.modelName ?? $0.url })
        if let snapshot {
            for failure in await restore(snapshot) { readiness.failed(failure.model, reason: failure.reason) }
            readiness.finishedLoading(snapshot.models.count)
        }
        for registration in registrations {
            let label = registration.modelName ?? registration.url
            do {
                let description = try await register(registration, atStartup: true)
                logger.info("model \(description.modelName) version \(description.modelVersion) ready")
            } catch ModelServerError.conflict where snapshot != nil {
                logger.info("model \(label) already restored from the snapshot")
            } catch {
                logger.error("model \(label) failed to load: \(error)")
                readiness.failed(label, reason: "\(error)")
            }
            readiness.finishedLoading()
        }
    }

    /// Start-up models that failed to load, with the reason.
    public var startupFailures: [(model: String, reason: String)] {
        readiness.failures
    }

    // MARK: Health

    /// Flips readiness to 503 ("draining") while requests are still answered, so load
    /// balancers stop routing here before the listeners close.
    public func beginDraining() {
        readiness.beginDraining()
        logger.info("draining: readiness is now 503")
    }

    /// nil when ready; else why not (the health routes answer 503 with it).
    public var unreadyReason: String? {
        readiness.unreadyReason(registry: registry)
    }

    /// Stops every worker; queued requests are answered 503.
    public func shutdown() {
        for version in registry.removeAll() {
            version.shutdown()
            ArchiveLocator.discardUnpacked(version.archive)
        }
    }
}
