import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import ServerCore

/// Runs around every route of a port: request id, error rendering, access log.
struct APIMiddleware<Context: RequestContext>: RouterMiddleware {
    let logger: Logger
    /// Requests2XX, Requests4XX, Requests5XX, as TorchServe counts them per host (not on the metrics port).
    let statusCounters: [Int: Counter]

    /// - Parameter countsRequests: whether this port's requests count in `RequestsNXX`.
    init(logger: Logger, metricsFactory: any MetricsFactory, countsRequests: Bool = true) {
        self.logger = logger
        let dimensions = [("Level", "Host"), ("Hostname", ProcessInfo.processInfo.hostName)]
        var counters: [Int: Counter] = [:]
        for family in [2, 4, 5] where countsRequests {
            counters[family] = Counter(label: "Requests\(family)XX", dimensions: dimensions, factory: metricsFactory)
        }
        statusCounters = counters
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        let requestID = HeaderName.requestID(from: HeaderName.requestID.flatMap { request.headers[$0] })
        var response: Response
        // Routes read the id the response will carry (KServe v2 echoes it as `id`).
        var head = request.head
        if let name = HeaderName.requestID { head.headerFields[name] = requestID }
        let request = Request(head: head, body: request.body)
        do {
            response = try await next(request, context)
        } catch let error as APIError {
            response = try error.response(from: request, context: context)
        } catch let error as ModelServerError {
            response = try APIError(error).response(from: request, context: context)
        } catch let error as HTTPError {
            response = try APIError(error, request: request).response(from: request, context: context)
        } catch let error as any HTTPResponseError {
            response = try APIError(HTTPError(error.status), request: request).response(from: request, context: context)
        } catch {
            logger.error("unhandled error on \(request.method) \(request.uri.path): \(error)")
            response = try APIError(.internalServerError, type: "InternalServerException", message: "\(error)")
                .response(from: request, context: context)
        }
        if let name = HeaderName.requestID { response.headers[name] = requestID }
        statusCounters[Int(response.status.code) / 100]?.increment()
        let elapsed = ContinuousClock.now - started
        let microseconds = elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000
        logger.info("\(request.method) \(request.uri.path) \(response.status.code) \(microseconds)us id=\(requestID)")
        return response
    }

}

/// Header names HTTPTypes does not predefine.
enum HeaderName {
    static let requestID = HTTPField.Name("X-Request-Id")
    static let requestTimeout = HTTPField.Name("X-Request-Timeout-Ms")
    /// KServe v2 binary tensor data extension: the length of the JSON header of the body.
    static let inferenceHeaderLength = HTTPField.Name("Inference-Header-Content-Length")
    /// SageMaker multi-model endpoints: the model `/invocations` runs.
    static let sageMakerTargetModel = HTTPField.Name("X-Amzn-SageMaker-Target-Model")

    /// The id a response carries: the client's `X-Request-Id` if it is 1–128 visible ASCII
    /// characters, else a new UUID.
    static func requestID(from header: String?) -> String {
        if let header, !header.isEmpty, header.utf8.count <= 128, header.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
            return header
        }
        return UUID().uuidString.lowercased()
    }
}
