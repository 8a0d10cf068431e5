import Foundation
import Logging
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
final class Worker: @unchecked Sendable {
    let id: Int
    let device: Device
    let startTime = Date()
    private let lock = NSLock()
    private var _status: WorkerStatus = .loading
    private var _lastError: String?
    private var retired = false

    init(id: Int, device: Device) {
        self.id = id
        self.device = device
    }

    var status: WorkerStatus {
        lock.lock()
        defer { lock.unlock() }
        return _status
    }

    var info: WorkerInfo {
        lock.lock()
        defer { lock.unlock() }
        return WorkerInfo(id: id, startTime: startTime, status: _status, device: device, lastError: _lastError)
    }

    func setStatus(_ status: WorkerStatus) {
        lock.lock()
        _status = status
        lock.unlock()
    }

    /// A loaded worker starts serving, unless its load was given up (startup timeout) or it was
    /// retired meanwhile.
    /// - Returns: whether it is READY now.
    func becomeReady() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard _status == .loading, !retired else { return false }
        _status = .ready
        return true
    }

    /// Gives up on a load still running: the worker is FAILED with `message`, and its thread
    /// leaves once the load returns.
    /// - Returns: whether the worker was still loading.
    func abandonLoad(_ message: String) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard _status == .loading else { return false }
        _status = .failed
        _lastError = message
        return true
    }

    /// Records a failed load (the worker is then FAILED) or a failed forward pass (it stays READY).
    func recordFailure(_ message: String, loading: Bool) {
        lock.lock()
        _lastError = message
        if loading { _status = .failed }
        lock.unlock()
    }

    /// Asks the worker to stop after its current batch.
    func retire() {
        lock.lock()
        retired = true
        _status = .unloading
        lock.unlock()
    }

    var isRetired: Bool {
        lock.lock()
        defer { lock.unlock() }
        return retired
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
