import GRPCCore
import Tracing

/// Runs every RPC of a gRPC server inside a server span, continuing the client's trace when its
/// metadata carries W3C `traceparent`/`tracestate`, and makes that span the current context, so
/// that the core's spans of the request (decode, queue, preprocess, postprocess, encode) are its
/// children, as they are for HTTP.
///
/// Install it on the server (`GRPCServer(transport:services:interceptors: [GRPCTracing()])`):
/// the services then need no change. When no tracer is bootstrapped it passes every RPC through.
struct GRPCTracing: ServerInterceptor {
    private let tracer: (any Tracer)?

    /// An interceptor that traces with the process's tracer, if one is bootstrapped by then.
    init() {
        let tracer = InstrumentationSystem.tracer
        self.tracer = tracer is NoOpTracer ? nil : tracer
    }

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        guard let tracer else { return try await next(request, context) }
        var parent = ServiceContext.topLevel
        tracer.extract(request.metadata, into: &parent, using: MetadataExtractor())
        let descriptor = context.descriptor
        let span = tracer.startSpan(descriptor.fullyQualifiedMethod, context: parent, ofKind: .server)
        span.updateAttributes { attributes in
            attributes["rpc.system"] = "grpc"
            attributes["rpc.service"] = descriptor.service.fullyQualifiedService
            attributes["rpc.method"] = descriptor.method
        }
        var response: StreamingServerResponse<Output>
        do {
            // A unary handler does its work here; a streaming one in the producer, below.
            response = try await ServiceContext.$current.withValue(span.context) { try await next(request, context) }
        } catch {
            Self.end(span, error: error)
            throw error
        }
        switch response.accepted {
        case .success(var contents):
            let producer = contents.producer
            let spanContext = span.context
            contents.producer = { writer in
                do {
                    let trailers = try await ServiceContext.$current.withValue(spanContext) { try await producer(writer) }
                    Self.end(span, error: nil)
                    return trailers
                } catch {
                    Self.end(span, error: error)
                    throw error
                }
            }
            response.accepted = .success(contents)
        case .failure(let error):
            Self.end(span, error: error)
        }
        return response
    }

    /// Records the RPC's status (`rpc.grpc.status_code`, OK when `error` is nil) and ends the span.
    /// As OpenTelemetry's conventions for a server span say, only codes that are the server's
    /// fault mark the span as an error; a client's bad argument or unknown model does not.
    private static func end(_ span: any Span, error: (any Error)?) {
        let code = error.map { ($0 as? RPCError)?.code ?? .unknown }
        span.updateAttributes { $0["rpc.grpc.status_code"] = code?.rawValue ?? 0 }
        if let error {
            span.recordError(error)
            if let code, serverFaults.contains(code) { span.setStatus(SpanStatus(code: .error)) }
        }
        span.end()
    }

    private static let serverFaults: Set<RPCError.Code> = [.unknown, .deadlineExceeded, .unimplemented, .internalError, .unavailable, .dataLoss]
}

/// Reads a propagation header (`traceparent`, `tracestate`) from an RPC's metadata.
struct MetadataExtractor: Extractor {
    func extract(key: String, from metadata: Metadata) -> String? {
        metadata[stringValues: key].first(where: { _ in true })
    }
}
