import Foundation
import Logging
import ModelArchive
import Torch

/// One registered version of a model: its archive, handler, settings, queue and workers.
///
/// The workers of a version on one device share one loaded module, so N workers cost one copy
/// of the weights plus their activations.
final class ModelVersion: @unchecked Sendable {
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

    private let lock = NSLock()
    private var _settings: ModelSettings
    private var workers: [Worker] = []
    private var modules: [ModuleKey: ScriptModule] = [:]
    /// Serialises module loading so the first worker on a device loads and the others reuse.
    private let loadLock = NSLock()
    private let placement: DevicePlacement
    private let allocateWorkerID: @Sendable () -> Int
    /// The first wait before replacing a failed worker; later waits grow (1, 1, 2, 3, 5, 8… times it).
    private let restartDelay: Duration
    /// Failed workers are replaced once the version is registered (not while a synchronous
    /// registration could still roll it back).
    private var supervising = false
    /// Unregistered or being drained: no more workers are started.
    private var retiring = false
    private var consecutiveLoadFailures = 0
    private var replacementScheduled = false
    private var _loadTimings: LoadTimings?

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
        self._settings = settings
        self.queue = BatchQueue(capacity: queueCapacity)
        self.placement = placement
        self.allocateWorkerID = allocateWorkerID
        self.restartDelay = restartDelay
        var logger = logger
        logger[metadataKey: "model"] = "\(name)/\(version)"
        self.logger = logger
    }

    var settings: ModelSettings {
        lock.lock()
        defer { lock.unlock() }
        return _settings
    }

    func updateSettings(_ change: (inout ModelSettings) -> Void) {
        lock.lock()
        change(&_settings)
        lock.unlock()
    }

    var workerInfos: [WorkerInfo] {
        lock.lock()
        defer { lock.unlock() }
        return workers.map(\.info)
    }

    var readyWorkerCount: Int {
        workerInfos.filter { $0.status == .ready }.count
    }

    /// Bytes of the weights of one loaded module (shared by the workers of a device).
    var weightBytes: Int {
        lock.lock()
        defer { lock.unlock() }
        return modules.values.first?.weightBytes ?? 0
    }

    /// Weight bytes held on each device.
    var weightBytesByDevice: [Device: Int] {
        lock.lock()
        defer { lock.unlock() }
        return modules.reduce(into: [:]) { $0[$1.key.device, default: 0] += $1.value.weightBytes }
    }

    /// How long the first module took to load and warm up, and the first request after it.
    var loadTimings: LoadTimings? {
        lock.lock()
        defer { lock.unlock() }
        return _loadTimings
    }

    /// Records the latency of the first request answered after loading.
    private func recordFirstRequest(_ latency: Duration) {
        lock.lock()
        defer { lock.unlock() }
        guard _loadTimings?.firstRequestMilliseconds == nil else { return }
        _loadTimings?.firstRequestMilliseconds = Double(nanoseconds(latency)) / 1e6
        if let timings = _loadTimings {
            logger.info("first request answered in \(timings.firstRequestMilliseconds ?? 0) ms (load \(timings.loadMilliseconds) ms, warm-up \(timings.warmUpMilliseconds) ms)")
        }
    }

    // MARK: Requests

    /// Whether the version was unregistered (or swapped out) and is finishing its queue.
    var isRetiring: Bool {
        lock.lock()
        defer { lock.unlock() }
        return retiring
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
        return try await withCheckedThrowingContinuation { continuation in
            let job = InferenceJob(request: request, arrivedAt: arrived, deadline: deadline, metrics: metrics, continuation: continuation)
            do throws(ModelServerError) {
                try queue.enqueue(job, model: name)
                job.armDeadline(model: name)
            } catch {
                if case .queueFull = error { metrics.dropped(.queueFull) }
                job.finish(.failure(error))
            }
        }
    }

    // MARK: Workers

    /// From now on a worker that fails to load is replaced, after a growing wait.
    func superviseWorkers() {
        lock.lock()
        supervising = true
        lock.unlock()
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
            let outcome: Result<Void, ModelServerError> = await withCheckedContinuation { continuation in
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
            if case .failure(let error) = outcome { failures.append(error.description) }
        }
        if let first = failures.first {
            throw ModelServerError.modelFailure("\(failures.count) of \(started.count) workers of \(name) failed to load: \(first)")
        }
    }

    /// Retires the newest workers beyond `count`, or creates (unstarted) workers up to it.
    /// Retired workers finish their current batch; queued jobs stay queued for the others.
    private func adjustWorkers(to count: Int, devices: [Device]) -> [Worker] {
        lock.lock()
        defer { lock.unlock() }
        if retiring { return [] }
        workers.removeAll { $0.status == .failed }
        let live = workers.filter { !$0.isRetired }
        if live.count > count {
            for worker in live.suffix(live.count - count) { worker.retire() }
            workers.removeAll { $0.isRetired }
            return []
        }
        let started = (live.count..<count).map { Worker(id: allocateWorkerID(), device: devices[$0]) }
        workers += started
        return started
    }

    /// After a worker failed to load: waits (longer after each failure in a row), then starts
    /// workers again up to `minWorkers`. One replacement is pending at a time.
    private func scheduleReplacement() {
        lock.lock()
        guard supervising, !retiring, !replacementScheduled else {
            lock.unlock()
            return
        }
        replacementScheduled = true
        consecutiveLoadFailures += 1
        let delay = restartDelay * Self.backoffFactor(attempt: consecutiveLoadFailures)
        lock.unlock()
        logger.warning("replacing the failed worker in \(delay) (failure \(consecutiveLoadFailures) in a row)")
        Task { [self] in
            try? await Task.sleep(for: delay)
            let stop = lock.withLock {
                replacementScheduled = false
                return retiring
            }
            guard !stop else { return }
            do {
                try await scale(to: settings.minWorkers)
            } catch {
                logger.error("replacement worker failed: \(error)")
            }
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

    /// Takes no more workers, lets the workers answer what is queued or running (up to
    /// `timeout`), then stops them and answers what is left with 503.
    func drainAndShutdown(timeout: Duration) async {
        lock.withLock { retiring = true }
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while !queue.isIdle && readyWorkerCount > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        shutdown()
    }

    /// Stops every worker and answers what is still queued with 503.
    func shutdown() {
        lock.lock()
        retiring = true
        for worker in workers { worker.retire() }
        workers.removeAll()
        lock.unlock()
        for job in queue.close() {
            metrics.dropped(.shutdown)
            job.finish(.failure(.unavailable("Model \(name) version \(version) was unregistered or the server stopped")))
        }
    }

    /// The worker thread: load (or reuse) the module, report, then run batches until retired.
    private func run(_ worker: Worker, settings: ModelSettings, loaded: (Result<Void, ModelServerError>) -> Void) {
        let module: ScriptModule
        let key = ModuleKey(worker, sharing: settings.shareModule)
        // A worker's own module (shareModule: false) goes with it.
        defer { if key.worker != nil { lock.withLock { _ = modules.removeValue(forKey: key) } } }
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
        lock.lock()
        consecutiveLoadFailures = 0
        lock.unlock()
        logger.info("worker \(worker.id) ready on \(worker.device)")
        loaded(.success(()))

        let delay = Duration.milliseconds(settings.maxBatchDelay)
        while let batch = queue.takeBatch(maxSize: settings.batchSize, maxDelay: delay, shouldStop: { worker.isRetired }) {
            process(batch, on: module, by: worker)
            queue.done(batch.count)
        }
        logger.info("worker \(worker.id) stopped")
    }

    /// Preprocesses each job, runs one forward per group of stackable inputs, answers each job.
    func process(_ batch: [InferenceJob], on module: ScriptModule, by worker: Worker? = nil) {
        // Jobs that stack share a group, in arrival order; a job that runs alone is a group of one.
        var groups: [[(InferenceJob, PreparedInput)]] = []
        var groupOfKey: [[[Int]]: Int] = [:]
        let now = ContinuousClock.now
        let stages = StageClock(metrics: metrics)
        metrics.batchSize.record(batch.count)
        for job in batch where !job.isFinished {
            let waited = now - job.enqueuedAt
            metrics.record(.queue, waited)
            metrics.queueLatency.increment(by: Int64(nanoseconds(waited) / 1000))
            if job.deadline <= now {
                metrics.dropped(.deadline)
                job.finish(.failure(.deadlineExceeded(model: name, timeoutMilliseconds: milliseconds(job.deadline - job.enqueuedAt))))
                continue
            }
            if let connection = job.request.connection, !connection.isOpen {
                metrics.dropped(.disconnected)
                job.finish(.failure(.clientDisconnected(model: name)))
                continue
            }
            do {
                stages.beginStep()
                let prepared = try handler.preprocess(job.request, stages: stages)
                stages.endStep(whole: .preprocess, rest: .preprocess)
                if let key = prepared.stackingKey, let index = groupOfKey[key] {
                    groups[index].append((job, prepared))
                } else {
                    if let key = prepared.stackingKey { groupOfKey[key] = groups.count }
                    groups.append([(job, prepared)])
                }
            } catch ModelServerError.deadlineExceeded {
                // The handler gave up decoding at the deadline, so the worker is free for the next request.
                if job.finish(.failure(.deadlineExceeded(model: name, timeoutMilliseconds: milliseconds(job.deadline - job.enqueuedAt)))) {
                    metrics.dropped(.deadline)
                }
            } catch {
                job.finish(.failure(error))
            }
        }
        for group in groups { run(group, on: module, by: worker) }
    }

    private func run(_ group: [(InferenceJob, PreparedInput)], on module: ScriptModule, by worker: Worker?) {
        let output: ModuleOutput
        let totalRows = group.reduce(0) { $0 + $1.1.rows }
        do {
            let inputCount = group[0].1.tensors.count
            var inputs: [Tensor] = []
            for position in 0..<inputCount {
                let parts = group.map { $0.1.tensors[position] }
                let joined = parts.count == 1 ? parts[0] : try Tensor.concatenate(parts, dim: 0)
                inputs.append(try joined.to(module.device))
            }
            let started = ContinuousClock.now
            output = try Self.forward(inputs, on: module)
            metrics.record(.forward, .now - started)
        } catch {
            let message = error.summary
            // Tensors a client chose (KServe v2 numeric inputs) that the model rejects are the client's to fix: 400.
            if group.allSatisfy({ if case .forward = $0.0.request.mode { true } else { false } }) {
                logger.info("forward refused the client's tensors: \(message)")
                for (job, _) in group {
                    job.finish(.failure(.invalidInput(
                        "Model \(name) rejected the input tensors: \(message). Check their shapes and datatypes against GET /v2/models/\(name)")))
                }
                return
            }
            logger.error("forward failed: \(error)")
            worker?.recordFailure("forward failed: \(message)", loading: false)
            for (job, _) in group { job.finish(.failure(.modelFailure("Model \(name) failed: \(message)"))) }
            return
        }
        var row = 0
        let stages = StageClock(metrics: metrics)
        for (job, prepared) in group {
            do {
                stages.beginStep()
                let slice = group.count == 1 ? output : try output.rows(row, count: prepared.rows, batch: totalRows)
                let response = try handler.postprocess(slice, for: prepared, stages: stages)
                stages.endStep(whole: .postprocess, rest: .encode)
                job.finish(.success(response))
                if loadTimings?.firstRequestMilliseconds == nil { recordFirstRequest(.now - job.enqueuedAt) }
            } catch let error as ModelServerError {
                job.finish(.failure(error))
            } catch {
                job.finish(.failure(.modelFailure("splitting the batch output failed: \(error)")))
            }
            row += prepared.rows
        }
    }

    /// Runs `module` on float32 inputs: a module converted to a lower precision gets its
    /// floating-point inputs in that type and gives float32 back, so handlers see no difference.
    static func forward(_ inputs: [Tensor], on module: ScriptModule) throws(TorchError) -> ModuleOutput {
        let floatType = module.floatType
        guard floatType != .float32 else { return try module.forward(inputs) }
        var converted: [Tensor] = []
        for input in inputs {
            converted.append(input.dtype.isFloatingPoint && input.dtype != floatType ? try input.converted(to: floatType) : input)
        }
        return try module.forward(converted).mapTensors { (tensor) throws(TorchError) -> Tensor in
            tensor.dtype == floatType ? try tensor.converted(to: .float32) : tensor
        }
    }

    // MARK: Loading

    /// Which loaded module a worker uses: one per device when workers share, else its own.
    struct ModuleKey: Hashable {
        var device: Device
        var worker: Int?

        init(_ worker: Worker, sharing: Bool) {
            device = worker.device
            self.worker = sharing ? nil : worker.id
        }
    }

    /// The module for `key`, loaded once and shared by the workers with that key.
    private func module(for key: ModuleKey, settings: ModelSettings) throws -> ScriptModule {
        loadLock.lock()
        defer { loadLock.unlock() }
        lock.lock()
        let existing = modules[key]
        lock.unlock()
        if let existing { return existing }

        let chosen = try Self.atLowPriority(intraOpThreads: settings.intraOpThreads) { [self] in
            try load(on: key.device, settings: settings)
        }
        lock.lock()
        modules[key] = chosen
        lock.unlock()
        return chosen
    }

    /// Runs `body` on a thread of its own at a lower CPU priority (nice +10) and waits for it.
    /// Loading, optimising and warming up a model then yields the cores to the workers already
    /// serving (a swap or scale-up under load) and runs at full speed on an idle machine. A
    /// thread cannot raise its priority again without privileges, hence a thread per load.
    private static func atLowPriority<T: Sendable>(intraOpThreads: Int, _ body: @escaping @Sendable () throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        let box = LoadResultBox<T>()
        let thread = Thread {
            // On Linux the nice value is per thread, and `who` 0 is the calling thread.
            _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
            box.result = Result {
                try TorchRuntime.setIntraOpThreads(intraOpThreads)
                return try body()
            }
            done.signal()
        }
        thread.name = "model-loader"
        thread.stackSize = 8 << 20
        thread.start()
        done.wait()
        guard let result = box.result else { throw ModelServerError.modelFailure("the loading thread returned nothing") }
        return try result.get()
    }

    /// Loads the archive's module onto `device`, converts or optimises it as `settings` say
    /// (checked on a synthetic input), warms it up and records the times.
    private func load(on device: Device, settings: ModelSettings) throws -> ScriptModule {
        let started = ContinuousClock.now
        let plain = try ScriptModule(contentsOf: archive.serializedFile, device: device)
        var chosen = plain
        let example = try handler.exampleInputs(batchSize: 1).map { try $0.to(device) }
        let reference = try plain.forward(example)
        if settings.precision != .float32 {
            // Measured: optimize_for_inference makes a bfloat16 U-Net slower, not faster; not combined.
            chosen = converted(plain, to: settings.precision, example: example, reference: reference) ?? plain
        }
        if settings.optimize && chosen === plain {
            chosen = optimized(plain, example: example, reference: reference) ?? plain
        }
        let loaded = ContinuousClock.now
        // Warm-up: the first calls of each batch size pay libtorch's profiling and fusion passes.
        for batchSize in Set([1, settings.batchSize]) {
            let inputs = try handler.exampleInputs(batchSize: batchSize).map { try $0.to(device) }
            for _ in 0..<2 { _ = try Self.forward(inputs, on: chosen) }
        }
        let timings = LoadTimings(loadMilliseconds: milliseconds(loaded - started), warmUpMilliseconds: milliseconds(.now - loaded))
        let form = chosen === plain ? "" : chosen.floatType != .float32 ? " (\(chosen.floatType), checked)" : " (optimised and checked)"
        logger.info("loaded \(archive.serializedFile.lastPathComponent) on \(device) in \(timings.loadMilliseconds) ms\(form), warmed up in \(timings.warmUpMilliseconds) ms; \(chosen.weightBytes) bytes of weights")
        lock.withLock {
            if _loadTimings == nil { _loadTimings = timings }
        }
        return chosen
    }

    /// The module converted to `precision` if its output on `example` stays within 2 % of the
    /// float32 output's largest magnitude, and its argmax over dimension 1 (classes) agrees on at
    /// least 99 %; else nil, with a log line saying why.
    private func converted(_ plain: ScriptModule, to precision: ModelConfig.Precision, example: [Tensor],
                           reference: ModuleOutput) -> ScriptModule? {
        let type: DType = precision == .bfloat16 ? .bfloat16 : .float16
        do {
            let candidate = try plain.converted(to: type)
            guard let expected = reference.firstTensor, let got = try Self.forward(example, on: candidate).firstTensor else {
                logger.warning("keeping float32: the model returns no tensor to compare")
                return nil
            }
            let scale = Double(try expected.converted(to: .float32).contiguousOnCPU().toArray(of: Float.self).map(abs).max() ?? 0)
            let difference = try got.maxAbsDifference(expected)
            let relative = scale > 0 ? difference / scale : difference
            var agreement = 1.0
            if expected.shape.count >= 2 {
                let expectedClasses = try expected.argmax(dim: 1).contiguousOnCPU().toArray(of: Int64.self)
                let gotClasses = try got.argmax(dim: 1).contiguousOnCPU().toArray(of: Int64.self)
                let same = zip(expectedClasses, gotClasses).filter { $0 == $1 }.count
                agreement = Double(same) / Double(max(1, expectedClasses.count))
            }
            guard relative <= 0.02, agreement >= 0.99 else {
                logger.warning("keeping float32: \(precision) differs by \(relative * 100) % of the output's range and agrees on \(agreement * 100) % of the argmax on a test input")
                return nil
            }
            logger.info("\(precision): differs by \(relative * 100) % of the output's range, argmax agrees on \(agreement * 100) % on a test input")
            return candidate
        } catch {
            logger.warning("keeping float32: converting to \(precision) failed: \(error)")
            return nil
        }
    }

    /// The frozen, optimised module if it gives the plain module's output on `example`; else nil.
    private func optimized(_ plain: ScriptModule, example: [Tensor], reference: ModuleOutput) -> ScriptModule? {
        let tolerance = 1e-3
        do {
            let candidate = try plain.optimized()
            guard let expected = reference.firstTensor, let got = try candidate.forward(example).firstTensor else {
                logger.warning("not optimising: the model returns no tensor to compare")
                return nil
            }
            let difference = try got.maxAbsDifference(expected)
            guard difference <= tolerance else {
                logger.warning("not optimising: the optimised module differs by \(difference) (> \(tolerance)) on a test input")
                return nil
            }
            return candidate
        } catch {
            logger.warning("not optimising: \(error)")
            return nil
        }
    }
}

/// The time a version's first module took to load (including optimising and checking it) and
/// to warm up, and the latency of the first request answered after it.
public struct LoadTimings: Sendable, Equatable {
    public var loadMilliseconds: Int
    public var warmUpMilliseconds: Int
    public var firstRequestMilliseconds: Double?
}

/// The outcome of a load on its own thread, read by the waiting worker after a semaphore.
private final class LoadResultBox<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var _result: Result<T, any Error>?

    var result: Result<T, any Error>? {
        get { lock.withLock { _result } }
        set { lock.withLock { _result = newValue } }
    }
}

/// Resumes a worker's load continuation once: with the worker's outcome, or at the startup timeout.
private final class LoadReport: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<Result<Void, ModelServerError>, Never>?
    private var _timer: Task<Void, Never>?

    init(_ continuation: CheckedContinuation<Result<Void, ModelServerError>, Never>) {
        self.continuation = continuation
    }

    /// The startup-timeout task, cancelled once the load reports.
    var timer: Task<Void, Never>? {
        get { lock.withLock { _timer } }
        set {
            let finished = lock.withLock {
                _timer = newValue
                return continuation == nil
            }
            if finished { newValue?.cancel() }
        }
    }

    func resume(_ outcome: Result<Void, ModelServerError>) {
        let (pending, timer) = lock.withLock {
            defer { continuation = nil }
            return (continuation, _timer)
        }
        guard let pending else { return }
        timer?.cancel()
        pending.resume(returning: outcome)
    }
}

func milliseconds(_ duration: Duration) -> Int {
    Int(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
}
