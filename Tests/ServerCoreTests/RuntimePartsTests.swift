import Foundation
import ModelArchive
import Prometheus
@testable import ServerCore
import ServerHTTP
import ServerTestSupport
import Synchronization
import TestFixtures
import Testing
import Torch

/// The three parts under a model version, each alone: the module loader, the batch executor and
/// the worker pool, on the tiny U-Net fixture.
@Suite struct RuntimePartsTests {
    /// The fixture's archive (segmenter config, 96×128 input) and its handler as the server builds it.
    struct Fixture {
        let store: TestModelStore
        let archive: OpenedArchive
        let handler: any Handler

        init() throws {
            store = try TestModelStore()
            archive = try ArchiveReader.read(folder: store.root.appendingPathComponent("unet_tiny"))
            handler = try HandlerFactory.make(archive, pixelLimit: ServerConfiguration(modelStore: store.root, workDirectory: store.work).pixelLimit)
        }

        func metrics() -> ModelMetrics {
            ModelMetrics(model: "unet_tiny", version: "1.0", hostname: "test",
                         factory: HTTPServer.metricsFactory(registry: PrometheusCollectorRegistry()))
        }

        func loader(file: URL? = nil) -> ModuleLoader {
            ModuleLoader(file: file ?? archive.serializedFile, handler: handler, logger: quietLogger)
        }

        func executor(handler: (any Handler)? = nil, answered: @escaping @Sendable (Duration) -> Void = { _ in }) -> BatchExecutor {
            BatchExecutor(name: "unet_tiny", handler: handler ?? self.handler, metrics: metrics(), logger: quietLogger, answered: answered)
        }

        func pool(loader: ModuleLoader, settings: ModelSettings = ModelSettings(), restartDelay: Duration = .milliseconds(50)) -> WorkerPool {
            let ids = Counter()
            return WorkerPool(name: "unet_tiny", settings: settings, queue: BatchQueue(capacity: 16), loader: loader, executor: executor(),
                              placement: DevicePlacement(visibleGPUs: 0), allocateWorkerID: { ids.next() },
                              restartDelay: restartDelay, logger: quietLogger)
        }
    }

    // MARK: ModuleLoader

    @Test func theLoaderReadsWarmsUpAndTimesTheModuleAndKeepsTheFirstTimings() async throws {
        let fixture = try Fixture()
        defer { fixture.store.remove() }
        let loader = fixture.loader()
        #expect(loader.loadTimings == nil)

        let loaded = try loader.load(on: .cpu, settings: ModelSettings(batchSize: 2))
        #expect(loaded.module.floatType == .float32)
        #expect(loaded.module.weightBytes > 0)
        #expect(loaded.timings.loadMilliseconds >= 0 && loaded.timings.warmUpMilliseconds >= 0)
        #expect(loaded.timings.firstRequestMilliseconds == nil)
        #expect(loader.loadTimings == loaded.timings)
        let output = try BatchExecutor.forward(try fixture.handler.exampleInputs(batchSize: 2), on: loaded.module)
        #expect(output.firstTensor?.shape == [2, 5, 96, 128])

        // A second load (another device or a private module) leaves the first one's timings.
        let again = try loader.loadAtLowPriority(on: .cpu, settings: ModelSettings(optimize: false))
        #expect(again.module !== loaded.module)
        #expect(loader.loadTimings == loaded.timings)

        loader.recordAnswer(after: .milliseconds(12))
        loader.recordAnswer(after: .milliseconds(40))
        #expect(loader.loadTimings?.firstRequestMilliseconds == 12)
    }

    @Test func theLoaderConvertsPrecisionOnlyWhenTheCheckPasses() async throws {
        let fixture = try Fixture()
        defer { fixture.store.remove() }
        let loader = fixture.loader()
        let full = try loader.load(on: .cpu, settings: ModelSettings(optimize: false)).module
        let half = try loader.load(on: .cpu, settings: ModelSettings(precision: .bfloat16)).module
        // The check decides: bfloat16 halves the weights, or float32 is kept (CPUs without
        // AVX512-BF16 move too many of the random fixture's near-tied argmaxes).
        if half.floatType == .bfloat16 {
            #expect(half.weightBytes < full.weightBytes * 6 / 10 && half.weightBytes > full.weightBytes * 4 / 10)
        } else {
            #expect(half.floatType == .float32 && half.weightBytes == full.weightBytes)
        }
        // Either way the module takes and gives float32.
        let output = try BatchExecutor.forward(try fixture.handler.exampleInputs(batchSize: 1), on: half)
        #expect(output.firstTensor?.dtype == .float32)
    }

    @Test func theLoaderRefusesAFileThatIsNotAModule() async throws {
        let fixture = try Fixture()
        defer { fixture.store.remove() }
        let loader = fixture.loader(file: Fixtures.url("models/not_a_model.pt"))
        #expect {
            try loader.load(on: .cpu, settings: ModelSettings())
        } throws: { error in
            // libtorch's own words for a file that is not a TorchScript archive.
            guard let error = error as? TorchError else { return false }
            return "\(error)".contains("not_a_model.pt") || "\(error)".lowercased().contains("zip")
        }
        #expect(loader.loadTimings == nil)
    }

    // MARK: BatchExecutor

    @Test func theExecutorAnswersEachJobOfABatchAndABadJobFailsAlone() async throws {
        let fixture = try Fixture()
        defer { fixture.store.remove() }
        let module = try fixture.loader().load(on: .cpu, settings: ModelSettings(batchSize: 4)).module
        let answers = Counter()
        let executor = fixture.executor { _ in _ = answers.next() }

        var expired = InferenceRequest(body: try Fixtures.bytes("images/rgb.png"))
        expired.timeout = .zero
        var gone = InferenceRequest(body: try Fixtures.bytes("images/rgb.png"))
        gone.connection = ClientConnection()
        gone.connection?.close()
        // Numeric KServe v2 inputs with two channels: the model refuses them, and they are the client's to fix.
        var wrongTensors = InferenceRequest(body: [])
        wrongTensors.mode = .forward([try TensorData(shape: [1, 2, 32, 32], elements: .numeric(.float32, [UInt8](repeating: 0, count: 2 * 32 * 32 * 4)))])
        let images = ["rgb.png", "baseline.jpg", "palette.png"]
        let requests = try images.map { InferenceRequest(body: try Fixtures.bytes("images/\($0)")) }
            + [InferenceRequest(body: try Fixtures.bytes("images/truncated.png")), wrongTensors, expired, gone]

        let results = try await runBatch(requests, executor: executor, module: module)
        for (image, result) in zip(images, results) {
            #expect(try mask(result.get()) == (try expectedMask(image)), "\(image)")
        }
        guard case .failure(.invalidInput) = results[3] else { Issue.record("truncated.png: \(results[3])"); return }
        guard case .failure(.invalidInput(let message)) = results[4], message.contains("rejected the input tensors") else {
            Issue.record("wrong tensors: \(results[4])")
            return
        }
        guard case .failure(.deadlineExceeded(model: "unet_tiny", timeoutMilliseconds: 0)) = results[5] else {
            Issue.record("expired: \(results[5])")
            return
        }
        guard case .failure(.clientDisconnected(model: "unet_tiny")) = results[6] else { Issue.record("gone: \(results[6])"); return }
        #expect(answers.count == images.count)
    }

    @Test func aFailedForwardAnswersItsGroup500AndAHandlerDeadlineNamesTheModel() async throws {
        let fixture = try Fixture()
        defer { fixture.store.remove() }
        let module = try fixture.loader().load(on: .cpu, settings: ModelSettings()).module
        let executor = fixture.executor(handler: MisbehavingHandler(base: fixture.handler))
        let worker = Worker(id: 7, device: .cpu)
        #expect(worker.becomeReady())

        var wrongShape = InferenceRequest(body: [])
        wrongShape.parameters["fail"] = "shape"
        var slowDecode = InferenceRequest(body: try Fixtures.bytes("images/rgb.png"))
        slowDecode.parameters["fail"] = "deadline"
        let good = InferenceRequest(body: try Fixtures.bytes("images/rgb.png"))

        let results = try await runBatch([good, wrongShape, slowDecode, good], timeout: .seconds(30),
                                         executor: executor, module: module, worker: worker)
        #expect(try mask(results[0].get()) == (try expectedMask("rgb.png")))
        #expect(try mask(results[3].get()) == (try expectedMask("rgb.png")))
        guard case .failure(.modelFailure(let message)) = results[1], message.hasPrefix("Model unet_tiny failed") else {
            Issue.record("wrong shape: \(results[1])")
            return
        }
        guard case .failure(.deadlineExceeded(model: "unet_tiny", timeoutMilliseconds: 30_000)) = results[2] else {
            Issue.record("slow decode: \(results[2])")
            return
        }
        // A failed forward is the worker's last error; the worker stays ready.
        #expect(worker.info.status == .ready)
        #expect(worker.info.lastError?.hasPrefix("forward failed") == true)
    }

    // MARK: WorkerPool

    @Test func backoffGrowsLikeTorchServesAndIsCapped() {
        #expect((1...12).map(WorkerPool.backoffFactor) == [1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 60, 60])
    }

    @Test func thePoolScalesUpAndDownAndServesTheQueue() async throws {
        let fixture = try Fixture()
        defer { fixture.store.remove() }
        let pool = fixture.pool(loader: fixture.loader())
        defer { pool.shutdown() }

        try await pool.scale(to: 2)
        #expect(pool.workerInfos.map(\.status) == [.ready, .ready])
        #expect(pool.workerInfos.allSatisfy { $0.device == .cpu })
        let weights = pool.weightBytes
        #expect(weights > 0)
        #expect(pool.weightBytesByDevice == [.cpu: weights], "two workers, one shared module")

        let body = try Fixtures.bytes("images/rgb.png")
        let served = await answer(InferenceRequest(body: body), on: pool.queue, metrics: fixture.metrics())
        #expect(try mask(served.get()) == (try expectedMask("rgb.png")))

        let first = pool.workerInfos[0].id
        try await pool.scale(to: 1)
        #expect(pool.workerInfos.map(\.id) == [first])

        // Private modules: each new worker loads its own, and a retired one frees it.
        pool.updateSettings { $0.shareModule = false }
        try await pool.scale(to: 3)
        #expect(pool.readyWorkerCount == 3)
        #expect(pool.weightBytesByDevice == [.cpu: weights * 3])
        try await pool.scale(to: 1)
        #expect(try await eventually(loaderWait) { pool.weightBytesByDevice == [.cpu: weights] })

        await pool.drain(timeout: .seconds(5))
        #expect(pool.isRetiring && pool.queue.isIdle)
        pool.shutdown()
        #expect(pool.workerInfos.isEmpty)
        try await pool.scale(to: 1)
        #expect(pool.workerInfos.isEmpty, "a retired pool starts no workers")
    }

    @Test func thePoolReplacesAWorkerThatFailedToLoad() async throws {
        let fixture = try Fixture()
        defer { fixture.store.remove() }
        let modelFile = fixture.store.root.appendingPathComponent("flaky.pt")
        try FileManager.default.copyItem(at: Fixtures.url("models/not_a_model.pt"), to: modelFile)
        let pool = fixture.pool(loader: fixture.loader(file: modelFile))
        defer { pool.shutdown() }
        pool.supervise()

        await #expect {
            try await pool.scale(to: 1)
        } throws: { error in
            guard case .modelFailure(let message) = error as? ModelServerError else { return false }
            return message.contains("failed to load")
        }
        let failed = try #require(pool.workerInfos.first)
        #expect(failed.status == .failed)
        #expect(failed.lastError?.hasPrefix("load failed") == true)

        // Fix the file: a replacement (after 50 ms, then 50, 100, 150… ms) loads it.
        try FileManager.default.removeItem(at: modelFile)
        try FileManager.default.copyItem(at: Fixtures.url("models/unet_tiny.pt"), to: modelFile)
        #expect(try await eventually(loaderWait) { pool.workerInfos.map(\.status) == [.ready] })
        #expect(try #require(pool.workerInfos.first).id > failed.id)
    }
}

/// Queues `request` as a job on `queue` and waits for its answer.
private func answer(_ request: InferenceRequest, on queue: BatchQueue, timeout: Duration = .seconds(30),
                    metrics: ModelMetrics) async -> Result<InferenceResponse, ModelServerError> {
    do {
        return .success(try await withCheckedThrowingContinuation { continuation in
            let now = ContinuousClock.now
            let job = InferenceJob(request: request, arrivedAt: now, deadline: now.advanced(by: request.timeout ?? timeout),
                                   metrics: metrics, continuation: continuation)
            do throws(ModelServerError) {
                try queue.enqueue(job, model: "unet_tiny")
            } catch {
                job.finish(.failure(error))
            }
        })
    } catch let error as ModelServerError {
        return .failure(error)
    } catch {
        return .failure(.modelFailure("\(error)"))
    }
}

/// Queues every request, hands them to `executor` as one batch, and returns the answers in order.
private func runBatch(_ requests: [InferenceRequest], timeout: Duration = .seconds(30), executor: BatchExecutor,
                      module: any InferenceModule, worker: Worker? = nil) async throws -> [Result<InferenceResponse, ModelServerError>] {
    let queue = BatchQueue(capacity: requests.count)
    let answers = requests.map { request in
        Task { await answer(request, on: queue, timeout: timeout, metrics: executor.metrics) }
    }
    let queued = try await eventually { queue.pending == requests.count }
    #expect(queued)
    let batch = queue.takeBatch(maxSize: requests.count, maxDelay: .zero) { false } ?? []
    #expect(batch.count == requests.count)
    executor.process(batch, on: module, by: worker)
    queue.done(batch.count)
    var results: [Result<InferenceResponse, ModelServerError>] = []
    for answer in answers { results.append(await answer.value) }
    return results
}

/// Counts up from 1, from any thread.
private final class Counter: Sendable {
    private let value = Atomic<Int>(0)

    func next() -> Int {
        value.add(1, ordering: .relaxed).newValue
    }

    var count: Int {
        value.load(ordering: .relaxed)
    }
}

/// The fixture's handler, with requests that misbehave on demand (`parameters["fail"]`): `shape`
/// prepares an input the U-Net rejects, `deadline` gives up decoding as at its deadline.
private struct MisbehavingHandler: Handler {
    let base: any Handler

    func preprocess(_ request: InferenceRequest, stages: StageClock) throws(ModelServerError) -> PreparedInput {
        switch request.parameters["fail"] {
        case "shape":
            do {
                return PreparedInput(tensors: [try Tensor.empty(shape: [1, 2, 32, 32], dtype: .float32)])
            } catch {
                throw .modelFailure("\(error)")
            }
        case "deadline":
            throw .deadlineExceeded(model: "decoder", timeoutMilliseconds: 1)
        default:
            return try base.preprocess(request, stages: stages)
        }
    }

    func postprocess(_ output: ModuleOutput, for input: PreparedInput, stages: StageClock) throws(ModelServerError) -> InferenceResponse {
        try base.postprocess(output, for: input, stages: stages)
    }

    func exampleInputs(batchSize: Int) throws -> [Tensor] {
        try base.exampleInputs(batchSize: batchSize)
    }
}
