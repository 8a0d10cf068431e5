import Hummingbird
import struct HummingbirdCore.HTTPServerBuilder
import Logging
import ServerCore
import NIOCore
import Synchronization

/// The limits every listener enforces before a request reaches a route, and the state the
/// listeners share: the bound on request body bytes held in flight.
public final class NetworkEdge: Sendable {
    let limits: HTTPConfiguration.NetworkLimits
    /// `max_request_size`: a larger `Content-Length` is answered 413 before the body is read.
    let maxRequestSize: Int
    let bodies: InflightBodies
    let logger: Logger

    /// - Parameters:
    ///   - limits: the timeouts, connection caps and in-flight body bound of the listeners.
    ///   - maxRequestSize: `max_request_size`.
    public init(limits: HTTPConfiguration.NetworkLimits = HTTPConfiguration.NetworkLimits(), maxRequestSize: Int, logger: Logger) {
        self.limits = limits
        self.maxRequestSize = maxRequestSize
        bodies = InflightBodies(limit: limits.inflightBodyLimit(maxRequestSize: maxRequestSize))
        self.logger = logger
    }

    /// Request body bytes held now for requests not yet answered, over all listeners.
    public var inflightBodyBytes: Int { bodies.held }

    /// How often a connection that is reading a request checks its deadlines: a quarter of the
    /// shortest of them, between 5 ms and 1 s.
    var checkInterval: TimeAmount {
        var shortest = limits.readTimeout
        if limits.minBodyRate > 0, limits.bodyRateGrace > .zero { shortest = min(shortest, limits.bodyRateGrace) }
        return TimeAmount(min(max(shortest / 4, .milliseconds(5)), .seconds(1)))
    }

    /// How long a connection the edge closes keeps draining its input after the last response,
    /// so the client reads that response instead of a reset.
    var lingerTime: TimeAmount { TimeAmount(min(limits.readTimeout, .seconds(2))) }

    /// An HTTP/1.1 server whose connections go through the edge's limits; one counter of open
    /// connections per call, that is per listener.
    /// - Parameters:
    ///   - healthPaths: the paths a `GET` may ask on a connection over `max_connections`.
    ///   - additionalChannelHandlers: handlers placed after the edge's, per connection.
    func http1(
        listener: String, healthPaths: Set<String>,
        additionalChannelHandlers: @autoclosure @escaping @Sendable () -> [any RemovableChannelHandler] = []
    ) -> HTTPServerBuilder {
        let gate = ConnectionGate(
            listener: listener, limit: limits.maxConnections, reserve: limits.healthConnectionReserve, logger: logger)
        let handlers: @Sendable () -> [any RemovableChannelHandler] = {
            [EdgeConnectionHandler(edge: self, gate: gate, healthPaths: healthPaths)] + additionalChannelHandlers()
        }
        return .http1(configuration: .init(additionalChannelHandlers: handlers(), idleTimeout: TimeAmount(limits.idleTimeout)))
    }
}

/// Request body bytes received for requests not yet answered, over all connections and
/// listeners, and the bound on them.
final class InflightBodies: Sendable {
    let limit: Int
    private let bytes = Atomic<Int>(0)

    init(limit: Int) {
        self.limit = limit
    }

    var held: Int { bytes.load(ordering: .relaxed) }

    /// Whether `count` more bytes fit now (nothing is taken).
    func fits(_ count: Int) -> Bool {
        count <= limit - held
    }

    /// Takes `count` bytes of the bound; false, taking nothing, when they do not fit.
    func reserve(_ count: Int) -> Bool {
        guard count > 0 else { return true }
        var current = bytes.load(ordering: .relaxed)
        while true {
            guard count <= limit - current else { return false }
            let (exchanged, original) = bytes.compareExchange(
                expected: current, desired: current + count, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
    }

    func release(_ count: Int) {
        guard count > 0 else { return }
        bytes.subtract(count, ordering: .relaxed)
    }
}

/// Counts one listener's open connections and says what a new one may do.
final class ConnectionGate: Sendable {
    /// What a connection may ask, decided when it opens.
    enum Admission {
        /// Anything: the listener is under `max_connections`.
        case full
        /// Only health checks: the listener is over `max_connections`, within the reserve.
        case healthChecksOnly
        /// Nothing: closed at once.
        case refused
    }

    let listener: String
    let limit: Int
    let reserve: Int
    private let open = Atomic<Int>(0)
    /// Whether the cap was reached since the listener last went under it, so that the warning
    /// is logged once per overload and not once per connection.
    private let overloaded = Atomic<Bool>(false)
    private let logger: Logger

    init(listener: String, limit: Int, reserve: Int, logger: Logger) {
        self.listener = listener
        self.limit = limit
        self.reserve = reserve
        self.logger = logger
    }

    var openConnections: Int { open.load(ordering: .relaxed) }

    /// Counts a new connection; `closed()` must follow when it closes, whatever the admission.
    func opened() -> Admission {
        let count = open.add(1, ordering: .relaxed).newValue
        if count <= limit { return .full }
        if !overloaded.exchange(true, ordering: .relaxed) {
            logger.warning("""
                \(listener) listener: \(count) open connections, over max_connections=\(limit): only health checks are \
                answered on new connections, and beyond \(limit + reserve) they are closed at once
                """)
        }
        return count <= limit + reserve ? .healthChecksOnly : .refused
    }

    func closed() {
        let count = open.subtract(1, ordering: .relaxed).newValue
        // Some room below the cap, so that a listener at the edge of it does not log each crossing.
        if count < limit - limit / 10, overloaded.exchange(false, ordering: .relaxed) {
            logger.notice("\(listener) listener: back under max_connections=\(limit)")
        }
    }
}
