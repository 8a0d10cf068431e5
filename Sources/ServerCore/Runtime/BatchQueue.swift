import Foundation
import Synchronization

/// A request waiting for a worker, answered exactly once through its continuation.
final class InferenceJob: Sendable {
    let request: InferenceRequest
    let enqueuedAt: ContinuousClock.Instant
    let deadline: ContinuousClock.Instant
    let metrics: ModelMetrics
    /// The trace of the caller, when tracing is on: the worker records the request's stages in it.
    let trace: RequestTrace?
    private let pending: Mutex<Pending>

    /// The continuation until the job is answered, and the timer that answers it at its deadline.
    private struct Pending {
        var continuation: CheckedContinuation<InferenceResponse, any Error>?
        var deadlineTimer: Task<Void, Never>?
    }

    init(request: InferenceRequest, arrivedAt: ContinuousClock.Instant, deadline: ContinuousClock.Instant,
         metrics: ModelMetrics, trace: RequestTrace? = nil, continuation: CheckedContinuation<InferenceResponse, any Error>) {
        self.request = request
        self.trace = trace
        self.enqueuedAt = arrivedAt
        self.deadline = deadline
        self.metrics = metrics
        self.pending = Mutex(Pending(continuation: continuation))
    }

    /// Answers the request and records its latency; later calls do nothing.
    /// - Returns: whether this call answered it.
    @discardableResult
    func finish(_ result: Result<InferenceResponse, ModelServerError>) -> Bool {
        let (continuation, timer) = pending.withLock { state in
            defer { state = Pending() }
            return (state.continuation, state.deadlineTimer)
        }
        guard let continuation else { return false }
        timer?.cancel()
        metrics.finished(total: .now - enqueuedAt)
        continuation.resume(with: result.mapError { $0 as any Error })
        return true
    }

    /// Whether the request has been answered (by a worker, or by its deadline).
    var isFinished: Bool {
        pending.withLock { $0.continuation == nil }
    }

    /// Answers 504 at the deadline if nothing else answered first; a forward pass already
    /// running for it finishes, and its result is discarded.
    func armDeadline(model: String) {
        let timer = Task { [self] in
            try? await Task.sleep(until: deadline, clock: .continuous)
            guard !Task.isCancelled else { return }
            let timeout = milliseconds(deadline - enqueuedAt)
            if finish(.failure(.deadlineExceeded(model: model, timeoutMilliseconds: timeout))) {
                metrics.dropped(.deadline)
            }
        }
        let answered = pending.withLock { state in
            if state.continuation == nil { return true }
            state.deadlineTimer = timer
            return false
        }
        if answered { timer.cancel() }
    }
}

/// A model version's bounded queue and its batching loop's contract: a worker takes the first
/// queued job, then waits at most `maxDelay` for the batch to fill to `maxSize`.
///
/// Workers block on it in a condition variable (a wait with a time limit), which `Mutex` has not;
/// hence `NSCondition` and `@unchecked Sendable`.
final class BatchQueue: @unchecked Sendable {
    let capacity: Int
    private let condition = NSCondition()
    private var jobs: [InferenceJob] = []
    private var head = 0
    private var closed = false
    /// Jobs taken by workers and not yet reported done.
    private var active = 0

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// Jobs waiting for a worker.
    var pending: Int {
        condition.lock()
        defer { condition.unlock() }
        return jobs.count - head
    }

    /// Whether no job is queued and no taken batch is still being processed.
    var isIdle: Bool {
        condition.lock()
        defer { condition.unlock() }
        return jobs.count == head && active == 0
    }

    /// Reports that a batch from `takeBatch` has been answered.
    func done(_ count: Int) {
        condition.lock()
        active -= count
        condition.unlock()
    }

    /// Adds a job; refuses it when the queue is full or closed.
    func enqueue(_ job: InferenceJob, model: String) throws(ModelServerError) {
        condition.lock()
        defer { condition.unlock() }
        if closed { throw .unavailable("Model \(model) is being unregistered or the server is stopping") }
        if jobs.count - head >= capacity { throw .queueFull(model: model, capacity: capacity) }
        jobs.append(job)
        condition.signal()
    }

    /// Blocks until at least one job is queued, then collects up to `maxSize` jobs, waiting at most
    /// `maxDelay` for more after the first. Returns nil once `shouldStop()` holds (checked whenever
    /// the worker wakes) or the queue is closed and empty. The caller reports the batch `done`.
    func takeBatch(maxSize: Int, maxDelay: Duration, shouldStop: () -> Bool) -> [InferenceJob]? {
        condition.lock()
        defer { condition.unlock() }
        while jobs.count == head {
            if closed || shouldStop() { return nil }
            condition.wait()
        }
        if shouldStop() { return nil }
        var batch = [popFirst()]
        if maxSize > 1 && maxDelay > .zero {
            let limit = Date().addingTimeInterval(Double(maxDelay.components.seconds) + Double(maxDelay.components.attoseconds) * 1e-18)
            while batch.count < maxSize {
                if jobs.count > head {
                    batch.append(popFirst())
                } else if closed || !condition.wait(until: limit) {
                    break
                }
            }
        }
        while batch.count < maxSize && jobs.count > head { batch.append(popFirst()) }
        active += batch.count
        return batch
    }

    /// Wakes every waiting worker so it can notice it should stop.
    func wakeAll() {
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }

    /// Refuses new jobs and returns those still queued, for the caller to answer.
    func close() -> [InferenceJob] {
        condition.lock()
        defer { condition.unlock() }
        closed = true
        let left = Array(jobs[head...])
        jobs.removeAll()
        head = 0
        condition.broadcast()
        return left
    }

    private func popFirst() -> InferenceJob {
        let job = jobs[head]
        head += 1
        if head > 64 && head * 2 > jobs.count {
            jobs.removeFirst(head)
            head = 0
        }
        return job
    }
}
