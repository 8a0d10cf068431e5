import ModelArchive
import Foundation

/// One key of `config.properties`: its name, default, meaning and how its value is applied.
///
/// ``all`` is the one table of keys: the parser reads from it and `docs/configuration.md` is
/// generated from it (`serve --print-config-reference`), so a key cannot be read without being
/// documented, or documented without being read.
public struct ConfigurationKey: Sendable {
    public let name: String
    /// The default as a reader sees it (`8080`, `1000 per listener, less …`).
    public let defaultValue: String
    /// What the key does, one or two sentences.
    public let summary: String
    let apply: @Sendable (inout ServerConfiguration, String, URL) throws(ConfigurationError) -> Void

    init(_ name: String, default defaultValue: String, _ summary: String,
         apply: @escaping @Sendable (inout ServerConfiguration, String, URL) throws(ConfigurationError) -> Void) {
        self.name = name
        self.defaultValue = defaultValue
        self.summary = summary
        self.apply = apply
    }

    /// Every key, in the order they are applied and documented.
    public static let all: [ConfigurationKey] = [
        ConfigurationKey("inference_address", default: "http://127.0.0.1:8080", "Where the inference API listens.") { config, text, _ throws(ConfigurationError) in
            config.inferenceAddress = try address(text, key: "inference_address")
        },
        ConfigurationKey("management_address", default: "http://127.0.0.1:8081", "Where the management API listens.") { config, text, _ throws(ConfigurationError) in
            config.managementAddress = try address(text, key: "management_address")
        },
        ConfigurationKey("metrics_address", default: "http://127.0.0.1:8082", "Where the Prometheus metrics listen.") { config, text, _ throws(ConfigurationError) in
            config.metricsAddress = try address(text, key: "metrics_address")
        },
        ConfigurationKey("model_store", default: "model_store (beside the working folder)",
                         "Folder archives are registered from, relative to the config file; registration URLs must stay inside it.") { config, text, base in
            config.modelStore = URL(fileURLWithPath: text, relativeTo: base).standardizedFileURL
        },
        ConfigurationKey("load_models", default: "none",
                         "Archives registered at start: `all`, `FILE.mar` or `NAME=FILE.mar`, comma-separated.") { config, text, _ in
            config.loadModels = list(text)
        },
        ConfigurationKey("models", default: "none",
                         "Per-model settings as TorchServe writes them, JSON: `{\"unet\": {\"1.0\": {\"minWorkers\": 2, \"batchSize\": 4, \"maxBatchDelay\": 50, \"responseTimeout\": 60, \"defaultVersion\": true}}}`. Applied at every registration of that version, after its `model-config.yaml` and before the registration's parameters; `defaultVersion` makes it the default once registered.") { config, text, _ throws(ConfigurationError) in
            try config.applyModels(text)
        },
        intKey("default_workers_per_model", 0...256, default: "1", "Workers per model when neither the registration nor the model config says.") { $0.defaultWorkersPerModel = $1 },
        intKey("job_queue_size", 1...1_000_000, default: "100", "Requests a model version holds queued before answering 429.") { $0.jobQueueSize = $1 },
        intKey("max_request_size", 1...Int(Int32.max), default: "6553500", "Largest request body in bytes (413 beyond).") { $0.maxRequestSize = $1 },
        intKey("max_response_size", 1...Int(Int32.max), default: "6553500", "Largest response body in bytes.") { $0.maxResponseSize = $1 },
        intKey("default_response_timeout", 1...86_400, default: "120", "Seconds a request may take, when the model config does not say.") { $0.defaultResponseTimeout = $1 },
        intKey("default_startup_timeout", 1...86_400, default: "120", "Seconds a worker may take to load, when the model config does not say.") { $0.defaultStartupTimeout = $1 },
        intKey("number_of_gpu", 0...1024, default: "all visible", "GPUs to place workers on, at most.") { $0.numberOfGPU = $1 },
        intKey("intra_op_threads", 1...1024, default: "1", "libtorch intra-op threads per worker, when the model config does not say.") { $0.intraOpThreads = $1 },
        ConfigurationKey("allowed_urls", default: "none (model store only)",
                         "Comma-separated regular expressions an `http(s)` registration URL must match as a whole (any case).") { config, text, _ throws(ConfigurationError) in
            let patterns = list(text)
            for pattern in patterns {
                do { _ = try Regex(pattern) } catch {
                    throw ConfigurationError(key: "allowed_urls", message: "'\(pattern)' is not a valid regular expression")
                }
            }
            config.allowedURLs = patterns
        },
        boolKey("enable_model_api", default: "false", "Whether the management API may register, swap and unregister models.") { $0.enableModelAPI = $1 },
        boolKey("disable_token_authorization", default: "false", "Turns off the Bearer keys of `key_file.json`.") { $0.tokenAuthorization = !$1 },
        intKey("token_expiration_min", 0...(60 * 24 * 365), default: "0 (never)", "Minutes the inference and management keys live.") { $0.tokenExpirationMinutes = $1 },
        boolKey("enable_envvars_config", default: "false", "Whether `TS_<KEY>` environment variables override the file.") { _, _ in },
        intKey("drain_delay", 0...3600, default: "5", "Seconds between SIGTERM and closing the listeners, answering while readiness says 503.") { $0.drainDelay = $1 },
        intKey("graceful_shutdown_timeout", 1...3600, default: "20", "Seconds in-flight and queued requests may take once the listeners close.") { $0.gracefulShutdownTimeout = $1 },
        ConfigurationKey("invocations_model", default: "the only model",
                         "The model SageMaker's `/invocations` runs when the request names none.") { config, text, _ in
            let name = text.trimmingSpaces
            if !name.isEmpty { config.invocationsModel = name }
        },
        intKey("connection_idle_timeout", 1...86_400, default: "75",
               "Seconds a connection with no request under way (before its first head, or kept alive between requests) stays open.") {
            $0.networkLimits.idleTimeout = .seconds($1)
        },
        intKey("request_read_timeout", 1...3600, default: "30",
               "Seconds a request head may take from its first byte (else 408), and the longest pause in a body (else it is cut with 408).") {
            $0.networkLimits.readTimeout = .seconds($1)
        },
        intKey("min_request_body_rate", 0...Int(Int32.max), default: "1024",
               "Bytes per second a body must average after `request_body_rate_grace` (else it is cut with 408); 0 turns the check off.") {
            $0.networkLimits.minBodyRate = $1
        },
        intKey("request_body_rate_grace", 0...3600, default: "10", "Seconds a body may take before its rate is checked.") {
            $0.networkLimits.bodyRateGrace = .seconds($1)
        },
        intKey("max_connections", 1...1_000_000, default: "1000 per listener, less where the open-file limit (raised to its hard limit at start) is lower",
               "Open connections per listener; beyond it only health probes are answered (503 and close for the rest).") {
            $0.networkLimits.maxConnections = $1
        },
        intKey("health_connection_reserve", 0...10_000, default: "16",
               "Connections per listener past `max_connections` that may still ask `GET /ping` or the KServe health routes; beyond them a connection is closed at once.") {
            $0.networkLimits.healthConnectionReserve = $1
        },
        intKey("max_inflight_body_bytes", 1...(1 << 50), default: "the larger of 512 MiB and 16 × max_request_size",
               "Request body bytes held, over all listeners, for requests not yet answered; a request that would pass it gets 503.") {
            $0.networkLimits.maxInflightBodyBytes = $1
        },
    ]

    /// The keys as a Markdown reference: `docs/configuration.md`.
    public static func referenceMarkdown() -> String {
        var text = """
            # Configuration reference

            `serve` reads TorchServe's `config.properties` (`--ts-config FILE`, or `./config.properties`
            when present; see `config/config.properties`). Unknown keys are warned about and ignored; an
            invalid value stops the server, naming the key. With `enable_envvars_config=true`,
            `TS_<KEY>` environment variables (the key in capitals) override the file.

            Generated from the key table in `Sources/ServerCore/Settings/ConfigurationKey.swift` by
            `serve --print-config-reference`; a test keeps this file equal to it.

            | key | default | meaning |
            |---|---|---|

            """
        for key in all {
            let cell = { (value: String) in value.replacingOccurrences(of: "|", with: "\\|") }
            text += "| `\(key.name)` | \(cell(key.defaultValue)) | \(cell(key.summary)) |\n"
        }
        return text
    }

    // MARK: Value parsers

    private static func intKey(_ name: String, _ range: ClosedRange<Int>, default defaultValue: String, _ summary: String,
                               set: @escaping @Sendable (inout ServerConfiguration, Int) -> Void) -> ConfigurationKey {
        ConfigurationKey(name, default: defaultValue, summary + " Integer in \(range.lowerBound)...\(range.upperBound).") { config, text, _ throws(ConfigurationError) in
            guard let value = Int(text.trimmingSpaces), range.contains(value) else {
                throw ConfigurationError(key: name, message: "'\(text)' is not an integer in \(range.lowerBound)...\(range.upperBound)")
            }
            set(&config, value)
        }
    }

    private static func boolKey(_ name: String, default defaultValue: String, _ summary: String,
                                set: @escaping @Sendable (inout ServerConfiguration, Bool) -> Void) -> ConfigurationKey {
        ConfigurationKey(name, default: defaultValue, summary + " `true` or `false`.") { config, text, _ throws(ConfigurationError) in
            guard let value = try ServerConfiguration.bool(text, key: name) else { return }
            set(&config, value)
        }
    }

    private static func address(_ text: String, key: String) throws(ConfigurationError) -> ServerConfiguration.Address {
        do { return try ServerConfiguration.Address(parsing: text) } catch { throw ConfigurationError(key: key, message: error.message) }
    }

    private static func list(_ text: String) -> [String] {
        text.split(separator: ",").map { String($0).trimmingSpaces }.filter { !$0.isEmpty }
    }
}

extension ServerConfiguration {
    /// Reads the `models` key (TorchServe's JSON) and checks every setting's range.
    mutating func applyModels(_ text: String) throws(ConfigurationError) {
        do {
            modelSettings = try JSONDecoder().decode([String: [String: ConfiguredModel]].self, from: Data(text.utf8))
        } catch {
            throw ConfigurationError(key: "models", message: "is not JSON of the form {\"name\": {\"1.0\": {\"minWorkers\": 1, ...}}}: \(error)")
        }
        for (name, versions) in modelSettings {
            for (version, entry) in versions {
                do {
                    try entry.settings.validate()
                } catch {
                    throw ConfigurationError(key: "models", message: "\(name) version \(version): \(error)")
                }
            }
        }
    }
}
