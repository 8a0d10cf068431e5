import Metrics

/// What the server tells about its models: descriptions, the model list, response counts and
/// the gauges a scrape reads.
extension ModelServer {
    /// The default version, a given version, or all versions (`"all"`) of a model.
    public func describe(model: String, version: String? = nil) throws(ModelServerError) -> [ModelDescription] {
        let entry = registry.entry(model)
        guard !entry.versions.isEmpty else { throw .modelNotFound(model: model) }
        let chosen: [ModelVersion]
        switch version {
        case "all": chosen = entry.versions
        case nil: chosen = entry.versions.filter { $0.version == entry.defaultVersion }
        case let wanted?: chosen = entry.versions.filter { $0.version == wanted }
        }
        guard !chosen.isEmpty else { throw .versionNotFound(model: model, version: version ?? "") }
        return chosen.map { version in
            ModelDescription(
                modelName: version.name, modelVersion: version.version, modelURL: version.modelURL,
                runtime: version.archive.manifest.runtime, handler: version.archive.handler.rawValue,
                isDefault: version.version == entry.defaultVersion, settings: version.settings, workers: version.workerInfos,
                weightBytes: version.weightBytes, queueCapacity: version.queue.capacity,
                pendingRequests: version.queue.pending, loadedAtStartup: entry.atStartup, loadTimings: version.loadTimings,
                labels: version.handler.classLabels?.names ?? [:], notes: AOTInductorServing.notes(version.archive))
        }
    }

    /// Names of registered models and the URL of each default version, sorted by name.
    public func listModels() -> [(name: String, url: String)] {
        registry.entries().compactMap { entry in
            entry.versions.first { $0.version == entry.defaultVersion }.map { (entry.name, $0.modelURL) }
        }
    }

    /// The version a request that names none gets, if the model exists.
    public func defaultVersion(of model: String) -> String? {
        registry.defaultVersion(of: model)
    }

    /// Counts an answered inference request in `ts_inference_responses_total`, under the
    /// version that answered when it is registered; requests naming a model or version that is
    /// not registered are counted under `(unknown)`, so clients cannot create series at will.
    public func countResponse(model: String, version: String?, code: Int) {
        if let target = try? resolve(model: model, version: version) {
            target.metrics.response(code: code)
        } else {
            ModelMetrics.responses([("model_name", "(unknown)"), ("model_version", "(unknown)")], code: code, factory: metricsFactory)
                .increment()
        }
    }

    /// Sets the gauges that describe the present (workers, queues, memory); call before a scrape.
    public func updateGauges() {
        var deviceBytes: [String: Int] = [:]
        for version in registry.all {
            let dimensions = version.metrics.dimensions
            let infos = version.workerInfos
            for status in WorkerStatus.allCases {
                Gauge(label: MetricName.workers, dimensions: dimensions + [("status", status.rawValue)], factory: metricsFactory)
                    .record(infos.filter { $0.status == status }.count)
            }
            Gauge(label: MetricName.queuePending, dimensions: dimensions, factory: metricsFactory).record(version.queue.pending)
            for (device, bytes) in version.weightBytesByDevice { deviceBytes[device.description, default: 0] += bytes }
        }
        for (device, bytes) in deviceBytes {
            Gauge(label: MetricName.deviceMemory, dimensions: [("device", device)], factory: metricsFactory).record(bytes)
        }
        Gauge(label: MetricName.residentMemory, dimensions: [], factory: metricsFactory).record(residentMemoryBytes())
    }
}
