import Synchronization

/// The map of registered models: each model's versions in registration order, its default
/// version, and which models were declared at start. Only the map: loading, workers and
/// persistence belong to others.
final class ModelRegistry: Sendable {
    private struct State {
        var models: [String: [ModelVersion]] = [:]
        var defaults: [String: String] = [:]
        var startupModels: Set<String> = []
        var nextWorkerID = 9000
    }

    private let state = Mutex(State())

    /// Adds a version; the first version of a model becomes its default.
    /// - Throws: `conflict` when the model already has that version.
    func insert(_ version: ModelVersion, atStartup: Bool) throws(ModelServerError) {
        try state.withLock { (state: inout State) throws(ModelServerError) in
            if state.models[version.name, default: []].contains(where: { $0.version == version.version }) {
                throw .conflict("Model version \(version.version) for model \(version.name) has already been registered")
            }
            state.models[version.name, default: []].append(version)
            if state.defaults[version.name] == nil { state.defaults[version.name] = version.version }
            if atStartup { state.startupModels.insert(version.name) }
        }
    }

    /// The default version of `model`, or `version`.
    func resolve(model: String, version: String?) throws(ModelServerError) -> ModelVersion {
        try state.withLock { (state: inout State) throws(ModelServerError) -> ModelVersion in
            try Self.find(model: model, version: version, in: state)
        }
    }

    /// Whether `version` is (still, or again) registered under its name and version.
    func contains(model: String, version: String) -> Bool {
        state.withLock { $0.models[model]?.contains { $0.version == version } ?? false }
    }

    /// A model's versions, its default version and whether it was declared at start.
    func entry(_ model: String) -> (versions: [ModelVersion], defaultVersion: String?, atStartup: Bool) {
        state.withLock { ($0.models[model] ?? [], $0.defaults[model], $0.startupModels.contains(model)) }
    }

    /// Every model by name, sorted, with its default version and its versions.
    func entries() -> [(name: String, defaultVersion: String, versions: [ModelVersion])] {
        state.withLock { state in
            state.models.keys.sorted().compactMap { name in
                guard let versions = state.models[name], let chosen = state.defaults[name] else { return nil }
                return (name, chosen, versions)
            }
        }
    }

    /// Every registered version.
    var all: [ModelVersion] {
        state.withLock { $0.models.values.flatMap { $0 } }
    }

    /// The models declared at start, sorted.
    var startupModelNames: [String] {
        state.withLock { $0.startupModels.sorted() }
    }

    func defaultVersion(of model: String) -> String? {
        state.withLock { $0.defaults[model] }
    }

    /// Makes `version` the default of `model`.
    func setDefault(model: String, version: String) throws(ModelServerError) {
        try state.withLock { (state: inout State) throws(ModelServerError) in
            _ = try Self.find(model: model, version: version, in: state)
            state.defaults[model] = version
        }
    }

    /// Removes a version (a registration rolled back).
    func remove(_ version: ModelVersion) {
        state.withLock { state in
            state.models[version.name]?.removeAll { $0 === version }
            if state.models[version.name]?.isEmpty == true {
                state.models[version.name] = nil
                state.defaults[version.name] = nil
            }
        }
    }

    /// Takes the default version of `model`, or `version`, out of the registry for unregistering.
    /// - Throws: `invalidVersionOperation` for the default while other versions remain.
    func detachForUnregister(model: String, version: String?) throws(ModelServerError) -> ModelVersion {
        try state.withLock { (state: inout State) throws(ModelServerError) -> ModelVersion in
            let target = try Self.find(model: model, version: version, in: state)
            if target.version == state.defaults[model] && (state.models[model]?.count ?? 0) > 1 {
                throw .invalidVersionOperation(
                    "Cannot remove the default version \(target.version) of model \(model) while other versions exist; set another default first")
            }
            Self.detach(target, from: &state)
            return target
        }
    }

    /// Makes `candidate` the default of its model and takes `old` out, in one step (a swap).
    func promote(_ candidate: ModelVersion, replacing old: ModelVersion) {
        state.withLock { state in
            state.defaults[candidate.name] = candidate.version
            if state.models[old.name]?.contains(where: { $0 === old }) == true { Self.detach(old, from: &state) }
        }
    }

    /// Undoes an unregister or a swap whose snapshot could not be written: puts `version` back at
    /// `index` among its model's versions, as the default when it was, and takes out `replacement`
    /// (a swap's new version), in one step.
    func reinstate(_ version: ModelVersion, at index: Int, asDefault: Bool, atStartup: Bool, removing replacement: ModelVersion? = nil) {
        state.withLock { state in
            if let replacement { state.models[replacement.name]?.removeAll { $0 === replacement } }
            var versions = state.models[version.name] ?? []
            if !versions.contains(where: { $0 === version }) { versions.insert(version, at: min(max(0, index), versions.count)) }
            state.models[version.name] = versions
            if asDefault || state.defaults[version.name] == nil { state.defaults[version.name] = version.version }
            if atStartup { state.startupModels.insert(version.name) }
        }
    }

    /// Empties the registry.
    /// - Returns: the versions that were registered.
    func removeAll() -> [ModelVersion] {
        state.withLock { state in
            let all = state.models.values.flatMap { $0 }
            state.models.removeAll()
            state.defaults.removeAll()
            return all
        }
    }

    /// A new worker id (TorchServe numbers its workers from 9000).
    func allocateWorkerID() -> Int {
        state.withLock { state in
            state.nextWorkerID += 1
            return state.nextWorkerID - 1
        }
    }

    /// The default version of `model`, or `version`, in `state`.
    private static func find(model: String, version: String?, in state: State) throws(ModelServerError) -> ModelVersion {
        guard let versions = state.models[model] else { throw .modelNotFound(model: model) }
        let wanted = version ?? state.defaults[model]
        guard let found = versions.first(where: { $0.version == wanted }) else {
            throw .versionNotFound(model: model, version: wanted ?? "")
        }
        return found
    }

    private static func detach(_ target: ModelVersion, from state: inout State) {
        let model = target.name
        state.models[model]?.removeAll { $0 === target }
        if state.models[model]?.isEmpty == true {
            state.models[model] = nil
            state.defaults[model] = nil
            state.startupModels.remove(model)
        }
    }
}
