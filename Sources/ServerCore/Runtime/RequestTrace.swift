import Foundation
import Tracing

/// The trace one queued request belongs to: the tracer active where it was submitted and the
/// context of the caller's span (the HTTP or gRPC server span), so that the worker thread, which
/// has no task-local context, can start the request's child spans under it.
///
/// Nil for a request when no tracer is bootstrapped: then the worker builds no span and no attribute.
struct RequestTrace: Sendable {
    let tracer: any Tracer
    let context: ServiceContext

    /// The trace of the calling task, or nil when tracing is off (no tracer, or no context).
    static var current: RequestTrace? {
        let tracer = InstrumentationSystem.tracer
        guard !(tracer is NoOpTracer), let context = ServiceContext.current else { return nil }
        return RequestTrace(tracer: tracer, context: context)
    }

    /// Records a child span of the request that already ran from `start` to `end`, with the model's attributes.
    func record(_ stage: Stage, from start: ContinuousClock.Instant, to end: ContinuousClock.Instant, model: ModelIdentity) {
        let clock = TraceClock()
        let span = tracer.startSpan(stage.rawValue, context: context, ofKind: .internal, at: clock.instant(of: start))
        span.updateAttributes { model.describe(&$0) }
        span.end(at: clock.instant(of: end))
    }
}

/// The model a span belongs to, as its attributes name it.
struct ModelIdentity: Sendable {
    var name: String
    var version: String

    func describe(_ attributes: inout SpanAttributes) {
        attributes[SpanAttributeName.modelName] = name
        attributes[SpanAttributeName.modelVersion] = version
    }
}

/// The attribute names of the core's spans.
public enum SpanAttributeName {
    public static let modelName = "model.name"
    public static let modelVersion = "model.version"
    /// The number of requests a forward pass ran on.
    public static let batchSize = "model.batch_size"
    /// The rows of the joined input (a request may bring several: texts, a context's windows).
    public static let batchRows = "model.batch_rows"
    /// The device the forward pass ran on (`cpu`, `cuda:0`).
    public static let device = "model.device"
}

/// Turns instants of the monotonic clock, which the runtime measures stages with, into the wall
/// time spans carry: both clocks are read once, and an instant keeps its distance from that pair.
struct TraceClock {
    private let monotonic = ContinuousClock.now
    private let wall = DefaultTracerClock.now

    func instant(of instant: ContinuousClock.Instant) -> DefaultTracerClock.Instant {
        let offset = nanoseconds(instant - monotonic)
        let base = Int64(clamping: wall.nanosecondsSinceEpoch)
        let (sum, overflow) = base.addingReportingOverflow(offset)
        return DefaultTracerClock.Instant(nanosecondsSinceEpoch: UInt64(clamping: overflow ? base : sum))
    }
}

extension BatchExecutor {
    /// One span for the forward pass of a group of jobs: it belongs to no request's trace (it ran
    /// for several), and links to the span of each traced job in it.
    /// - Returns: nil when no job of the group is traced.
    func forwardSpan(_ jobs: [InferenceJob], rows: Int, device: String) -> (any Span)? {
        guard let tracer = jobs.lazy.compactMap(\.trace).first?.tracer else { return nil }
        let span = tracer.startSpan(Stage.forward.rawValue, context: .topLevel, ofKind: .internal)
        span.updateAttributes { attributes in
            model.describe(&attributes)
            attributes[SpanAttributeName.batchSize] = jobs.count
            attributes[SpanAttributeName.batchRows] = rows
            attributes[SpanAttributeName.device] = device
        }
        for trace in jobs.compactMap(\.trace) {
            span.addLink(SpanLink(context: trace.context, attributes: [:]))
        }
        return span
    }
}
