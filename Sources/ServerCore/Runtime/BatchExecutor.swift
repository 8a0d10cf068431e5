import Logging
import Torch
import Tracing

/// Runs one batch of a model version's jobs on a loaded module and answers every job, after
/// TorchServe's BatchAggregator: drops jobs past their deadline or whose client has gone,
/// preprocesses the rest, joins the inputs of jobs that stack, runs one forward per group, splits
/// the output by rows and postprocesses each job's share. A job fails alone where it can: its
/// preprocessing or postprocessing, or a forward on a group of its own.
struct BatchExecutor: Sendable {
    /// The model's name, as errors show it.
    let name: String
    /// The model and version its spans name.
    let model: ModelIdentity
    let handler: any Handler
    let metrics: ModelMetrics
    let logger: Logger
    /// Called with the time from arrival to answer of each job answered with a response.
    let answered: @Sendable (Duration) -> Void

    init(name: String, version: String = "", handler: any Handler, metrics: ModelMetrics, logger: Logger,
         answered: @escaping @Sendable (Duration) -> Void = { _ in }) {
        self.name = name
        model = ModelIdentity(name: name, version: version)
        self.handler = handler
        self.metrics = metrics
        self.logger = logger
        self.answered = answered
    }

    /// Prepares each job (as its mode asks), runs one forward per group of stackable inputs, answers each job.
    /// - Parameter worker: records a failed forward pass, when the batch runs on a worker.
    func process(_ batch: [InferenceJob], on module: any InferenceModule, by worker: Worker? = nil) {
        // Jobs that stack share a group, in arrival order; a job that runs alone is a group of one.
        var groups: [[(InferenceJob, PreparedInput)]] = []
        var groupOfKey: [[[Int]]: Int] = [:]
        let now = ContinuousClock.now
        let stages = StageClock(metrics: metrics, model: model)
        metrics.batchSize.record(batch.count)
        for job in batch where !job.isFinished {
            let waited = now - job.enqueuedAt
            metrics.record(.queue, waited)
            job.trace?.record(.queue, from: job.enqueuedAt, to: now, model: model)
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
                stages.trace = job.trace
                stages.beginStep()
                let prepared = try handler.prepare(job.request, stages: stages)
                stages.endStep(whole: .preprocess, rest: .preprocess)
                // An image-list model takes every image of a batch in one list, whatever its size.
                let key = handler.inputForm == .imageList ? [[-1]] : prepared.stackingKey
                if let key, let index = groupOfKey[key] {
                    groups[index].append((job, prepared))
                } else {
                    if let key { groupOfKey[key] = groups.count }
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

    /// One forward on the joined inputs of `group`, then each job's rows postprocessed and answered.
    private func run(_ group: [(InferenceJob, PreparedInput)], on module: any InferenceModule, by worker: Worker?) {
        let output: ModuleOutput
        let totalRows = group.reduce(0) { $0 + $1.1.rows }
        var span: (any Span)?
        do {
            var inputs: [Tensor] = []
            switch handler.inputForm {
            case .batched:
                for position in 0..<group[0].1.tensors.count {
                    let parts = group.map { $0.1.tensors[position] }
                    let joined = parts.count == 1 ? parts[0] : try Tensor.concatenate(parts, dim: 0)
                    inputs.append(try joined.to(module.device))
                }
            case .imageList:
                for (_, prepared) in group {
                    for tensor in prepared.tensors { inputs.append(try tensor.to(module.device)) }
                }
            }
            let started = ContinuousClock.now
            span = forwardSpan(group.map(\.0), rows: totalRows, device: module.device.description)
            output = try Self.forward(inputs, form: handler.inputForm, on: module)
            span?.end()
            metrics.record(.forward, .now - started)
        } catch {
            span?.recordError(error)
            span?.setStatus(SpanStatus(code: .error))
            span?.end()
            let message = error.summary
            // Tensors the caller chose (`.forward` requests) that the model rejects are the caller's to fix: 400.
            if group.allSatisfy({ if case .forward = $0.0.request.mode { true } else { false } }) {
                logger.info("forward refused the client's tensors: \(message)")
                for (job, _) in group {
                    job.finish(.failure(.invalidInput(
                        "Model \(name) rejected the input tensors: \(message)")))
                }
                return
            }
            logger.error("forward failed: \(error)")
            worker?.recordFailure("forward failed: \(message)", loading: false)
            for (job, _) in group { job.finish(.failure(.modelFailure("Model \(name) failed: \(message)"))) }
            return
        }
        var row = 0
        let stages = StageClock(metrics: metrics, model: model)
        for (job, prepared) in group {
            do {
                stages.trace = job.trace
                stages.beginStep()
                let slice = group.count == 1 ? output
                    : handler.inputForm == .imageList ? output.images(row, count: prepared.rows, batch: totalRows)
                    : try output.rows(row, count: prepared.rows, batch: totalRows)
                let response = try handler.answer(slice, for: prepared, stages: stages)
                stages.endStep(whole: .postprocess, rest: .encode)
                job.finish(.success(response))
                answered(.now - job.enqueuedAt)
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
    /// An `.imageList` model gets the inputs as one list (and is never converted).
    static func forward(_ inputs: [Tensor], form: ModelInputForm = .batched, on module: any InferenceModule) throws(TorchError) -> ModuleOutput {
        if form == .imageList { return try module.forward(list: inputs) }
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
}
