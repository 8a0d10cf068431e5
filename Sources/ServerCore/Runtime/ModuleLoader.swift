import Foundation
import Logging
import ModelArchive
import Synchronization
import Torch

/// Loads one model version's module onto a device, as its settings ask: reads the file,
/// converts a TorchScript module to bfloat16/float16 or freezes and optimises it (either kept only
/// if it gives the output of the module as read, on the handler's example input), warms it up for
/// every batch size, and times it. An AOTInductor package is loaded as compiled. It keeps the first
/// load's timings and the first request's latency.
final class ModuleLoader: Sendable {
    /// The TorchScript file or AOTInductor package.
    let file: URL
    /// What the file says of itself when it is an AOTInductor package; nil for TorchScript.
    let package: AOTInductorPackageInfo?
    /// Gives the example inputs the checks and the warm-up run.
    let handler: any Handler
    let logger: Logger
    private let firstTimings = Mutex<LoadTimings?>(nil)

    init(file: URL, package: AOTInductorPackageInfo? = nil, handler: any Handler, logger: Logger) {
        self.file = file
        self.package = package
        self.handler = handler
        self.logger = logger
    }

    /// How long the first module took to load and warm up, and the first request after it.
    var loadTimings: LoadTimings? {
        firstTimings.withLock { $0 }
    }

    /// Records `latency` as the first request's if a module has loaded and no request was recorded yet.
    func recordAnswer(after latency: Duration) {
        let first = firstTimings.withLock { timings -> LoadTimings? in
            guard timings != nil, timings?.firstRequestMilliseconds == nil else { return nil }
            timings?.firstRequestMilliseconds = Double(nanoseconds(latency)) / 1e6
            return timings
        }
        if let first {
            logger.info("first request answered in \(first.firstRequestMilliseconds ?? 0) ms (load \(first.loadMilliseconds) ms, warm-up \(first.warmUpMilliseconds) ms)")
        }
    }

    /// `load(on:settings:)` on a thread of its own at a lower CPU priority (nice +10), waited for.
    /// Loading, optimising and warming up a model then yields the cores to the workers already
    /// serving (a swap or scale-up under load) and runs at full speed on an idle machine. A
    /// thread cannot raise its priority again without privileges, hence a thread per load.
    func loadAtLowPriority(on device: Device, settings: ModelSettings) throws -> LoadedModule {
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox<LoadedModule>()
        let thread = Thread { [self] in
            // On Linux the nice value is per thread, and `who` 0 is the calling thread.
            _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
            box.result.withLock {
                $0 = Result {
                    try TorchRuntime.setIntraOpThreads(settings.intraOpThreads)
                    return try load(on: device, settings: settings)
                }
            }
            done.signal()
        }
        thread.name = "model-loader"
        thread.stackSize = 8 << 20
        thread.start()
        done.wait()
        guard let result = box.result.withLock({ $0 }) else { throw ModelServerError.modelFailure("the loading thread returned nothing") }
        return try result.get()
    }

    /// Loads the module onto `device` on the calling thread, converts or optimises it as
    /// `settings` say (checked on the handler's example input), warms it up and records the times.
    func load(on device: Device, settings: ModelSettings) throws -> LoadedModule {
        let started = ContinuousClock.now
        let plain = try open(on: device, settings: settings)
        var chosen = plain
        let example = try handler.exampleInputs(batchSize: 1).map { try $0.to(plain.device) }
        let inputForm = handler.inputForm
        let reference = try BatchExecutor.forward(example, form: inputForm, on: plain)
        if let script = plain as? ScriptModule {
            if inputForm == .imageList, settings.precision != .float32 {
                logger.warning("keeping float32: precision applies to models that take batched tensors; this one takes a list of images")
            } else if settings.precision != .float32 {
                // Measured: optimize_for_inference makes a bfloat16 U-Net slower, not faster; not combined.
                chosen = converted(script, to: settings.precision, example: example, reference: reference) ?? plain
            }
            if settings.optimize && chosen === plain && inputForm == .batched {
                chosen = optimized(script, example: example, reference: reference) ?? plain
            }
        } else if settings.precision != .float32 || settings.optimize {
            logger.info("precision and optimize skipped: an AOTInductor package runs as it was compiled")
        }
        let loaded = ContinuousClock.now
        // Warm-up: the first calls of each batch size pay libtorch's profiling and fusion passes.
        for batchSize in Set([1, settings.batchSize]) {
            let inputs = try handler.exampleInputs(batchSize: batchSize).map { try $0.to(plain.device) }
            for _ in 0..<2 {
                let output = try BatchExecutor.forward(inputs, form: inputForm, on: chosen)
                try checkRows(of: output, batchSize: batchSize, form: inputForm)
            }
        }
        let timings = LoadTimings(loadMilliseconds: milliseconds(loaded - started), warmUpMilliseconds: milliseconds(.now - loaded))
        let form = chosen === plain ? "" : chosen.floatType != .float32 ? " (\(chosen.floatType), checked)" : " (optimised and checked)"
        logger.info("loaded \(file.lastPathComponent) on \(chosen.device) in \(timings.loadMilliseconds) ms\(form), warmed up in \(timings.warmUpMilliseconds) ms; \(chosen.weightBytes) bytes of weights")
        firstTimings.withLock {
            if $0 == nil { $0 = timings }
        }
        return LoadedModule(module: chosen, timings: timings)
    }

    /// The file as a TorchScript module or, when it is one, an AOTInductor package with a runner
    /// per worker that may share it.
    private func open(on device: Device, settings: ModelSettings) throws -> any InferenceModule {
        guard let package else { return try ScriptModule(contentsOf: file, device: device) }
        let runners = min(16, max(1, settings.maxWorkers, settings.minWorkers))
        let loaded = try AOTInductorPackage(contentsOf: file, modelName: package.modelName, device: device, runners: runners)
        logger.info("AOTInductor package compiled for \(loaded.targetDevice), batch \(package.batch), \(runners) runners")
        return loaded
    }

    /// Refuses a package that answers a batch with another number of rows: compiled for a fixed
    /// batch its input checks did not show, it would answer only the first request of each batch.
    private func checkRows(of output: ModuleOutput, batchSize: Int, form: ModelInputForm) throws {
        guard package != nil, form == .batched, batchSize > 1, let rows = output.firstTensor?.shape.first, rows != batchSize else { return }
        throw ModelServerError.invalidModel(
            "\(file.lastPathComponent) answered a batch of \(batchSize) with \(rows) rows: it was compiled for a fixed batch; "
                + "set batchSize: 1 or export it with a dynamic batch dimension (torch.export.Dim)")
    }

    /// The module converted to `precision` if its output on `example` stays within 2 % of the
    /// float32 output's largest magnitude, and its argmax over dimension 1 (classes) agrees on at
    /// least 99 %; else nil, with a log line saying why.
    private func converted(_ plain: ScriptModule, to precision: ModelConfig.Precision, example: [Tensor],
                           reference: ModuleOutput) -> ScriptModule? {
        let type: DType = precision == .bfloat16 ? .bfloat16 : .float16
        do {
            let candidate = try plain.converted(to: type)
            guard let expected = reference.firstTensor, let got = try BatchExecutor.forward(example, on: candidate).firstTensor else {
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

/// A module ready to serve, and how long its load and warm-up took.
struct LoadedModule: Sendable {
    let module: any InferenceModule
    let timings: LoadTimings
}

/// The time a version's first module took to load (including optimising and checking it) and
/// to warm up, and the latency of the first request answered after it.
public struct LoadTimings: Sendable, Equatable {
    public var loadMilliseconds: Int
    public var warmUpMilliseconds: Int
    public var firstRequestMilliseconds: Double?
}

/// The outcome of a load on its own thread, read by the waiting thread after a semaphore.
private final class ResultBox<T: Sendable>: Sendable {
    let result = Mutex<Result<T, any Error>?>(nil)
}
