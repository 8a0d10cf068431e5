import Foundation
import Logging
import Synchronization
import Torch

/// The workers of one model version, after TorchServe's WorkLoadManager and WorkerThread.
///
/// It starts workers up to a count (worker k on the device the placement gives k) and retires
/// the newest beyond it; gives the workers of a device one shared module, or each its own
/// (`shareModule: false`); gives up a load past `startupTimeout`; replaces a worker that failed
/// to load after a growing wait; drains and stops them. Each worker's thread loads its module,
/// then runs batches from the queue through the executor until it is retired.
final class WorkerPool: Sendable {
    /// The model's name, as thread names and errors show it.
    let name: String
    let queue: BatchQueue
    let loader: ModuleLoader
    let executor: BatchExecutor
    let logger: Logger
    private let placement: DevicePlacement
    private let allocateWorkerID: @Sendable () -> Int
    /// The first wait before replacing a failed worker; later waits grow (1, 1, 2, 3, 5, 8… times it).
    private let restartDelay: Duration
    private let state: Mutex<State>
    /// Serialises module loading so the first worker on a device loads and the others reuse.
    private let loading = Mutex(())

    private struct State {
        var settings: ModelSettings
        var workers: [Worker] = []
        var modules: [ModuleKey: any InferenceModule] = [:]
        /// Failed workers are replaced once the version is registered (not while a synchronous
        /// registration could still roll it back).
        var supervising = false
        /// Unregistered or being drained: no more workers are started.
        var retiring = false
        var consecutiveLoadFailures = 0
        var replacementScheduled = false
    }

    /// Which loaded module a worker uses: one per device when workers share, else its own.
    struct ModuleKey: Hashable {
        var device: Device
        var worker: Int?

        init(_ worker: Worker, sharing: Bool) {
            device = worker.device
            self.worker = sharing ? nil : worker.id
        }
    }

    init(name: String, settings: ModelSettings, queue: BatchQueue, loader: ModuleLoader, executor: BatchExecutor,
         placement: DevicePlacement, allocateWorkerID: @escaping @Sendable () -> Int, restartDelay: Duration, logger: Logger) {
        self.name = name
        self.state = Mutex(State(settings: settings))
        self.queue = queue
        self.loader = loader
        self.executor = executor
        self.placement = placement
        self.allocateWorkerID = allocateWorkerID
        self.restartDelay = restartDelay
        self.logger = logger
    }

    /// The settings workers start with (a running worker keeps those it started with).
    var settings: ModelSettings {
        state.withLock { $0.settings }
    }

    func updateSettings(_ change: (inout ModelSettings) -> Void) {
        state.withLock { change(&$0.settings) }
    }

    var workerInfos: [WorkerInfo] {
        state.withLock { $0.workers.map(\.info) }
    }

    var readyWorkerCount: Int {
        workerInfos.filter { $0.status == .ready }.count
    }

    /// Bytes of the weights of one loaded module (shared by the workers of a device).
    var weightBytes: Int {
        state.withLock { $0.modules.values.first?.weightBytes ?? 0 }
    }

    /// Weight bytes held on each device.
    var weightBytesByDevice: [Device: Int] {
        state.withLock { $0.modules.reduce(into: [:]) { $0[$1.key.device, default: 0] += $1.value.weightBytes } }
    }

    /// Whether the pool was drained or shut down, so it starts no more workers.
    var isRetiring: Bool {
        state.withLock { $0.retiring }
    }

    /// From now on a worker that fails to load is replaced, after a growing wait.
    func supervise() {
        state.withLock { $0.supervising = true }
    }

    /// Starts or retires workers until `count` run, waiting for new ones to load.
    /// Workers that failed to load are dropped and replaced by new ones.
    /// - Throws: `ModelServerError.modelFailure` if a new worker could not load its module.
    func scale(to count: Int) async throws {
        let settings = self.settings
        // Worker k's device depends only on k, so the devices of any count are known up front.
        let devices = try (0..<count).map {
            try placement.device(forWorker: $0, forceCPU: settings.forceCPU, deviceIds: settings.deviceIds)
        }
        let started = adjustWorkers(to: count, devices: devices)
        queue.wakeAll()

        var failures: [String] = []
        for worker in started {
            if case .failure(let error) = await start(worker, settings: settings) { failures.append(error.description) }
        }
        if let first = failures.first {
            throw ModelServerError.modelFailure("\(failures.count) of \(started.count) workers of \(name) failed to load: \(first)")
        }
    }

    /// Starts no more workers, and waits (up to `timeout`) until the queue is answered or no
    /// worker is left to answer it.
    func drain(timeout: Duration) async {
        state.withLock { $0.retiring = true }
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while !queue.isIdle && readyWorkerCount > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Retires every worker (each finishes its current batch) and starts no more.
    func shutdown() {
        state.withLock { state in
            state.retiring = true
            for worker in state.workers { worker.retire() }
            state.workers.removeAll()
        }
    }

    /// 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, then 60 for every later attempt (TorchServe's sequence, capped).
    static func backoffFactor(attempt: Int) -> Int {
        var (previous, current) = (0, 1)
        for _ in 1..<max(1, attempt) {
            (previous, current) = (current, previous + current)
            if current >= 60 { return 60 }
        }
        return current
    }

    /// Retires the newest workers beyond `count`, or creates (unstarted) workers up to it.
    /// Retired workers finish their current batch; queued jobs stay queued for the others.
    private func adjustWorkers(to count: Int, devices: [Device]) -> [Worker] {
        state.withLock { state in
            if state.retiring { return [] }
            state.workers.removeAll { $0.status == .failed }
            let live = state.workers.filter { !$0.isRetired }
            if live.count > count {
                for worker in live.suffix(live.count - count) { worker.retire() }
                state.workers.removeAll { $0.isRetired }
                return []
            }
            let started = (live.count..<count).map { Worker(id: allocateWorkerID(), device: devices[$0]) }
            state.workers += started
            return started
        }
    }

    /// Starts `worker`'s thread and waits until it has loaded, failed to, or passed `startupTimeout`.
    private func start(_ worker: Worker, settings: ModelSettings) async -> Result<Void, ModelServerError> {
        await withCheckedContinuation { continuation in
            let report = LoadReport(continuation)
            worker.start(name: "worker-\(worker.id)-\(name)") { [self] in
                run(worker, settings: settings) { report.resume($0) }
            }
            // startupTimeout bounds the load; a load still running then is abandoned (its
            // thread leaves once libtorch returns) and the worker replaced like a failed one.
            report.timer = Task { [self] in
                try? await Task.sleep(for: .seconds(settings.startupTimeout))
                guard !Task.isCancelled else { return }
                let message = "load did not finish within startupTimeout (\(settings.startupTimeout) s)"
                if worker.abandonLoad(message) {
                    logger.error("worker \(worker.id): \(message)")
                    report.resume(.failure(.modelFailure(message)))
                    scheduleReplacement()
                }
            }
        }
    }

    /// After a worker failed to load: waits (longer after each failure in a row), then starts
    /// workers again up to `minWorkers`. One replacement is pending at a time.
    private func scheduleReplacement() {
        let scheduled: (delay: Duration, failures: Int)? = state.withLock { state in
            guard state.supervising, !state.retiring, !state.replacementScheduled else { return nil }
            state.replacementScheduled = true
            state.consecutiveLoadFailures += 1
            return (restartDelay * Self.backoffFactor(attempt: state.consecutiveLoadFailures), state.consecutiveLoadFailures)
        }
        guard let (delay, failures) = scheduled else { return }
        logger.warning("replacing the failed worker in \(delay) (failure \(failures) in a row)")
        Task { [self] in
            try? await Task.sleep(for: delay)
            let stop = state.withLock { state in
                state.replacementScheduled = false
                return state.retiring
            }
            guard !stop else { return }
            do {
                try await scale(to: settings.minWorkers)
            } catch {
                logger.error("replacement worker failed: \(error)")
            }
        }
    }

    /// The worker thread: load (or reuse) the module, report, then run batches until retired.
    private func run(_ worker: Worker, settings: ModelSettings, loaded: (Result<Void, ModelServerError>) -> Void) {
        let module: any InferenceModule
        let key = ModuleKey(worker, sharing: settings.shareModule)
        // A worker's own module (shareModule: false) goes with it.
        defer { if key.worker != nil { state.withLock { _ = $0.modules.removeValue(forKey: key) } } }
        do {
            try TorchRuntime.setIntraOpThreads(settings.intraOpThreads)
            module = try self.module(for: key, settings: settings)
        } catch {
            worker.recordFailure("load failed: \(String(describing: error).prefix { $0 != "\n" })", loading: true)
            logger.error("worker \(worker.id) failed to load: \(error)")
            loaded(.failure(.modelFailure("\(error)")))
            scheduleReplacement()
            return
        }
        guard worker.becomeReady() else {
            logger.warning("worker \(worker.id) finished loading after it was given up or retired; it leaves")
            return
        }
        state.withLock { $0.consecutiveLoadFailures = 0 }
        logger.info("worker \(worker.id) ready on \(worker.device)")
        loaded(.success(()))

        let delay = Duration.milliseconds(settings.maxBatchDelay)
        while let batch = queue.takeBatch(maxSize: settings.batchSize, maxDelay: delay, shouldStop: { worker.isRetired }) {
            executor.process(batch, on: module, by: worker)
            queue.done(batch.count)
        }
        logger.info("worker \(worker.id) stopped")
    }

    /// The module for `key`, loaded once and shared by the workers with that key.
    private func module(for key: ModuleKey, settings: ModelSettings) throws -> any InferenceModule {
        try loading.withLock { _ in
            if let existing = state.withLock({ $0.modules[key] }) { return existing }
            let chosen = try loader.loadAtLowPriority(on: key.device, settings: settings).module
            state.withLock { $0.modules[key] = chosen }
            return chosen
        }
    }
}

/// Resumes a worker's load continuation once: with the worker's outcome, or at the startup timeout.
private final class LoadReport: Sendable {
    private let state: Mutex<State>

    private struct State {
        var continuation: CheckedContinuation<Result<Void, ModelServerError>, Never>?
        var timer: Task<Void, Never>?
    }

    init(_ continuation: CheckedContinuation<Result<Void, ModelServerError>, Never>) {
        state = Mutex(State(continuation: continuation))
    }

    /// The startup-timeout task, cancelled once the load reports.
    var timer: Task<Void, Never>? {
        get { state.withLock { $0.timer } }
        set {
            let finished = state.withLock {
                $0.timer = newValue
                return $0.continuation == nil
            }
            if finished { newValue?.cancel() }
        }
    }

    func resume(_ outcome: Result<Void, ModelServerError>) {
        let (pending, timer) = state.withLock { state in
            defer { state.continuation = nil }
            return (state.continuation, state.timer)
        }
        guard let pending else { return }
        timer?.cancel()
        pending.resume(returning: outcome)
    }
}
