import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ServerCore
import Prometheus
import ServerHTTP
import ServerTestSupport
import TestFixtures
import Testing

@Suite struct MetricsAPITests {
    @Test func requestsStagesWorkersAndFiltering() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        let registry = PrometheusCollectorRegistry()
        let server = store.makeServer(registry: registry)
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "unet_tiny"))
        let inference = HTTPServer.inferenceApplication(server: server, host: "127.0.0.1", port: 0, logger: quietLogger)
        try await inference.test(.live) { client in
            for image in ["rgb.png", "rgb.png", "not_an_image.txt"] {
                try await client.execute(uri: "/predictions/unet_tiny", method: .post, body: ByteBuffer(bytes: try Fixtures.bytes("images/\(image)"))) { _ in }
            }
        }
        let metrics = HTTPServer.metricsApplication(server: server, registry: registry, host: "127.0.0.1", port: 0, logger: quietLogger)
        try await metrics.test(.live) { client in
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "text/plain; version=0.0.4; charset=utf-8")
                let text = String(buffer: response.body)
                let model = "model_name=\"unet_tiny\",model_version=\"1.0\""
                #expect(text.contains("ts_inference_requests_total{\(model),hostname="))
                #expect(text.contains("ts_inference_responses_total{\(model),code=\"200\"} 2"))
                #expect(text.contains("ts_inference_responses_total{\(model),code=\"415\"} 1"))
                #expect(text.contains("ts_workers{\(model),status=\"READY\"} 1"))
                #expect(text.contains("ts_stage_duration_seconds_count{\(model),stage=\"forward\"} 2"))
                // Each request's handler time is split: decode, preprocess, postprocess, encode.
                for stage in ["decode", "preprocess", "postprocess", "encode"] {
                    #expect(text.contains("ts_stage_duration_seconds_count{\(model),stage=\"\(stage)\"} 2"), "\(stage)")
                }
                #expect(text.contains("ts_batch_size_bucket{\(model),le=\"1.0\"} 3"))
                #expect(text.contains("ts_request_duration_seconds_bucket{\(model),le=\"0.0025\"}"))
                #expect(text.contains("Requests2XX{Level=\"Host\",Hostname="))
                #expect(text.contains("process_resident_memory_bytes "))
            }
            try await client.execute(uri: "/metrics?name[]=ts_batch_size&name[]=ts_workers", method: .get) { response in
                let lines = String(buffer: response.body).split(separator: "\n")
                #expect(!lines.isEmpty)
                #expect(lines.allSatisfy { $0.contains("ts_batch_size") || $0.contains("ts_workers") })
                #expect(lines.contains { $0.hasPrefix("ts_batch_size_sum") })
            }
            // Most clients percent-encode the brackets.
            try await client.execute(uri: "/metrics?name%5B%5D=ts_workers", method: .get) { response in
                let lines = String(buffer: response.body).split(separator: "\n")
                #expect(!lines.isEmpty)
                #expect(lines.allSatisfy { $0.contains("ts_workers") })
                #expect(response.headers[HTTPField.Name("X-Request-Id")!] != nil)
            }
            // The metrics port answers unknown routes with the same JSON error as the others.
            try await client.execute(uri: "/nope", method: .get) { response in
                #expect(response.status == .notFound)
                #expect(response.headers[.contentType] == "application/json")
                #expect(String(buffer: response.body).contains("\"type\":\"ResourceNotFoundException\""))
                #expect(response.headers[HTTPField.Name("X-Request-Id")!] != nil)
            }
        }
    }

    @Test func droppedRequestSeriesExistFromRegistrationAtZero() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        let registry = PrometheusCollectorRegistry()
        let server = store.makeServer(registry: registry)
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "unet_tiny"))
        let metrics = HTTPServer.metricsApplication(server: server, registry: registry, host: "127.0.0.1", port: 0, logger: quietLogger)
        try await metrics.test(.live) { client in
            try await client.execute(uri: "/metrics?name[]=ts_requests_dropped_total", method: .get) { response in
                let lines = String(buffer: response.body).split(separator: "\n").filter { !$0.hasPrefix("#") }
                // A dashboard or alert on drops has its series before the first drop.
                for reason in ["deadline", "disconnected", "queue_full", "shutdown"] {
                    let series = "ts_requests_dropped_total{model_name=\"unet_tiny\",model_version=\"1.0\",reason=\"\(reason)\"}"
                    #expect(lines.contains { $0.hasPrefix(series + " ") && Double($0.split(separator: " ").last ?? "") == 0 }, "\(reason)")
                }
            }
        }
        // Unregistering removes them with the version's other series.
        try await server.unregister(model: "unet_tiny", version: "1.0")
        #expect(!registry.emitToString().contains("ts_requests_dropped_total{model_name=\"unet_tiny\""))
    }
}
