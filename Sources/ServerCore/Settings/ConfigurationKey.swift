import ModelArchive
import Foundation

/// One key of `config.properties`: its name, default, meaning and how its value is applied to
/// the settings it belongs to (the core's ``ServerConfiguration``, or the HTTP layer's).
///
/// Each layer has one table of its keys (``ServerConfiguration/keys`` here); the parser reads
/// from the tables and `docs/configuration.md` is generated from them
/// (`serve --print-config-reference`), so a key cannot be read without being documented, or
/// documented without being read.
public struct ConfigurationKey<Settings>: Sendable {
    public let name: String
    /// The default as a reader sees it (`8080`, `1000 per listener, less …`).
    public let defaultValue: String
    /// What the key does, one or two sentences.
    public let summary: String
    let apply: @Sendable (inout Settings, String, URL) throws(ConfigurationError) -> Void

    public init(_ name: String, default defaultValue: String, _ summary: String,
                apply: @escaping @Sendable (inout Settings, String, URL) throws(ConfigurationError) -> Void) {
        self.name = name
        self.defaultValue = defaultValue
        self.summary = summary
        self.apply = apply
    }

    /// Applies the keys of `keys` that `values` sets, in the table's order.
    public static func apply(_ values: [String: String], keys: [ConfigurationKey], to settings: inout Settings,
                             relativeTo base: URL) throws(ConfigurationError) {
        for key in keys {
            if let text = values[key.name] { try key.apply(&settings, text, base) }
        }
    }

    /// A Markdown table row for this key.
    public var referenceRow: String {
        let cell = { (value: String) in value.replacingOccurrences(of: "|", with: "\\|") }
        return "| `\(name)` | \(cell(defaultValue)) | \(cell(summary)) |\n"
    }

    // MARK: Value parsers

    /// A key whose value is an integer in `range`.
    public static func integer(_ name: String, _ range: ClosedRange<Int>, default defaultValue: String, _ summary: String,
                               set: @escaping @Sendable (inout Settings, Int) -> Void) -> ConfigurationKey {
        ConfigurationKey(name, default: defaultValue, summary + " Integer in \(range.lowerBound)...\(range.upperBound).") { config, text, _ throws(ConfigurationError) in
            guard let value = Int(text.trimmingSpaces), range.contains(value) else {
                throw ConfigurationError(key: name, message: "'\(text)' is not an integer in \(range.lowerBound)...\(range.upperBound)")
            }
            set(&config, value)
        }
    }

    /// A key whose value is `true` or `false`.
    public static func boolean(_ name: String, default defaultValue: String, _ summary: String,
                               set: @escaping @Sendable (inout Settings, Bool) -> Void) -> ConfigurationKey {
        ConfigurationKey(name, default: defaultValue, summary + " `true` or `false`.") { config, text, _ throws(ConfigurationError) in
            guard let value = try ServerConfiguration.bool(text, key: name) else { return }
            set(&config, value)
        }
    }

    /// A comma-separated list, entries trimmed, empty ones dropped.
    public static func list(_ text: String) -> [String] {
        text.split(separator: ",").map { String($0).trimmingSpaces }.filter { !$0.isEmpty }
    }
}

extension ServerConfiguration {
    /// The core's keys of `config.properties`, in the order they are applied and documented.
    public static let keys: [ConfigurationKey<ServerConfiguration>] = [
        ConfigurationKey<ServerConfiguration>("model_store", default: "model_store (beside the working folder)",
                         "Folder archives are registered from, relative to the config file; registration URLs must stay inside it.") { config, text, base in
            config.modelStore = URL(fileURLWithPath: text, relativeTo: base).standardizedFileURL
        },
        ConfigurationKey<ServerConfiguration>("load_models", default: "none",
                         "Archives registered at start: `all`, `FILE.mar` or `NAME=FILE.mar`, comma-separated.") { config, text, _ in
            config.loadModels = ConfigurationKey<ServerConfiguration>.list(text)
        },
        ConfigurationKey<ServerConfiguration>("models", default: "none",
                         "Per-model settings as TorchServe writes them, JSON: `{\"unet\": {\"1.0\": {\"minWorkers\": 2, \"batchSize\": 4, \"maxBatchDelay\": 50, \"responseTimeout\": 60, \"defaultVersion\": true}}}`. Applied at every registration of that version, after its `model-config.yaml` and before the registration's parameters; `defaultVersion` makes it the default once registered.") { config, text, _ throws(ConfigurationError) in
            try config.applyModels(text)
        },
        .integer("default_workers_per_model", 0...256, default: "1", "Workers per model when neither the registration nor the model config says.") { $0.defaultWorkersPerModel = $1 },
        .integer("job_queue_size", 1...1_000_000, default: "100", "Requests a model version holds queued before answering 429.") { $0.jobQueueSize = $1 },
        .integer("max_request_size", 1...Int(Int32.max), default: "6553500", "Largest request body in bytes (413 beyond).") { $0.maxRequestSize = $1 },
        .integer("max_response_size", 1...Int(Int32.max), default: "6553500", "Largest response body in bytes.") { $0.maxResponseSize = $1 },
        .integer("default_response_timeout", 1...86_400, default: "120", "Seconds a request may take, when the model config does not say.") { $0.defaultResponseTimeout = $1 },
        .integer("default_startup_timeout", 1...86_400, default: "120", "Seconds a worker may take to load, when the model config does not say.") { $0.defaultStartupTimeout = $1 },
        .integer("number_of_gpu", 0...1024, default: "all visible", "GPUs to place workers on, at most.") { $0.numberOfGPU = $1 },
        .integer("intra_op_threads", 1...1024, default: "1", "libtorch intra-op threads per worker, when the model config does not say.") { $0.intraOpThreads = $1 },
        ConfigurationKey<ServerConfiguration>("allowed_urls", default: "none (model store only, no image fetched)",
                         "Comma-separated regular expressions an `http(s)` registration URL, or the URL of an image a prediction sends as `{\"url\": …}`, must match as a whole (any case).") { config, text, _ throws(ConfigurationError) in
            let patterns = ConfigurationKey<ServerConfiguration>.list(text)
            for pattern in patterns {
                do { _ = try Regex(pattern) } catch {
                    throw ConfigurationError(key: "allowed_urls", message: "'\(pattern)' is not a valid regular expression")
                }
            }
            config.allowedURLs = patterns
        },
        ConfigurationKey<ServerConfiguration>("allowed_fetch_addresses", default: "none",
                         "Comma-separated addresses or CIDR ranges (`127.0.0.1`, `10.0.0.0/8`, `fd00::/8`) an image URL's host may resolve to although they are loopback, private, link-local, CGNAT, multicast or otherwise special-use; the rest of those ranges is refused (403). Public addresses need no entry.") { config, text, _ throws(ConfigurationError) in
            var ranges: [AddressRange] = []
            for entry in ConfigurationKey<ServerConfiguration>.list(text) {
                guard let range = AddressRange(entry) else {
                    throw ConfigurationError(key: "allowed_fetch_addresses",
                                             message: "'\(Excerpt.of(entry))' is not an IP address or CIDR range such as 127.0.0.1, 10.0.0.0/8 or fd00::/8")
                }
                ranges.append(range)
            }
            config.allowedFetchAddresses = ranges
        },
        .boolean("enable_model_api", default: "false", "Whether the management API may register, swap and unregister models.") { $0.enableModelAPI = $1 },
        .boolean("enable_envvars_config", default: "false", "Whether `TS_<KEY>` environment variables override the file.") { _, _ in },
        .integer("drain_delay", 0...3600, default: "5", "Seconds between SIGTERM and closing the listeners, answering while readiness says 503.") { $0.drainDelay = $1 },
        .integer("graceful_shutdown_timeout", 1...3600, default: "20", "Seconds in-flight and queued requests may take once the listeners close.") { $0.gracefulShutdownTimeout = $1 },
        .boolean("enable_tracing", default: "false", "Whether `serve` exports OpenTelemetry traces of requests over OTLP/HTTP, configured by the standard `OTEL_*` environment variables (endpoint `OTEL_EXPORTER_OTLP_ENDPOINT`, default http://localhost:4318); `OTEL_SDK_DISABLED` overrides it either way.") { $0.enableTracing = $1 },
    ]
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
