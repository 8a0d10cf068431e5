import Foundation
import GRPCCore
import InMemoryTracing
@testable import ServerGRPC
import ServerCore
import ServerTestSupport
import TestFixtures
import Testing
import Tracing

/// A gRPC call carrying its client's trace context gets a server span that continues that trace,
/// and the core's stage spans of the request are that span's children, as for HTTP.
@Suite struct GRPCTracingTests {
    /// Writes a propagation field into a dictionary (then turned into gRPC metadata).
    struct DictionaryInjector: Injector {
        func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) {
            carrier[key] = value
        }
    }

    @Test func aModelInferCallContinuesTheClientsTraceThroughTheCore() async throws {
        let tracer = InMemoryTracer()
        let png = try Fixtures.bytes("images/rgb.png")
        let request = KServeGRPCTests.request("unet_tiny", [KServeGRPCTests.input("image", "BYTES", [1]) { $0.bytesContents = [Data(png)] }])
        // The client's span, and its context in the call's metadata as the tracer propagates it.
        let clientSpan = tracer.startSpan("client call", ofKind: .client)
        var fields: [String: String] = [:]
        tracer.inject(clientSpan.context, into: &fields, using: DictionaryInjector())
        clientSpan.end()
        #expect(!fields.isEmpty)
        var metadata = Metadata()
        for (key, value) in fields { metadata.addString(value, forKey: key) }
        let callMetadata = metadata

        // The listener takes the tracer in scope when it is made (as serve's bootstrapped one).
        try await withTracer(tracer) {
            try await KServeGRPCTests().withServer { client, _ in
                let response = try await client.modelInfer(request, metadata: callMetadata)
                #expect(response.outputs.first?.shape == [1, 96, 128])
            }
        }

        let spans = tracer.finishedSpans
        let client = try #require(spans.first { $0.operationName == "client call" })
        let servers = spans.filter { $0.operationName == "inference.GRPCInferenceService/ModelInfer" }
        try #require(servers.count == 1, "\(spans.map(\.operationName))")
        let server = servers[0]
        #expect(server.traceID == client.traceID)
        #expect(server.parentSpanID == client.spanID)
        #expect(server.attributes["rpc.system"]?.toSpanAttribute() == "grpc")
        #expect(server.attributes["rpc.method"]?.toSpanAttribute() == "ModelInfer")
        #expect(server.attributes["rpc.grpc.status_code"]?.toSpanAttribute() == 0)
        let children = spans.filter { $0.traceID == server.traceID && $0.parentSpanID == server.spanID }
        #expect(Set(children.map(\.operationName)).isSuperset(of: ["queue", "preprocess", "postprocess"]),
                "\(children.map(\.operationName))")
        let forward = try #require(spans.first { $0.operationName == "forward" })
        let linked = forward.links.compactMap { $0.context.inMemorySpanContext?.spanID }
        #expect(linked.contains(server.spanID))
    }
}
