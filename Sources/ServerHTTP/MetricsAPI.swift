import Foundation
import Hummingbird
import ServerCore
import Prometheus

/// The metrics port: `GET /metrics` in Prometheus' text format, optionally filtered by `name[]`.
public struct MetricsAPI<Context: RequestContext>: Sendable {
    let server: ModelServer
    let registry: PrometheusCollectorRegistry

    public init(server: ModelServer, registry: PrometheusCollectorRegistry) {
        self.server = server
        self.registry = registry
    }

    public func addRoutes(to router: Router<Context>) {
        router.get("/metrics") { request, _ in metrics(request) }
    }

    func metrics(_ request: Request) -> Response {
        server.updateGauges()
        var text = registry.emitToString()
        // `name[]` arrives literally (curl --globoff) or percent-encoded (`name%5B%5D`, as most clients send it).
        let items = URLComponents(string: request.uri.description)?.queryItems ?? []
        let wanted = Set(items.filter { $0.name == "name[]" }.compactMap(\.value))
        if !wanted.isEmpty { text = Self.families(wanted, of: text) }
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// The lines of the exposition that belong to the named families (histograms' `_bucket`,
    /// `_sum` and `_count` samples included).
    static func families(_ names: Set<String>, of text: String) -> String {
        var kept: [Substring] = []
        for line in text.split(separator: "\n") {
            let family: Substring
            if line.hasPrefix("# ") {
                let parts = line.split(separator: " ", maxSplits: 3)
                family = parts.count > 2 ? parts[2] : ""
            } else {
                let name = line.prefix { $0 != "{" && $0 != " " }
                family = ["_bucket", "_sum", "_count"].lazy.compactMap { suffix -> Substring? in
                    guard name.hasSuffix(suffix), names.contains(String(name.dropLast(suffix.count))) else { return nil }
                    return name.dropLast(suffix.count)
                }.first ?? name
            }
            if names.contains(String(family)) { kept.append(line) }
        }
        return kept.isEmpty ? "" : kept.joined(separator: "\n") + "\n"
    }
}
