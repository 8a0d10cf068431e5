import Foundation
import Logging
import Synchronization
import Torch

/// The state of a worker as describe shows it.
public enum WorkerStatus: String, Sendable, CaseIterable {
    case loading = "LOADING"
    case ready = "READY"
    case unloading = "UNLOADING"
    case failed = "FAILED"
}

/// What describe shows of one worker.
public struct WorkerInfo: Sendable, Equatable {
    public var id: Int
    public var startTime: Date
    public var status: WorkerStatus
    public var device: Device
    /// Why the worker's last load or forward pass failed, if one did.
    public var lastError: String?

    /// The CUDA device index, or nil on the CPU.
    public var gpuIndex: Int? {
        if case .cuda(let index) = device { return index }
        return nil
    }
}

/// A dedicated thread that runs batches of one model version on one device.
///
/// Forward passes block for milliseconds to seconds, so they run here and never on Swift's
/// cooperative pool or an event loop.
final class Worker: Sendable {
    let id: Int
    let device: Device
    let startTime = Date()
    private let state = Mutex(State())

    private struct State {
        var status: WorkerStatus = .loading
        var lastError: String?
        var retired = false
    }

    init(id: Int, device: Device) {
        self.id = id
        self.device = device
    }

    var status: WorkerStatus {
        state.withLock { $0.status }
    }

    var info: WorkerInfo {
        state.withLock { WorkerInfo(id: id, startTime: startTime, status: $0.status, device: device, lastError: $0.lastError) }
    }

    func setStatus(_ status: WorkerStatus) {
        state.withLock { $0.status = status }
    }

    /// A loaded worker starts serving, unless its load was given up (startup timeout) or it was
    /// retired meanwhile.
    /// - Returns: whether it is READY now.
    func becomeReady() -> Bool {
        state.withLock { state in
            guard state.status == .loading, !state.retired else { return false }
            state.status = .ready
            return true
        }
    }

    /// Gives up on a load still running: the worker is FAILED with `message`, and its thread
    /// leaves once the load returns.
    /// - Returns: whether the worker was still loading.
    func abandonLoad(_ message: String) -> Bool {
        state.withLock { state in
            guard state.status == .loading else { return false }
            state.status = .failed
            state.lastError = message
            return true
        }
    }

    /// Records a failed load (the worker is then FAILED) or a failed forward pass (it stays READY).
    func recordFailure(_ message: String, loading: Bool) {
        state.withLock { state in
            state.lastError = message
            if loading { state.status = .failed }
        }
    }

    /// Asks the worker to stop after its current batch.
    func retire() {
        state.withLock { state in
            state.retired = true
            state.status = .unloading
        }
    }

    var isRetired: Bool {
        state.withLock { $0.retired }
    }

    /// Starts the thread running `loop`.
    func start(name: String, _ loop: @escaping @Sendable () -> Void) {
        let thread = Thread(block: loop)
        thread.name = name
        // libtorch's graph executor recurses; give it the stack a main thread has.
        thread.stackSize = 8 << 20
        thread.start()
    }
}
