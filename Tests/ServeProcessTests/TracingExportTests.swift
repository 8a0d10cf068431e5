import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Hummingbird
import HummingbirdTesting
import ServerTestSupport
import SwiftProtobuf
import Synchronization
import TestFixtures
import Testing

/// `serve` with `enable_tracing=true` exports its spans over OTLP/HTTP (protobuf) to a receiver
/// on loopback: the span tree of one request that continues a client's trace, and of two
/// requests batched into one forward pass.
@Suite(.serialized) struct TracingExportTests {
    /// The spans a stand-in OTLP/HTTP collector received on `POST /v1/traces`, and the resources they came with.
    final class Collector: Sendable {
        private let received = Mutex<(spans: [Otlp_Span], resources: [Otlp_Resource])>(([], []))

        var spans: [Otlp_Span] { received.withLock { $0.spans } }
        var resources: [Otlp_Resource] { received.withLock { $0.resources } }

        func router() -> Router<BasicRequestContext> {
            let router = Router()
            router.post("/v1/traces") { request, _ -> Response in
                var request = request
                let body = try await request.collectBody(upTo: 16 << 20)
                let export = try Otlp_ExportTraceServiceRequest(serializedBytes: Array(buffer: body))
                self.received.withLock { received in
                    for resourceSpans in export.resourceSpans {
                        received.resources.append(resourceSpans.resource)
                        received.spans += resourceSpans.scopeSpans.flatMap(\.spans)
                    }
                }
                // An empty ExportTraceServiceResponse: everything accepted.
                return Response(status: .ok, headers: [.contentType: "application/x-protobuf"])
            }
            return router
        }
    }

    /// A client's trace to continue: W3C `traceparent` with a random trace and parent span id.
    struct ClientTrace {
        let traceID = Data((0..<16).map { _ in UInt8.random(in: 0...255) })
        let parentID = Data((0..<8).map { _ in UInt8.random(in: 0...255) })

        var traceparent: String { "00-\(hex(traceID))-\(hex(parentID))-01" }
    }

    static let pairConfig = """
        minWorkers: 1
        batchSize: 2
        maxBatchDelay: 5000
        handler:
          kind: image_segmenter
          inputSize: [96, 128]
          numClasses: 5
        """

    @Test func spansOfOneRequestAndOfABatchedPairReachTheCollector() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        try store.addFolderArchive(name: "unet_pair", model: "models/unet_tiny.pt", config: Self.pairConfig)
        let collector = Collector()
        let receiver = Application(router: collector.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                                   logger: quietLogger)
        try await receiver.test(.live) { client in
            let collectorPort = try #require(client.port)
            let serve = try ServeProcessTests.ServeProcess(
                models: "unet_tiny,unet_pair", config: "enable_tracing=true", store: store,
                environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:\(collectorPort)", "OTEL_BSP_SCHEDULE_DELAY": "100"])
            defer { serve.stop() }
            _ = try await serve.waitForListener()
            try await waitForReady(serve)
            let image = try Fixtures.bytes("images/rgb.png")

            // One request that continues the client's trace.
            let single = ClientTrace()
            let answer = await predict(serve, model: "unet_tiny", body: image, trace: single)
            #expect(answer == 200, "\(serve.logText)")

            // Two at once to the model that batches two: one forward pass for both.
            let pair = (ClientTrace(), ClientTrace())
            async let first = predict(serve, model: "unet_pair", body: image, trace: pair.0)
            async let second = predict(serve, model: "unet_pair", body: image, trace: pair.1)
            let statuses = await [first, second]
            #expect(statuses == [200, 200], "\(serve.logText)")

            // The exporter batches every 100 ms; wait for the three server spans and both forwards.
            let exported = try await eventually(30) {
                let spans = collector.spans
                let servers = spans.filter { $0.kind == .server }.count
                let forwards = spans.filter { $0.name == "forward" }.count
                return servers >= 3 && forwards >= 2
            }
            let spans = collector.spans
            try #require(exported, "spans received: \(spans.map(\.name))\n\(serve.logText)")

            #expect(collector.resources.contains { $0.attributes.string("service.name") == "swift-model-server" })

            // The single request: its server span continues the client's trace, the stages are its children.
            let server = try #require(spans.first { $0.kind == .server && $0.traceID == single.traceID })
            #expect(server.parentSpanID == single.parentID)
            #expect(server.name == "POST /predictions/{model_name}")
            #expect(server.attributes.int("http.response.status_code") == 200)
            #expect(server.attributes.string("http.request.method") == "POST")
            #expect(server.attributes.string("http.route") == "/predictions/{model_name}")
            let children = spans.filter { $0.traceID == single.traceID && $0.parentSpanID == server.spanID }
            #expect(Set(children.map(\.name)) == ["decode", "queue", "preprocess", "postprocess", "encode"])
            for child in children {
                #expect(child.attributes.string("model.name") == "unet_tiny")
                #expect(child.startTimeUnixNano >= server.startTimeUnixNano && child.endTimeUnixNano <= server.endTimeUnixNano,
                        "\(child.name) lies outside the server span")
            }
            let singleForwards = spans.filter { $0.name == "forward" && $0.links.contains { $0.spanID == server.spanID } }
            #expect(singleForwards.count == 1)
            if let forward = singleForwards.first {
                #expect(forward.parentSpanID.isEmpty, "a forward pass has no parent of its own request")
                #expect(forward.links.count == 1)
                #expect(forward.links.first?.traceID == single.traceID)
                #expect(forward.attributes.string("model.name") == "unet_tiny")
                #expect(forward.attributes.string("model.version") == "1.0")
                #expect(forward.attributes.int("model.batch_size") == 1)
                #expect(forward.attributes.string("model.device") == "cpu")
            }

            // The pair: two server spans in their own traces, one forward span linked to both.
            let pairServers = try [pair.0, pair.1].map { trace in
                try #require(spans.first { $0.kind == .server && $0.traceID == trace.traceID && $0.parentSpanID == trace.parentID })
            }
            let pairForwards = spans.filter { span in
                span.name == "forward" && pairServers.contains { server in span.links.contains { $0.spanID == server.spanID } }
            }
            #expect(pairForwards.count == 1, "\(pairForwards.map { $0.attributes.int("model.batch_size") })")
            if let forward = pairForwards.first {
                #expect(forward.attributes.int("model.batch_size") == 2)
                #expect(forward.attributes.string("model.name") == "unet_pair")
                #expect(Set(forward.links.map(\.spanID)) == Set(pairServers.map(\.spanID)))
                #expect(Set(forward.links.map(\.traceID)) == [pair.0.traceID, pair.1.traceID])
            }
            for server in pairServers {
                let names = spans.filter { $0.traceID == server.traceID && $0.parentSpanID == server.spanID }.map(\.name)
                #expect(Set(names) == ["decode", "queue", "preprocess", "postprocess", "encode"])
            }
        }
    }

    /// Polls `/ping` until both models are ready.
    private func waitForReady(_ serve: ServeProcessTests.ServeProcess) async throws {
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline && serve.process.isRunning {
            if await serve.get("/ping")?.status == 200 { return }
            try await Task.sleep(for: .milliseconds(200))
        }
        Issue.record("serve did not become ready:\n\(serve.logText)")
        throw CancellationError()
    }

    /// `POST /predictions/{model}` with the client's `traceparent`; the status, or 0 when the connection failed.
    private func predict(_ serve: ServeProcessTests.ServeProcess, model: String, body: [UInt8], trace: ClientTrace) async -> Int {
        guard let url = URL(string: "http://127.0.0.1:\(serve.inferencePort)/predictions/\(model)") else { return 0 }
        var request = URLRequest(url: url)
        request.httpMethod = "POST"
        request.httpBody = Data(body)
        request.timeoutInterval = 60
        request.setValue(trace.traceparent, forHTTPHeaderField: "traceparent")
        guard let (_, response) = try? await URLSession.shared.data(for: request) else { return 0 }
        return (response as? HTTPURLResponse)?.statusCode ?? 0
    }
}

private func hex(_ bytes: Data) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}

extension [Otlp_KeyValue] {
    func string(_ key: String) -> String? {
        first { $0.key == key }.flatMap { if case .stringValue(let value) = $0.value.value { value } else { nil } }
    }

    func int(_ key: String) -> Int64? {
        first { $0.key == key }.flatMap { if case .intValue(let value) = $0.value.value { value } else { nil } }
    }
}
