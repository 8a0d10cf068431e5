import Foundation
import ServerCore

/// The settings of the HTTP layer: where the three listeners are, token authorization, the
/// limits of the network edge, and SageMaker's default model. The core's settings are
/// ``ServerConfiguration``; ``ServerSettings`` reads both from one `config.properties`.
public struct HTTPConfiguration: Sendable {
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
    /// Whether requests need `Authorization: Bearer <key>` (off with `disable_token_authorization`).
    public var tokenAuthorization = true
    /// Minutes inference and management keys live; 0: they never expire.
    public var tokenExpirationMinutes = 0
    /// The model SageMaker's `/invocations` runs when the request names none (`invocations_model`).
    public var invocationsModel: String?
    /// Timeouts, connection caps and the in-flight body bound every listener enforces.
    public var networkLimits = NetworkLimits()

    public init() {}

    /// The HTTP layer's keys of `config.properties`, in the order they are applied and documented.
    public static let keys: [ConfigurationKey<HTTPConfiguration>] = [
        ConfigurationKey<HTTPConfiguration>("inference_address", default: "http://127.0.0.1:8080", "Where the inference API listens.") { config, text, _ throws(ConfigurationError) in
            config.inferenceAddress = try address(text, key: "inference_address")
        },
        ConfigurationKey<HTTPConfiguration>("management_address", default: "http://127.0.0.1:8081", "Where the management API listens.") { config, text, _ throws(ConfigurationError) in
            config.managementAddress = try address(text, key: "management_address")
        },
        ConfigurationKey<HTTPConfiguration>("metrics_address", default: "http://127.0.0.1:8082", "Where the Prometheus metrics listen.") { config, text, _ throws(ConfigurationError) in
            config.metricsAddress = try address(text, key: "metrics_address")
        },
        .boolean("disable_token_authorization", default: "false", "Turns off the Bearer keys of `key_file.json`.") { $0.tokenAuthorization = !$1 },
        .integer("token_expiration_min", 0...(60 * 24 * 365), default: "0 (never)", "Minutes the inference and management keys live.") { $0.tokenExpirationMinutes = $1 },
        ConfigurationKey<HTTPConfiguration>("invocations_model", default: "the only model",
                         "The model SageMaker's `/invocations` runs when the request names none.") { config, text, _ in
            let name = text.trimmingCharacters(in: .whitespaces)
            if !name.isEmpty { config.invocationsModel = name }
        },
        .integer("connection_idle_timeout", 1...86_400, default: "75",
               "Seconds a connection with no request under way (before its first head, or kept alive between requests) stays open.") {
            $0.networkLimits.idleTimeout = .seconds($1)
        },
        .integer("request_read_timeout", 1...3600, default: "30",
               "Seconds a request head may take from its first byte (else 408), and the longest pause in a body (else it is cut with 408).") {
            $0.networkLimits.readTimeout = .seconds($1)
        },
        .integer("min_request_body_rate", 0...Int(Int32.max), default: "1024",
               "Bytes per second a body must average after `request_body_rate_grace` (else it is cut with 408); 0 turns the check off.") {
            $0.networkLimits.minBodyRate = $1
        },
        .integer("request_body_rate_grace", 0...3600, default: "10", "Seconds a body may take before its rate is checked.") {
            $0.networkLimits.bodyRateGrace = .seconds($1)
        },
        .integer("max_connections", 1...1_000_000, default: "1000 per listener, less where the open-file limit (raised to its hard limit at start) is lower",
               "Open connections per listener; beyond it only health probes are answered (503 and close for the rest).") {
            $0.networkLimits.maxConnections = $1
        },
        .integer("health_connection_reserve", 0...10_000, default: "16",
               "Connections per listener past `max_connections` that may still ask `GET /ping` or the KServe health routes; beyond them a connection is closed at once.") {
            $0.networkLimits.healthConnectionReserve = $1
        },
        .integer("max_inflight_body_bytes", 1...(1 << 50), default: "the larger of 512 MiB and 16 × max_request_size",
               "Request body bytes held, over all listeners, for requests not yet answered; a request that would pass it gets 503.") {
            $0.networkLimits.maxInflightBodyBytes = $1
        },

    ]

    /// Applies the environment variables a platform sets whatever the config file says:
    /// SageMaker's `SAGEMAKER_BIND_TO_PORT` moves the inference listener to that port on all
    /// interfaces, where SageMaker's router reaches it.
    public mutating func applyPlatformEnvironment(_ environment: [String: String]) throws(ConfigurationError) {
        if let text = environment["SAGEMAKER_BIND_TO_PORT"] {
            guard let port = Int(text.trimmingCharacters(in: .whitespaces)), (1...65535).contains(port) else {
                throw ConfigurationError(key: "SAGEMAKER_BIND_TO_PORT", message: "'\(text)' is not a port number in 1...65535")
            }
            inferenceAddress = Address(host: "0.0.0.0", port: port)
        }
    }

    /// The bound on request body bytes held in flight (``NetworkLimits/inflightBodyLimit(maxRequestSize:)``).
    public func inflightBodyLimit(maxRequestSize: Int) -> Int {
        networkLimits.inflightBodyLimit(maxRequestSize: maxRequestSize)
    }

    private static func address(_ text: String, key: String) throws(ConfigurationError) -> Address {
        do { return try Address(parsing: text) } catch { throw ConfigurationError(key: key, message: error.message) }
    }
}

extension HTTPConfiguration {
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

        /// The bound on request body bytes held in flight: `max_inflight_body_bytes`, else the
        /// larger of 512 MiB and 16 × `max_request_size`.
        public func inflightBodyLimit(maxRequestSize: Int) -> Int {
            maxInflightBodyBytes ?? max(512 << 20, 16 * maxRequestSize)
        }

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
}
