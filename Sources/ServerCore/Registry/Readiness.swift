import Synchronization

/// Whether the server is ready (what the health routes report), and if not, why: it is
/// draining, a start-up model failed to load or is still loading, or a start-up model has no
/// live worker.
final class Readiness: Sendable {
    private struct State {
        var draining = false
        /// Start-up models (by the name or file that declared them) still loading, in order.
        var loading: [String] = []
        /// Start-up models that failed to load, with the reason.
        var failures: [(model: String, reason: String)] = []
    }

    private let state = Mutex(State())

    /// Readiness answers 503 from now on, while requests are still answered.
    func beginDraining() {
        state.withLock { $0.draining = true }
    }

    /// The start-up models about to load, in the order they will.
    func startLoading(_ labels: [String]) {
        state.withLock { $0.loading = labels }
    }

    /// The first `count` start-up models finished loading, either way.
    func finishedLoading(_ count: Int = 1) {
        state.withLock { $0.loading.removeFirst(min(count, $0.loading.count)) }
    }

    /// A start-up model failed to load.
    func failed(_ model: String, reason: String) {
        state.withLock { $0.failures.append((model, reason)) }
    }

    /// Start-up models that failed to load, with the reason.
    var failures: [(model: String, reason: String)] {
        state.withLock { $0.failures }
    }

    /// nil when ready; else why not.
    /// - Parameter registry: the start-up models there must each have a live worker (unless scaled to zero).
    func unreadyReason(registry: ModelRegistry) -> String? {
        let (draining, loading, failure) = state.withLock { ($0.draining, $0.loading.first, $0.failures.first) }
        if draining { return "server is draining" }
        if let failure { return "model \(failure.model): failed to load: \(failure.reason)" }
        if let loading { return "model \(loading): loading" }
        for name in registry.startupModelNames {
            guard let version = try? registry.resolve(model: name, version: nil) else { continue }
            if version.settings.minWorkers > 0 && version.readyWorkerCount == 0 {
                return "model \(name): no live worker"
            }
        }
        return nil
    }
}
