import Foundation
import Hummingbird
import HummingbirdTesting
import ImageCodec
import ServerCore
import Prometheus
import ServerHTTP
import ServerTestSupport
import TestFixtures
import Testing

/// A request whose client closed its connection while it waited in the queue is dropped
/// before any compute, through a real server, real sockets and real libtorch.
@Suite struct ClientDisconnectTests {
    @Test func aQueuedRequestWhoseClientLeftIsDroppedBeforeCompute() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        let registry = PrometheusCollectorRegistry()
        let server = store.makeServer(registry: registry)
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "unet_tiny"))
        let png = try Fixtures.bytes("images/rgb.png")
        let app = HTTPServer.inferenceApplication(server: server, host: "127.0.0.1", port: 0, logger: quietLogger)
        // An 8192 x 8192 image (a small PNG that takes the worker a good fraction of a second to
        // decode) keeps the single worker busy while the others queue, however fast the machine.
        let slow = try Image(width: 8192, height: 8192, format: .gray8, pixels: [UInt8](repeating: 90, count: 8192 * 8192))
            .encodedPNG(compressionLevel: 9)
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let busy = try RawConnection(port: port)
            try busy.send(RawConnection.post("/predictions/unet_tiny", body: slow))
            // Thirty requests queue behind the single worker...
            var waiting: [RawConnection] = [busy]
            for _ in 0..<30 {
                let connection = try RawConnection(port: port)
                try connection.send(RawConnection.post("/predictions/unet_tiny", body: png))
                waiting.append(connection)
            }
            let queued = try await eventually { try server.describe(model: "unet_tiny")[0].pendingRequests >= 10 }
            #expect(queued, "requests should be queued behind the worker")
            // ...then one more arrives and its client hangs up at once.
            let leaving = try RawConnection(port: port)
            try leaving.send(RawConnection.post("/predictions/unet_tiny", body: png))
            leaving.close()

            for connection in waiting {
                let response = await connection.readToEnd()
                #expect(response.hasPrefix("HTTP/1.1 200"), "\(response.prefix(200))")
                connection.close()
            }
            let model = "model_name=\"unet_tiny\",model_version=\"1.0\""
            #expect(try await eventually { registry.emitToString().contains("ts_requests_dropped_total{\(model),reason=\"disconnected\"} 1") })
            let text = registry.emitToString()
            // Thirty-one forward passes: none for the request whose client left.
            #expect(text.contains("ts_stage_duration_seconds_count{\(model),stage=\"forward\"} 31"), "\(text)")
            #expect(text.contains("ts_stage_duration_seconds_count{\(model),stage=\"decode\"} 31"))
        }
    }
}

/// A plain blocking TCP connection to 127.0.0.1, for what an HTTP client library hides:
/// hanging up right after sending.
final class RawConnection: @unchecked Sendable {
    private let socketFD: Int32

    init(port: Int) throws {
        socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socketFD >= 0 else { throw POSIXError(.EIO) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socketFD, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            Glibc.close(socketFD)
            throw POSIXError(.ECONNREFUSED)
        }
    }

    /// A complete HTTP/1.1 POST that asks the server to close after answering.
    static func post(_ path: String, body: [UInt8]) -> [UInt8] {
        Array("POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8) + body
    }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(socketFD, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { throw POSIXError(.EPIPE) }
            offset += sent
        }
    }

    /// Everything the server sends until it closes, read on a thread of its own so no task blocks.
    func readToEnd() async -> String {
        await withCheckedContinuation { continuation in
            let thread = Thread { [socketFD] in
                var received: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 65536)
                while true {
                    let count = chunk.withUnsafeMutableBytes { recv(socketFD, $0.baseAddress, $0.count, 0) }
                    if count <= 0 { break }
                    received += chunk[0..<count]
                }
                continuation.resume(returning: String(decoding: received, as: UTF8.self))
            }
            thread.start()
        }
    }

    func close() {
        Glibc.close(socketFD)
    }
}
