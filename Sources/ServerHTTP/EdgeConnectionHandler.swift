import Hummingbird
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// Sits in each HTTP/1 connection's pipeline, after the decoder, and enforces the network
/// edge's limits on it: the listener's connection cap (health checks only past it), the read
/// timeout and minimum rate of request heads and bodies, the bound on body bytes in flight,
/// and a JSON 400 for malformed requests. What it answers itself it answers with `Connection:
/// close`, then half-closes, drains the input briefly so the client reads the answer, and closes.
///
/// Time is counted only while the server waits for the client: when a route stops reading
/// (back-pressure), the clock of the request stops too.
final class EdgeConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// Where the connection is in reading its current request.
    private enum Phase {
        /// Between requests: no byte of the next one yet (Hummingbird's idle timeout applies).
        case idle
        /// The first bytes of a head arrived, at `started` on the waiting clock.
        case head(started: TimeAmount)
        /// The head went to the route; the body is arriving.
        case body(Body)
        /// The edge answered or cut the connection: input is dropped until it closes.
        case closing
    }

    private struct Body {
        var started: TimeAmount
        var lastProgress: TimeAmount
        var bytes = 0
        /// `Content-Length`; nil for a chunked body.
        var declaredLength: Int?
    }

    private let edge: NetworkEdge
    private let gate: ConnectionGate
    private let healthPaths: Set<String>
    private var admission = ConnectionGate.Admission.full
    private var phase = Phase.idle
    /// Body bytes received and counted in the in-flight bound for each request whose head went
    /// to the route and whose response has not ended, oldest first (HTTP/1.1 answers in order).
    private var unanswered = CircularBuffer<Int>(initialCapacity: 2)
    /// The path of the request being read, for the shape of an answer written here.
    private var path: String?
    /// The `X-Request-Id` of the request being read, echoed by answers given here.
    private var requestID: String?
    /// An answer that must wait for the responses to earlier requests.
    private var pendingAnswer: APIError?
    /// Close once every request that reached a route is answered.
    private var closeAfterResponses = false
    private var lingering = false
    /// This handler's place in the pipeline, for what the `ByteWatcher` reports.
    private var context: ChannelHandlerContext?
    private var check: Scheduled<Void>?
    /// A deadline was found passed; it is acted on if it still is after the event loop has
    /// polled the socket once more (a busy loop may run the check before reading bytes that
    /// arrived in time).
    private var deadlinePassed = false
    private var forcedClose: Scheduled<Void>?
    /// Why the edge cut the request a route is reading: answered here if the route has not
    /// begun its response when the forced close comes.
    private var cutError: APIError?
    /// The route began the response to the oldest unanswered request.
    private var responseStarted = false
    /// The edge answered a cut request itself: what the route writes later is dropped.
    private var answeredForRoute = false

    // The waiting clock: time during which the server asked for input and none came yet.
    private var waiting = false
    private var waitingSince = NIODeadline.now()
    private var waitedBefore = TimeAmount.zero

    init(edge: NetworkEdge, gate: ConnectionGate, healthPaths: Set<String>) {
        self.edge = edge
        self.gate = gate
        self.healthPaths = healthPaths
    }

    // MARK: Connection

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // The raw bytes, before the decoder, tell when a head starts and that a body is moving.
        try? context.pipeline.syncOperations.addHandler(ByteWatcher(edge: self), position: .first)
        admission = gate.opened()
        context.channel.closeFuture.whenComplete { [gate] _ in gate.closed() }
        if admission == .refused, context.channel.isActive { context.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        check?.cancel()
        forcedClose?.cancel()
        while let reserved = unanswered.popFirst() { edge.bodies.release(reserved) }
    }

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        if admission == .refused { context.close(promise: nil) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if lingering, let event = event as? ChannelEvent, event == .inputClosed {
            context.close(promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    // MARK: Input

    func read(context: ChannelHandlerContext) {
        if !waiting {
            waiting = true
            waitingSince = .now()
        }
        context.read()
    }

    /// Raw bytes arrived (called by the `ByteWatcher` before they are decoded).
    /// - Returns: whether to pass them on to the decoder.
    fileprivate func bytesArrived() -> Bool {
        let now = waited()
        if waiting {
            waitedBefore = now
            waiting = false
        }
        switch phase {
        case .idle:
            phase = .head(started: now)
            deadlinePassed = false
            if let context { scheduleCheck(context: context) }
        case .body(var body):
            body.lastProgress = now
            phase = .body(body)
        case .head:
            break
        case .closing:
            return false
        }
        return true
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            switch phase {
            case .idle, .head: receivedHead(head, context: context, data: data)
            case .body, .closing: return
            }
        case .body(let buffer):
            guard case .body(var body) = phase else { return }
            body.bytes += buffer.readableBytes
            phase = .body(body)
            // Counted while the request is unanswered; a route that answered early discards the rest.
            if !unanswered.isEmpty {
                guard edge.bodies.reserve(buffer.readableBytes) else {
                    cut(.bodiesInFlight(limit: edge.bodies.limit, declared: body.declaredLength), context: context)
                    return
                }
                unanswered[unanswered.index(before: unanswered.endIndex)] += buffer.readableBytes
            }
            context.fireChannelRead(data)
        case .end:
            guard case .body = phase else { return }
            phase = .idle
            check?.cancel()
            check = nil
            context.fireChannelRead(data)
        }
    }

    private func receivedHead(_ head: HTTPRequest, context: ChannelHandlerContext, data: NIOAny) {
        let now = waited()
        let path = head.path.map { target in String(target.prefix { $0 != "?" }) }
        self.path = path
        requestID = HeaderName.requestID.flatMap { head.headerFields[$0] }
        var body = Body(started: now, lastProgress: now)
        phase = .body(body)
        deadlinePassed = false
        if admission == .healthChecksOnly {
            guard head.method == .get, let path, healthPaths.contains(path) else {
                answer(.tooManyConnections(limit: gate.limit), context: context)
                return
            }
            closeAfterResponses = true
        }
        if let text = head.headerFields[.contentLength], let length = Int(text), length > 0 {
            guard length <= edge.maxRequestSize else {
                answer(.declaredTooLarge(length, limit: edge.maxRequestSize), context: context)
                return
            }
            // Refused before a byte is read when it cannot fit; counted as its bytes arrive, so
            // that a slow sender holds only what it sent.
            guard edge.bodies.fits(length) else {
                answer(.bodiesInFlight(limit: edge.bodies.limit, declared: length), context: context)
                return
            }
            body.declaredLength = length
            phase = .body(body)
        }
        unanswered.append(0)
        scheduleCheck(context: context)
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch phase {
        case .closing:
            // The decoder's complaints about input after the edge answered are nobody's business.
            if error is HTTPParserError { return }
        case .idle, .head:
            if let error = error as? HTTPParserError {
                answer(.malformed(error), context: context)
                return
            }
        case .body:
            if let parserError = error as? HTTPParserError {
                // The route reading the body answers 400 (`EdgeErrorMiddleware`); then close.
                if unanswered.isEmpty {
                    context.close(promise: nil)
                    return
                }
                phase = .closing
                closeAfterResponses = true
                cutError = .malformed(parserError)
                scheduleForcedClose(context: context)
            }
        }
        context.fireErrorCaught(error)
    }

    // MARK: Output

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !answeredForRoute else {
            promise?.fail(ChannelError.outputClosed)
            return
        }
        switch unwrapOutboundIn(data) {
        case .head(var response) where response.status.kind != .informational:
            responseStarted = true
            if closeAfterResponses, unanswered.count <= 1, pendingAnswer == nil {
                response.headerFields[.connection] = "close"
                context.write(wrapOutboundOut(.head(response)), promise: promise)
            } else {
                context.write(data, promise: promise)
            }
        case .head, .body:
            context.write(data, promise: promise)
        case .end:
            responseStarted = false
            if let reserved = unanswered.popFirst() { edge.bodies.release(reserved) }
            guard unanswered.isEmpty, pendingAnswer != nil || closeAfterResponses else {
                context.write(data, promise: promise)
                return
            }
            let written = context.eventLoop.makePromise(of: Void.self)
            if let promise { written.futureResult.cascade(to: promise) }
            context.writeAndFlush(data, promise: written)
            if let pendingAnswer {
                self.pendingAnswer = nil
                send(pendingAnswer, context: context)
            } else {
                written.futureResult.assumeIsolated().whenComplete { _ in self.linger(context: context) }
            }
        }
    }

    // MARK: Limits

    /// Answers the current request here, without passing it on, and closes the connection.
    private func answer(_ error: APIError, context: ChannelHandlerContext) {
        phase = .closing
        check?.cancel()
        check = nil
        edge.logger.debug("\(gate.listener) connection answered at the edge: \(error.status.code) \(error.message)")
        if unanswered.isEmpty {
            send(error, context: context)
        } else {
            pendingAnswer = error
        }
    }

    /// Cuts a request whose head reached a route: the route reading the body gets `error` as
    /// a failure of the body (and answers it, when it has not answered yet); then the
    /// connection closes.
    private func cut(_ error: APIError, context: ChannelHandlerContext) {
        phase = .closing
        check?.cancel()
        check = nil
        edge.logger.debug("\(gate.listener) request cut at the edge: \(error.message)")
        guard !unanswered.isEmpty else {
            context.close(promise: nil)
            return
        }
        closeAfterResponses = true
        cutError = error
        context.fireErrorCaught(EdgeRequestError(apiError: error))
        scheduleForcedClose(context: context)
    }

    private func send(_ error: APIError, context: ChannelHandlerContext) {
        let body = error.body(path: path)
        var fields = error.headers
        fields[.contentType] = "application/json"
        fields[.contentLength] = "\(body.readableBytes)"
        fields[.connection] = "close"
        if let name = HeaderName.requestID { fields[name] = HeaderName.requestID(from: requestID) }
        context.write(wrapOutboundOut(.head(HTTPResponse(status: error.status, headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
        written.futureResult.assumeIsolated().whenComplete { _ in self.linger(context: context) }
    }

    /// Half-closes after the last answer and drains the input a moment, so the client reads
    /// the answer before the close (closing with unread input would send a reset instead).
    private func linger(context: ChannelHandlerContext) {
        guard !lingering else { return }
        lingering = true
        phase = .closing
        context.close(mode: .output, promise: nil)
        forcedClose?.cancel()
        forcedClose = context.eventLoop.assumeIsolated().scheduleTask(in: edge.lingerTime) {
            context.close(promise: nil)
        }
    }

    /// Closes a cut connection whose route does not answer within the linger time. When the
    /// route has not begun the response to the only request left (a busy server may take
    /// longer to run it than the linger time), the edge answers it with the cut's error first,
    /// so the client learns why in place of finding the connection closed.
    private func scheduleForcedClose(context: ChannelHandlerContext) {
        forcedClose?.cancel()
        forcedClose = context.eventLoop.assumeIsolated().scheduleTask(in: edge.lingerTime + edge.checkInterval) {
            guard !self.lingering, !self.responseStarted, self.unanswered.count == 1, let error = self.cutError else {
                context.close(promise: nil)
                return
            }
            self.answeredForRoute = true
            self.closeAfterResponses = false
            if let reserved = self.unanswered.popFirst() { self.edge.bodies.release(reserved) }
            self.send(error, context: context)
        }
    }

    /// The waiting clock now.
    private func waited() -> TimeAmount {
        waiting ? waitedBefore + (.now() - waitingSince) : waitedBefore
    }

    private func scheduleCheck(context: ChannelHandlerContext, in delay: TimeAmount? = nil) {
        guard check == nil else { return }
        check = context.eventLoop.assumeIsolated().scheduleTask(in: delay ?? edge.checkInterval) {
            self.check = nil
            self.checkDeadlines(context: context)
        }
    }

    private func checkDeadlines(context: ChannelHandlerContext) {
        guard let verdict = passedDeadline() else {
            deadlinePassed = false
            switch phase {
            case .head, .body: scheduleCheck(context: context)
            case .idle, .closing: break
            }
            return
        }
        guard deadlinePassed else {
            // Once more after the next poll of the socket: a task scheduled now runs after it.
            deadlinePassed = true
            scheduleCheck(context: context, in: .zero)
            return
        }
        switch verdict {
        case .answer(let error): answer(error, context: context)
        case .cut(let error): cut(error, context: context)
        }
    }

    private enum Verdict {
        /// Nothing of the request reached a route: answer it here.
        case answer(APIError)
        /// The head reached a route: the body fails with the error.
        case cut(APIError)
    }

    /// The deadline the request being read has passed, if any.
    private func passedDeadline() -> Verdict? {
        let now = waited()
        let limits = edge.limits
        let readTimeout = TimeAmount(limits.readTimeout)
        switch phase {
        case .head(let started):
            if now - started >= readTimeout { return .answer(.headTimeout(limits.readTimeout)) }
        case .body(let body):
            if now - body.lastProgress >= readTimeout { return .cut(.bodyStalled(limits.readTimeout)) }
            let elapsed = Duration(now - body.started)
            if limits.minBodyRate > 0, elapsed >= limits.bodyRateGrace, elapsed > .zero,
               Double(body.bytes) < Double(limits.minBodyRate) * (elapsed / .seconds(1)) {
                return .cut(.bodyTooSlow(bytes: body.bytes, elapsed: elapsed, minimum: limits.minBodyRate))
            }
        case .idle, .closing:
            break
        }
        return nil
    }
}

@available(*, unavailable)
extension EdgeConnectionHandler: Sendable {}

/// First in the pipeline: tells the connection's `EdgeConnectionHandler` when raw bytes
/// arrive, which the decoder does not (a partial head yields nothing), and drops the input
/// of a connection the edge is closing.
private final class ByteWatcher: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let edge: EdgeConnectionHandler

    init(edge: EdgeConnectionHandler) {
        self.edge = edge
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if edge.bytesArrived() {
            context.fireChannelRead(data)
        }
    }
}

@available(*, unavailable)
extension ByteWatcher: Sendable {}
