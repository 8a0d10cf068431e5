import Hummingbird
import ServerCore
import NIOCore

/// A request context that keeps the connection's channel, so a prediction can learn when its
/// client goes away (Hummingbird does not cancel a handler when the connection closes).
public struct ConnectionRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The connection the request came on.
    let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// The connection's open/closed state, which the core checks before running a queued request.
    var clientConnection: ClientConnection? {
        get async {
            try? await channel.pipeline.handler(type: ClientConnectionWatcher.self).map(\.connection).get()
        }
    }
}

/// Sits in each HTTP/1 connection's pipeline and closes its `ClientConnection` when the client's
/// input ends (the server allows half-closure, so a client's close shows as input closed, not
/// as an inactive channel) or the connection drops.
final class ClientConnectionWatcher: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    /// Passed through unchanged; the watcher only looks at events.
    typealias InboundIn = NIOAny

    let connection = ClientConnection()

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            connection.close()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.close()
        context.fireChannelInactive()
    }
}
