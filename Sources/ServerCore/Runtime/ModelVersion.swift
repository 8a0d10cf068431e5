import Foundation
import Logging
import ModelArchive
import Torch

/// One registered version of a model: its archive, handler, settings and queue, over three parts
/// that do the work: a `ModuleLoader` (read, convert or optimise, warm up, time), a `WorkerPool`
/// (workers, their modules and their replacement) and a `BatchExecutor` (one batch, answered).
///
/// The workers of a version on one device share one loaded module, so N workers cost one copy
/// of the weights plus their activations.
final class ModelVersion: Sendable {
    let name: String
    let version: String
    /// The `url` it was registered from, as describe shows it.
    let modelURL: String
    /// The model store file a download of `modelURL` was saved as; nil when `modelURL` names a store file itself.
    let storedArchive: String?
    let archive: OpenedArchive
    let handler: any Handler
    /// The `handler` given at registration in place of the archive's, if one was.
    let handlerOverride: String?
    let queue: BatchQueue
    let logger: Logger
    let metrics: ModelMetrics
    let loader: ModuleLoader
    let executor: BatchExecutor
    let pool: WorkerPool

    init(name: String, version: String, modelURL: String, storedArchive: String? = nil, archive: OpenedArchive, handler: any Handler,
         handlerOverride: String? = nil, settings: ModelSettings, queueCapacity: Int, placement: DevicePlacement,
         allocateWorkerID: @escaping @Sendable () -> Int, restartDelay: Duration, logger: Logger, metrics: ModelMetrics) {
        self.metrics = metrics
        self.name = name
        self.version = version
        self.modelURL = modelURL
        self.storedArchive = storedArchive
        self.archive = archive
        self.handler = handler
        self.handlerOverride = handlerOverride
        self.queue = BatchQueue(capacity: queueCapacity)
        var logger = logger
        logger[metadataKey: "model"] = "\(name)/\(version)"
        self.logger = logger
        let loader = ModuleLoader(file: archive.serializedFile, package: archive.aotInductor, handler: handler, logger: logger)
        self.loader = loader
        executor = BatchExecutor(name: name, version: version, handler: handler, metrics: metrics, logger: logger,
                                 answered: { loader.recordAnswer(after: $0) })
        pool = WorkerPool(name: name, settings: settings, queue: queue, loader: loader, executor: executor, placement: placement,
                          allocateWorkerID: allocateWorkerID, restartDelay: restartDelay, logger: logger)
    }

    var settings: ModelSettings {
        pool.settings
    }

    func updateSettings(_ change: (inout ModelSettings) -> Void) {
        pool.updateSettings(change)
    }

    var workerInfos: [WorkerInfo] {
        pool.workerInfos
    }

    var readyWorkerCount: Int {
        pool.readyWorkerCount
    }

    /// Bytes of the weights of one loaded module (shared by the workers of a device).
    var weightBytes: Int {
        pool.weightBytes
    }

    /// Weight bytes held on each device.
    var weightBytesByDevice: [Device: Int] {
        pool.weightBytesByDevice
    }

    /// How long the first module took to load and warm up, and the first request after it.
    var loadTimings: LoadTimings? {
        loader.loadTimings
    }

    /// Whether the version was unregistered (or swapped out) and is finishing its queue.
    var isRetiring: Bool {
        pool.isRetiring
    }

    /// Queues a request and waits for its answer.
    func submit(_ request: InferenceRequest, timeout: Duration) async throws -> InferenceResponse {
        guard readyWorkerCount > 0 else {
            throw ModelServerError.unavailable("Model \(name) version \(version) has no live worker; scale it up or check its logs")
        }
        let arrived = ContinuousClock.now
        let deadline = arrived.advanced(by: timeout)
        var request = request
        request.deadline = deadline
        let trace = RequestTrace.current
        return try await withCheckedThrowingContinuation { continuation in
            let job = InferenceJob(request: request, arrivedAt: arrived, deadline: deadline, metrics: metrics, trace: trace,
                                   continuation: continuation)
            do throws(ModelServerError) {
                try queue.enqueue(job, model: name)
                job.armDeadline(model: name)
            } catch {
                if case .queueFull = error { metrics.dropped(.queueFull) }
                job.finish(.failure(error))
            }
        }
    }

    /// From now on a worker that fails to load is replaced, after a growing wait.
    func superviseWorkers() {
        pool.supervise()
    }

    /// Starts or retires workers until `count` run, waiting for new ones to load.
    /// Workers that failed to load are dropped and replaced by new ones.
    /// - Throws: `ModelServerError.modelFailure` if a new worker could not load its module.
    func scale(to count: Int) async throws {
        try await pool.scale(to: count)
    }

    /// Takes no more workers, lets the workers answer what is queued or running (up to
    /// `timeout`), then stops them and answers what is left with 503.
    func drainAndShutdown(timeout: Duration) async {
        await pool.drain(timeout: timeout)
        shutdown()
    }

    /// Stops every worker and answers what is still queued with 503.
    func shutdown() {
        pool.shutdown()
        for job in queue.close() {
            metrics.dropped(.shutdown)
            job.finish(.failure(.unavailable("Model \(name) version \(version) was unregistered or the server stopped")))
        }
    }
}

func milliseconds(_ duration: Duration) -> Int {
    Int(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
}
