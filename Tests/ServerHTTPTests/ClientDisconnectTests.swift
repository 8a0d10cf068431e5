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
