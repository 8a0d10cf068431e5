import Foundation
import ImageCodec
import ModelArchive

/// The server's settings, parsed and validated once at start.
public struct ServerConfiguration: Sendable {
    /// A listener's `http://host:port`.
    public struct Address: Sendable, Equatable, CustomStringConvertible {
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        /// Parses `http://host:port`; port 0 picks a free one.
        public init(parsing text: String) throws(ConfigurationError) {
            guard let components = URLComponents(string: text), components.scheme?.lowercased() == "http",
                  let host = components.host, !host.isEmpty, let port = components.port, (0...65535).contains(port),
                  components.path.isEmpty || components.path == "/"
            else {
                throw ConfigurationError(key: "address", message: "'\(text)' is not of the form http://HOST:PORT")
            }
            self.init(host: host, port: port)
        }

        public var description: String { "http://\(host):\(port)" }
    }

    public var inferenceAddress = Address(host: "127.0.0.1", port: 8080)
    public var managementAddress = Address(host: "127.0.0.1", port: 8081)
    public var metricsAddress = Address(host: "127.0.0.1", port: 8082)
    /// Where archives are looked up by name at registration.
    public var modelStore: URL
    /// Where archives are unpacked while registered.
    public var workDirectory: URL
    /// Archives to register at start (`load_models`): `all`, `FILE.mar` or `NAME=FILE.mar`, comma-separated.
    public var loadModels: [String] = []
    /// Requests a model version may hold queued before answering 429.
    public var jobQueueSize = 100
    /// Workers per model when neither registration nor model config says.
    public var defaultWorkersPerModel = 1
    /// Seconds, when the model config does not say.
    public var defaultResponseTimeout = 120
    public var defaultStartupTimeout = 120
    /// Largest request body in bytes.
    public var maxRequestSize = 6_553_500
    /// Largest response body in bytes.
    public var maxResponseSize = 6_553_500
    /// GPUs to use at most (`number_of_gpu`); nil: all visible.
    public var numberOfGPU: Int?
    /// Regular expressions a registration URL must match (whole, any case); empty: model store only.
    public var allowedURLs: [String] = []
    /// libtorch intra-op threads per worker when the model config does not say.
    public var intraOpThreads = 1
    /// Largest image, in pixels, accepted before decoding its pixels.
    public var pixelLimit = ImageDecoder.defaultPixelLimit
    public var extractionLimits = ExtractionLimits.default
    /// Whether the management API may register and unregister models (`enable_model_api`).
    public var enableModelAPI = false
    /// Whether requests need `Authorization: Bearer <key>` (off with `disable_token_authorization`).
    public var tokenAuthorization = true
    /// Minutes inference and management keys live; 0: they never expire.
    public var tokenExpirationMinutes = 0
    /// Seconds between SIGTERM and closing the listeners, answering while readiness says 503.
    public var drainDelay = 5
    /// Seconds in-flight and queued requests may take to finish once the listeners close.
    public var gracefulShutdownTimeout = 20
    /// Per-model settings from the `models` key: name → version → settings, applied to that
    /// version at every registration, between its model config and the registration's own.
    public var modelSettings: [String: [String: ConfiguredModel]] = [:]
    /// The model SageMaker's `/invocations` runs when the request names none (`invocations_model`).
    public var invocationsModel: String?
    /// Timeouts, connection caps and the in-flight body bound every listener enforces.
    public var networkLimits = NetworkLimits()

    public init(modelStore: URL, workDirectory: URL) {
        self.modelStore = modelStore
        self.workDirectory = workDirectory
    }

    /// Keys this server reads from `config.properties`: the names in ``ConfigurationKey/all``.
    public static let knownKeys: Set<String> = Set(ConfigurationKey.all.map(\.name))

    /// Applies a `config.properties` file (and, with `enable_envvars_config=true`, `TS_<KEY>`
    /// environment variables) on top of the current values.
    /// - Returns: warnings for keys that are not known (they are ignored).
    /// - Throws: `ConfigurationError` naming the key of the first invalid value.
    @discardableResult
    public mutating func apply(_ file: PropertiesFile, environment: [String: String] = [:],
                               relativeTo base: URL) throws(ConfigurationError) -> [String] {
        var values: [String: String] = [:]
        var warnings: [String] = []
        for entry in file.entries {
            if Self.knownKeys.contains(entry.key) {
                values[entry.key] = entry.value
            } else {
                warnings.append("config.properties line \(entry.line): unknown key '\(entry.key)' is ignored")
            }
        }
        if try Self.bool(values["enable_envvars_config"], key: "enable_envvars_config") ?? false {
            for key in Self.knownKeys {
                if let value = environment["TS_" + key.uppercased()] { values[key] = value }
            }
        }
        try apply(values, relativeTo: base)
        if values["max_connections"] != nil || values["health_connection_reserve"] != nil,
           let warning = networkLimits.openFileWarning() {
            warnings.append(warning)
        }
        return warnings
    }

    /// Applies each key of the table that `values` sets, in the table's order.
    private mutating func apply(_ values: [String: String], relativeTo base: URL) throws(ConfigurationError) {
        for key in ConfigurationKey.all {
            if let text = values[key.name] { try key.apply(&self, text, base) }
        }
    }

    /// Applies the environment variables a platform sets whatever the config file says:
    /// SageMaker's `SAGEMAKER_BIND_TO_PORT` moves the inference listener to that port on all
    /// interfaces, where SageMaker's router reaches it.
    public mutating func applyPlatformEnvironment(_ environment: [String: String]) throws(ConfigurationError) {
        if let text = environment["SAGEMAKER_BIND_TO_PORT"] {
            guard let port = Int(text.trimmingSpaces), (1...65535).contains(port) else {
                throw ConfigurationError(key: "SAGEMAKER_BIND_TO_PORT", message: "'\(text)' is not a port number in 1...65535")
            }
            inferenceAddress = Address(host: "0.0.0.0", port: port)
        }
    }

    static func bool(_ text: String?, key: String) throws(ConfigurationError) -> Bool? {
        guard let text else { return nil }
        switch text.lowercased() {
        case "true": return true
        case "false": return false
        default: throw ConfigurationError(key: key, message: "'\(text)' is not true or false")
        }
    }
}

extension ServerConfiguration {
    /// What every listener enforces before a request reaches a route, so that idle, slow or
    /// numerous clients cannot hold the server's sockets and memory.
    public struct NetworkLimits: Sendable, Equatable {
        /// `connection_idle_timeout` (seconds, default 75): a connection with no request under
        /// way — a new one that has not sent a complete request head, or a keep-alive one between
        /// requests — is closed after this long. 75 s (nginx's `keepalive_timeout`) outlasts the
        /// 60 s idle timeout of common load balancers, so a balancer never sends a request into a
        /// pooled connection this server is closing, and no idle client holds a socket for long.
        public var idleTimeout: Duration = .seconds(75)
        /// `request_read_timeout` (seconds, default 30): once a request's first byte arrives its
        /// head must be complete within this time (else 408 and close), and while the server
        /// reads a body it may not pause longer than this (else the request is cut: 408 if it was
        /// not answered yet, then close). 30 s is far beyond any pause of a working client,
        /// TCP retransmission included, and short enough that a stalled upload frees its memory.
        public var readTimeout: Duration = .seconds(30)
        /// `min_request_body_rate` (bytes per second, default 1024; 0 turns the check off): after
        /// `request_body_rate_grace`, a body arriving slower than this on average is cut (408 if
        /// not answered yet, then close). 1 KiB/s is a seventh of a 56 kbit/s modem: no working
        /// client is that slow, while a client trickling bytes to keep a connection is cut.
        public var minBodyRate = 1024
        /// `request_body_rate_grace` (seconds, default 10): how long a body may take before its
        /// average rate is checked (TCP slow start, a client still reading its file).
        public var bodyRateGrace: Duration = .seconds(10)
        /// `max_connections` (per listener): open connections beyond this (and within
        /// `health_connection_reserve` more) may only ask `GET /ping` or the KServe health
        /// paths; others get 503 and are closed. Default 1000, or less where the process's
        /// open-file limit (`ulimit -n`) would not hold three listeners of that many plus
        /// their reserve and 256 files for models and logs: 240 under the common 1024.
        public var maxConnections = NetworkLimits.defaultMaxConnections(openFileLimit: NetworkLimits.openFileLimit())
        /// `health_connection_reserve` (default 16): connections per listener past
        /// `max_connections` kept for health probes, so a full server still answers its
        /// liveness and readiness checks; beyond them a connection is closed at once.
        public var healthConnectionReserve = NetworkLimits.defaultHealthConnectionReserve
        /// `max_inflight_body_bytes`: the most bytes of request bodies, over all connections and
        /// listeners, the server holds (received, for requests not yet answered). A request whose
        /// `Content-Length` does not fit in what is left is answered 503 without reading its
        /// body; a body whose bytes push the total over it is cut (503, then close). nil (the
        /// default): 512 MiB or 16 × `max_request_size`, whichever is larger — sixteen uploads
        /// of the largest allowed size at once at least, bounded well under the memory a server
        /// with models loaded has to spare.
        public var maxInflightBodyBytes: Int?

        public init() {}

        /// Connections per listener kept for health probes past `max_connections`.
        public static let defaultHealthConnectionReserve = 16
        /// Files a server keeps open besides its sockets (models, libraries, logs, pipes).
        static let otherOpenFiles = 256

        /// The default `max_connections` under an open-file limit: 1000, or what three
        /// listeners with their reserve leave of the limit, at least 16.
        public static func defaultMaxConnections(openFileLimit: Int?) -> Int {
            guard let openFileLimit else { return 1000 }
            let perListener = (openFileLimit - otherOpenFiles) / 3 - defaultHealthConnectionReserve
            return min(1000, max(16, perListener))
        }

        /// Raises the process's soft open-file limit to its hard limit (as nginx's
        /// `worker_rlimit_nofile` and most servers do), so `max_connections` is not capped by a
        /// shell's default 1024. Call before reading the configuration.
        /// - Returns: the soft limit now in force; nil where it cannot be read.
        @discardableResult
        public static func raiseOpenFileLimit() -> Int? {
            var limit = rlimit()
            #if canImport(Glibc)
            let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
            #else
            let resource = RLIMIT_NOFILE
            #endif
            guard getrlimit(resource, &limit) == 0 else { return nil }
            if limit.rlim_cur < limit.rlim_max {
                var raised = limit
                raised.rlim_cur = limit.rlim_max
                if setrlimit(resource, &raised) == 0 { limit = raised }
            }
            return Int(clamping: limit.rlim_cur)
        }

        /// The process's soft open-file limit (`RLIMIT_NOFILE`); nil where it cannot be read.
        public static func openFileLimit() -> Int? {
            var limit = rlimit()
            #if canImport(Glibc)
            let status = getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
            #else
            let status = getrlimit(RLIMIT_NOFILE, &limit)
            #endif
            guard status == 0 else { return nil }
            return Int(clamping: limit.rlim_cur)
        }

        /// A warning when three listeners at `max_connections` plus their reserve could run the
        /// process out of file descriptors.
        func openFileWarning(openFileLimit: Int? = NetworkLimits.openFileLimit()) -> String? {
            guard let openFileLimit else { return nil }
            let sockets = 3 * (maxConnections + healthConnectionReserve)
            guard sockets + Self.otherOpenFiles > openFileLimit else { return nil }
            return "max_connections=\(maxConnections) with health_connection_reserve=\(healthConnectionReserve) lets the three "
                + "listeners open \(sockets) sockets, more than the open-file limit of \(openFileLimit) leaves after "
                + "\(Self.otherOpenFiles) files for models and logs: raise `ulimit -n` or lower max_connections"
        }
    }

    /// The bound on request body bytes held in flight: `max_inflight_body_bytes`, else the
    /// larger of 512 MiB and 16 × `max_request_size`.
    public var inflightBodyLimit: Int {
        networkLimits.maxInflightBodyBytes ?? max(512 << 20, 16 * maxRequestSize)
    }
}

/// One model version's entry in the `models` key of `config.properties`, in TorchServe's form:
/// `{"unet": {"1.0": {"marName": "unet.mar", "minWorkers": 2, "batchSize": 4, "defaultVersion": true}}}`.
public struct ConfiguredModel: Sendable, Equatable, Decodable {
    /// The archive, as TorchServe names it; informational here (archives come from `load_models`).
    public var marName: String?
    /// Whether this version becomes the model's default once registered.
    public var defaultVersion: Bool?
    /// `minWorkers`, `maxWorkers`, `batchSize`, `maxBatchDelay`, `responseTimeout`, `startupTimeout`.
    public var settings: ModelSettings.Override

    private enum CodingKeys: String, CodingKey {
        case marName, defaultVersion
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        marName = try container.decodeIfPresent(String.self, forKey: .marName)
        defaultVersion = try container.decodeIfPresent(Bool.self, forKey: .defaultVersion)
        settings = try ModelSettings.Override(from: decoder)
    }
}

/// An invalid configuration value; fatal at start.
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var key: String
    public var message: String

    public init(key: String, message: String) {
        self.key = key
        self.message = message
    }

    public var description: String { "invalid \(key): \(message)" }
}
