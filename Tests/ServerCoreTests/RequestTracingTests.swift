import InMemoryTracing
@testable import ServerCore
import ServerTestSupport
import TestFixtures
import Testing
import Tracing

/// The spans the core records for a request submitted inside a span: its stages as children,
/// and one forward span per batch linked to every request in it.
@Suite struct RequestTracingTests {
    static let pairConfig = """
        minWorkers: 1
        batchSize: 2
        maxBatchDelay: 5000
        handler:
          kind: image_segmenter
          inputSize: [96, 128]
          numClasses: 5
        """

    @Test func twoRequestsBatchedTogetherGetTheirStagesAndOneLinkedForwardSpan() async throws {
        let store = try TestModelStore(config: Self.pairConfig)
        defer { store.remove() }
        let server = store.makeServer()
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "unet_tiny"))
        let image = try Fixtures.bytes("images/rgb.png")
        let tracer = InMemoryTracer()

        try await withTracer(tracer) {
            async let first = withSpan("request 1", ofKind: .server) { _ in
                try await server.predict(model: "unet_tiny", request: InferenceRequest(body: image))
            }
            async let second = withSpan("request 2", ofKind: .server) { _ in
                try await server.predict(model: "unet_tiny", request: InferenceRequest(body: image))
            }
            _ = try await (first, second)
        }

        let spans = tracer.finishedSpans
        let requests = spans.filter { $0.operationName.hasPrefix("request") }
        #expect(requests.count == 2)
        for request in requests {
            let children = spans.filter { $0.traceID == request.traceID && $0.parentSpanID == request.spanID }
            #expect(children.map(\.operationName).sorted() == ["decode", "encode", "postprocess", "preprocess", "queue"])
            for child in children {
                #expect(child.attributes["model.name"]?.toSpanAttribute() == "unet_tiny")
                #expect(child.attributes["model.version"]?.toSpanAttribute() == "1.0")
                #expect(child.startInstant.nanosecondsSinceEpoch <= child.endInstant.nanosecondsSinceEpoch)
            }
        }
        let forwards = spans.filter { $0.operationName == "forward" }
        try #require(forwards.count == 1, "\(spans.map(\.operationName))")
        let forward = forwards[0]
        #expect(forward.parentSpanID == nil)
        #expect(forward.attributes["model.batch_size"]?.toSpanAttribute() == 2)
        #expect(forward.attributes["model.device"]?.toSpanAttribute() == "cpu")
        let linked = forward.links.compactMap { $0.context.inMemorySpanContext?.spanID }
        #expect(Set(linked) == Set(requests.map(\.spanID)))
    }

    @Test func aRequestOutsideAnySpanOrTracerIsNotTraced() async throws {
        #expect(RequestTrace.current == nil)
        let tracer = InMemoryTracer()
        withTracer(tracer) { #expect(RequestTrace.current == nil) }
        await withTracer(tracer) {
            await withSpan("request") { _ in #expect(RequestTrace.current != nil) }
        }
    }
}
