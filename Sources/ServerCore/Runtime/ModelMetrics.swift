import Foundation
import Metrics
import Synchronization
import Torch

/// Metric names and buckets, TorchServe's where it has them (API.md, Metrics port).
public enum MetricName {
    public static let inferenceRequests = "ts_inference_requests_total"
    public static let inferenceLatency = "ts_inference_latency_microseconds"
    public static let queueLatency = "ts_queue_latency_microseconds"
    public static let inferenceResponses = "ts_inference_responses_total"
    public static let requestsDropped = "ts_requests_dropped_total"
    public static let imageFetches = "ts_image_fetches_total"
    public static let requestDuration = "ts_request_duration_seconds"
    public static let stageDuration = "ts_stage_duration_seconds"
    public static let batchSize = "ts_batch_size"
    public static let workers = "ts_workers"
    public static let queuePending = "ts_queue_pending"
    public static let deviceMemory = "ts_device_memory_bytes"
    public static let residentMemory = "process_resident_memory_bytes"

    /// Buckets of the request and stage duration histograms.
    public static let durationBuckets: [Duration] = [
        .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
        .milliseconds(2500), .seconds(5), .seconds(10),
    ]
    /// Buckets of the batch size histogram: 1, 2, 4 … 1024.
    public static let batchBuckets: [Double] = (0...10).map { Double(1 << $0) }
}

/// Why a request was answered without running.
enum DropReason: String, CaseIterable {
    case deadline, disconnected, queueFull = "queue_full", shutdown
}

/// The stages of a request whose durations are recorded, in the order a request passes them.
public enum Stage: String, CaseIterable, Sendable {
    /// Fetching the image a request names by URL (`{"url": …}`), before it is queued.
    case fetch
    /// Body bytes to the handler's input: image decoding, UTF-8 and JSON parsing.
    case decode
    /// Waiting in the model version's queue for a worker.
    case queue
    /// Decoded input to tensors: resize, normalise, tokenise.
    case preprocess
    /// The model's forward pass: one record per forward, that is per batch.
    case forward
    /// Model output to the answer: argmax, softmax, top-k, resizing a mask.
    case postprocess
    /// The answer to response bytes: base64 and JSON, PNG.
    case encode
}

/// Splits the time a handler spends on one request between stages: the worker begins a step
/// (`preprocess`, `postprocess`), the handler marks where a stage ends, the worker ends the step.
///
/// In `preprocess`, `mark(.decode)` after decoding leaves the rest to preprocessing; in
/// `postprocess`, `mark(.postprocess)` once the answer is computed leaves the rest to encoding.
/// A handler that marks nothing has the whole step counted as its main stage.
public final class StageClock {
    private var last: ContinuousClock.Instant
    private var marked = false
    private let metrics: ModelMetrics?
    /// The model the spans of a traced request name.
    private let model: ModelIdentity?
    /// The request whose step runs now, when it is traced: each stage marked becomes a span of it.
    var trace: RequestTrace?

    /// A clock that records nothing, for calling handlers outside a worker.
    public convenience init() {
        self.init(metrics: nil)
    }

    init(metrics: ModelMetrics?, model: ModelIdentity? = nil) {
        self.metrics = metrics
        self.model = model
        last = .now
    }

    /// Starts a step now.
    func beginStep() {
        last = .now
        marked = false
    }

    /// Ends a step: the time since the last mark goes to `rest` if the handler marked a stage
    /// during the step, else to `whole`.
    func endStep(whole: Stage, rest: Stage) {
        mark(marked ? rest : whole)
    }

    /// The time since the previous mark (or the step's start) was spent in `stage`.
    public func mark(_ stage: Stage) {
        let now = ContinuousClock.now
        metrics?.record(stage, now - last)
        if let trace, let model { trace.record(stage, from: last, to: now, model: model) }
        last = now
        marked = true
    }
}

/// The metric handles of one model version.
final class ModelMetrics: Sendable {
    let factory: any MetricsFactory
    let dimensions: [(String, String)]
    let requests: Counter
    let inferenceLatency: Counter
    let queueLatency: Counter
    let requestDuration: Metrics.Timer
    let batchSize: Recorder
    private let stages: [String: Metrics.Timer]
    /// Status codes counted in `ts_inference_responses_total`, so their series can be removed.
    private let responseCodes = Mutex<Set<Int>>([])

    init(model: String, version: String, hostname: String, factory: any MetricsFactory) {
        self.factory = factory
        dimensions = [("model_name", model), ("model_version", version)]
        let host = dimensions + [("hostname", hostname)]
        requests = Counter(label: MetricName.inferenceRequests, dimensions: host, factory: factory)
        inferenceLatency = Counter(label: MetricName.inferenceLatency, dimensions: host, factory: factory)
        queueLatency = Counter(label: MetricName.queueLatency, dimensions: host, factory: factory)
        requestDuration = Metrics.Timer(label: MetricName.requestDuration, dimensions: dimensions, factory: factory)
        batchSize = Recorder(label: MetricName.batchSize, dimensions: dimensions, aggregate: true, factory: factory)
        var stages: [String: Metrics.Timer] = [:]
        for stage in Stage.allCases {
            stages[stage.rawValue] = Metrics.Timer(
                label: MetricName.stageDuration, dimensions: dimensions + [("stage", stage.rawValue)], factory: factory)
        }
        self.stages = stages
        // Every reason's series exists from registration on, at 0, so a dashboard or an alert on
        // drops sees the series before the first drop.
        for reason in DropReason.allCases {
            _ = Counter(label: MetricName.requestsDropped, dimensions: dimensions + [("reason", reason.rawValue)], factory: factory)
        }
    }

    func record(_ stage: Stage, _ duration: Duration) {
        stages[stage.rawValue]?.recordNanoseconds(nanoseconds(duration))
    }

    /// A request was answered (either way) `total` after it arrived.
    func finished(total: Duration) {
        requests.increment()
        inferenceLatency.increment(by: Int64(nanoseconds(total) / 1000))
        requestDuration.recordNanoseconds(nanoseconds(total))
    }

    func dropped(_ reason: DropReason) {
        Counter(label: MetricName.requestsDropped, dimensions: dimensions + [("reason", reason.rawValue)], factory: factory).increment()
    }

    /// The results `ts_image_fetches_total` counts: `ok`, or why the fetch failed.
    static let fetchResults = ["ok"] + ImageFetchFailure.Reason.allCases.map(\.rawValue)

    /// An image named by URL was fetched (`nil`), or failed with `failure`.
    func fetched(_ failure: ImageFetchFailure.Reason?) {
        Counter(label: MetricName.imageFetches, dimensions: dimensions + [("result", failure?.rawValue ?? "ok")], factory: factory).increment()
    }

    /// A request to this version was answered with `code`.
    func response(code: Int) {
        responseCodes.withLock { _ = $0.insert(code) }
        Self.responses(dimensions, code: code, factory: factory).increment()
    }

    static func responses(_ dimensions: [(String, String)], code: Int, factory: any MetricsFactory) -> Counter {
        Counter(label: MetricName.inferenceResponses, dimensions: dimensions + [("code", String(code))], factory: factory)
    }

    /// Removes every series of this version from the registry, once it is unregistered: label
    /// values of versions that are gone must not pile up.
    func destroy() {
        for counter in [requests, inferenceLatency, queueLatency] { counter.destroy() }
        requestDuration.destroy()
        batchSize.destroy()
        for timer in stages.values { timer.destroy() }
        for reason in DropReason.allCases {
            Counter(label: MetricName.requestsDropped, dimensions: dimensions + [("reason", reason.rawValue)], factory: factory).destroy()
        }
        for result in Self.fetchResults {
            Counter(label: MetricName.imageFetches, dimensions: dimensions + [("result", result)], factory: factory).destroy()
        }
        for code in responseCodes.withLock({ $0 }) { Self.responses(dimensions, code: code, factory: factory).destroy() }
        for status in WorkerStatus.allCases {
            Gauge(label: MetricName.workers, dimensions: dimensions + [("status", status.rawValue)], factory: factory).destroy()
        }
        Gauge(label: MetricName.queuePending, dimensions: dimensions, factory: factory).destroy()
    }
}

func nanoseconds(_ duration: Duration) -> Int64 {
    duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
}

/// Resident set size of this process, from /proc/self/statm.
func residentMemoryBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}
