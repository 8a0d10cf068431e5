import ModelArchive
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// Fetches the image a prediction names by URL, deny by default.
///
/// The URL must match `allowed_urls` (the check registration URLs pass) and be `http` or
/// `https`. Its host is resolved once, here; every address it resolves to must be permitted
/// (``FetchAddressPolicy``: no loopback, private, link-local or other special-use address unless
/// `allowed_fetch_addresses` lists it), and the connection goes to a checked address, so a name
/// server cannot answer differently between the check and the connection. Redirects are not
/// followed. The answer must be 2xx, at most `max_request_size` bytes (read no further), and a
/// PNG or JPEG by its bytes. All of it ends by the request's deadline.
struct ImageFetcher: Sendable {
    /// `allowed_urls`, whole match and any case.
    let isAllowed: @Sendable (String) -> Bool
    /// Which resolved addresses may be connected to.
    let addresses: FetchAddressPolicy
    /// `max_request_size`: the largest image fetched, in bytes.
    let sizeLimit: Int
    /// The longest one connection attempt may take (less when the deadline is nearer).
    var connectTimeout: Duration = .seconds(5)
    private let tls = TLSContextCache()

    init(isAllowed: @escaping @Sendable (String) -> Bool, addresses: FetchAddressPolicy, sizeLimit: Int) {
        self.isAllowed = isAllowed
        self.addresses = addresses
        self.sizeLimit = sizeLimit
    }

    /// The image at `text`.
    /// - Throws: an ``ImageFetchFailure`` naming what failed and the host.
    func fetch(_ text: String, deadline: ContinuousClock.Instant) async throws(ImageFetchFailure) -> [UInt8] {
        guard isAllowed(text) else {
            throw ImageFetchFailure(.urlNotAllowed,
                                    "url '\(Excerpt.of(text))' matches no allowed_urls pattern; images are fetched only from URLs that allowed_urls in config.properties admits")
        }
        let url = try ImageURL(text)
        let resolved = try await resolve(url, deadline: deadline)
        guard resolved.allSatisfy(addresses.permits) else {
            throw ImageFetchFailure(.addressNotAllowed,
                                    "host \(Excerpt.of(url.host)) resolves to a loopback, private, link-local or other special-use address; list it in allowed_fetch_addresses in config.properties to fetch images from it")
        }
        let channel = try await connect(url, to: resolved, deadline: deadline)
        let bytes = try await exchange(over: channel, url: url, deadline: deadline)
        guard ModelSignature.HandlerInput.isEncodedImage(bytes) else {
            throw ImageFetchFailure(.notImage, "the answer of host \(Excerpt.of(url.host)) (\(bytes.count) bytes) is not a PNG or JPEG image")
        }
        return bytes
    }

    /// The addresses of the URL's host, resolved on the thread pool, by the deadline.
    private func resolve(_ url: ImageURL, deadline: ContinuousClock.Instant) async throws(ImageFetchFailure) -> [IPAddress] {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let promise = loop.makePromise(of: [IPAddress].self)
        let host = url.host
        NIOThreadPool.singleton.runIfActive(eventLoop: loop) { try AddressResolver.resolve(host) }.cascade(to: promise)
        // A name server that does not answer holds a pool thread, never the request.
        let timer = loop.scheduleTask(deadline: Self.nioDeadline(deadline)) { promise.fail(DeadlinePassed()) }
        defer { timer.cancel() }
        do {
            return try await promise.futureResult.get()
        } catch is DeadlinePassed {
            throw deadlineFailure(url)
        } catch {
            throw ImageFetchFailure(.unresolved, "host \(Excerpt.of(url.host)) could not be resolved; check the url")
        }
    }

    /// A connection to the first checked address that accepts one, through TLS for `https`.
    private func connect(_ url: ImageURL, to resolved: [IPAddress],
                         deadline: ContinuousClock.Instant) async throws(ImageFetchFailure) -> NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart> {
        var context: NIOSSLContext?
        if url.isHTTPS {
            do {
                context = try tls.context()
            } catch {
                throw ImageFetchFailure(.unreachable, "https to host \(Excerpt.of(url.host)) is unavailable: the server could not set up TLS")
            }
        }
        let serverName = url.serverName
        for address in resolved {
            let remaining = ContinuousClock.now.duration(to: deadline)
            guard remaining > .zero else { break }
            guard let socketAddress = try? address.socketAddress(port: url.port) else { continue }
            do {
                return try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .connectTimeout(.nanoseconds(nanoseconds(min(connectTimeout, remaining))))
                    .connect(to: socketAddress) { [context] channel in
                        channel.eventLoop.makeCompletedFuture {
                            if let context {
                                try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: serverName))
                            }
                            try channel.pipeline.syncOperations.addHTTPClientHandlers()
                            return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                        }
                    }
            } catch {
                continue
            }
        }
        if ContinuousClock.now >= deadline { throw deadlineFailure(url) }
        throw ImageFetchFailure(.unreachable, "could not connect to host \(Excerpt.of(url.host)) on port \(url.port)")
    }

    /// Sends the GET and reads a 2xx answer's body, up to the size limit and the deadline; the
    /// connection is closed afterwards either way.
    private func exchange(over channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>, url: ImageURL,
                          deadline: ContinuousClock.Instant) async throws(ImageFetchFailure) -> [UInt8] {
        let timedOut = Flag()
        let connection = channel.channel
        let timer = connection.eventLoop.scheduleTask(deadline: Self.nioDeadline(deadline)) {
            timedOut.raise()
            connection.close(promise: nil)
        }
        defer { timer.cancel() }
        let host = Excerpt.of(url.host)
        let limit = sizeLimit
        do {
            return try await channel.executeThenClose { inbound, outbound in
                var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: url.target)
                head.headers.add(name: "Host", value: url.hostHeader)
                head.headers.add(name: "User-Agent", value: "swift-model-server")
                head.headers.add(name: "Accept", value: "image/png, image/jpeg")
                head.headers.add(name: "Connection", value: "close")
                // A host may answer and close as soon as it has the head; whether the write then
                // reports an error or not, the answer (or its absence) is in what is read.
                try? await outbound.write(contentsOf: [.head(head), .end(nil)])
                var answered = false
                var body: [UInt8] = []
                for try await part in inbound {
                    switch part {
                    case .head(let response):
                        // 1xx answers are interim; the final one follows.
                        guard response.status.code >= 200 else { continue }
                        try Self.check(response, host: host, limit: limit)
                        answered = true
                        if let length = response.headers.first(name: "Content-Length").flatMap(Int.init), length > 0 {
                            body.reserveCapacity(min(length, limit))
                        }
                    case .body(let buffer):
                        guard buffer.readableBytes <= limit - body.count else {
                            throw ImageFetchFailure(.tooLarge, "the image from host \(host) is larger than max_request_size (\(limit) bytes)")
                        }
                        body += buffer.readableBytesView
                    case .end:
                        if answered { return body }
                    }
                }
                throw ImageFetchFailure(.badResponse, "host \(host) closed the connection before its answer was complete")
            }
        } catch let failure as ImageFetchFailure {
            if timedOut.isRaised, failure.reason == .badResponse { throw deadlineFailure(url) }
            throw failure
        } catch {
            if timedOut.isRaised { throw deadlineFailure(url) }
            if error is NIOSSLError || error is BoringSSLError {
                throw ImageFetchFailure(.badResponse, "TLS with host \(host) failed (handshake or certificate)")
            }
            throw ImageFetchFailure(.badResponse, "the connection to host \(host) failed before its answer was complete")
        }
    }

    /// Refuses a redirect, a status other than 2xx, and a `Content-Length` over the limit.
    private static func check(_ response: HTTPResponseHead, host: String, limit: Int) throws(ImageFetchFailure) {
        let code = response.status.code
        if (300..<400).contains(code) {
            let location = response.headers.first(name: "Location").map { " to \(Excerpt.of($0))" } ?? ""
            throw ImageFetchFailure(.redirect, "host \(host) answered \(code), a redirect\(location); redirects are not followed, send the image's final url")
        }
        guard (200..<300).contains(code) else {
            throw ImageFetchFailure(.status, "host \(host) answered \(code) instead of the image")
        }
        if let length = response.headers.first(name: "Content-Length").flatMap(Int.init), length > limit {
            throw ImageFetchFailure(.tooLarge, "the image from host \(host) is \(length) bytes, more than max_request_size (\(limit) bytes)")
        }
    }

    private func deadlineFailure(_ url: ImageURL) -> ImageFetchFailure {
        ImageFetchFailure(.deadline,
                          "fetching the image from host \(Excerpt.of(url.host)) passed the request's deadline (X-Request-Timeout-Ms, capped by the model's responseTimeout)")
    }

    /// `deadline` on NIO's clock.
    private static func nioDeadline(_ deadline: ContinuousClock.Instant) -> NIODeadline {
        .now() + .nanoseconds(max(0, nanoseconds(ContinuousClock.now.duration(to: deadline))))
    }
}

/// The request's deadline passed while a step was waiting.
private struct DeadlinePassed: Error {}

/// Set once, from the event loop, read from the task.
private final class Flag: Sendable {
    private let raised = Atomic<Bool>(false)

    func raise() {
        raised.store(true, ordering: .releasing)
    }

    var isRaised: Bool {
        raised.load(ordering: .acquiring)
    }
}

/// One client TLS context (the system's trust roots, full verification), made on first use.
private final class TLSContextCache: Sendable {
    private let cached = Mutex<NIOSSLContext?>(nil)

    func context() throws -> NIOSSLContext {
        try cached.withLock { cached in
            if let cached { return cached }
            let context = try NIOSSLContext(configuration: .makeClientConfiguration())
            cached = context
            return context
        }
    }
}
