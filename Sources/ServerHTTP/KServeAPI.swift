import Foundation
import Hummingbird
import ServerCore

/// KServe v2 (Open Inference Protocol) on the inference port: health, model metadata and
/// readiness, and inference on JSON or binary tensors.
struct KServeAPI<Context: RequestContext>: Sendable {
    let server: ModelServer
    let inference: InferenceAPI<Context>

    /// The server's version as `GET /v2` reports it.
    static var serverVersion: String { KServeServerInfo.version }

    init(server: ModelServer) {
        self.server = server
        inference = InferenceAPI(server: server)
    }

    var routes: [Route<Context>] {
        var table: [Route<Context>] = [
            Route(method: .get, path: "/v2", summary: "KServe v2 server metadata: name, version, extensions.",
                  errors: []) { _, _ in serverMetadata() },
            Route(method: .get, path: "/v2/health/live", summary: "KServe v2 liveness: 200 while the process answers.",
                  errors: []) { _, _ in jsonResponse("{\"live\":true}") },
            Route(method: .get, path: "/v2/health/ready", summary: "KServe v2 readiness: 200 when every start-up model can answer, else 503 with a reason.",
                  errors: [503]) { _, _ in serverReady() },
        ]
        for base in ["/v2/models/{model_name}", "/v2/models/{model_name}/versions/{model_version}"] {
            table += [
                Route(method: .get, path: base, summary: "KServe v2 model metadata: versions, platform, input and output tensors.",
                      errors: [404]) { _, context in try metadata(context) },
                Route(method: .get, path: base + "/ready", summary: "KServe v2 model readiness: 200 when it has a ready worker, else 503.",
                      errors: [404, 503]) { _, context in try modelReady(context) },
                Route(method: .post, path: base + "/infer", summary: "KServe v2 inference on JSON or binary tensors.",
                      errors: [400, 401, 403, 404, 413, 415, 429, 500, 503, 504, 507]) { request, context in
                          try await infer(request, context)
                      },
            ]
        }
        return table
    }

    func serverMetadata() -> Response {
        jsonResponse("{\"name\":\"\(KServeServerInfo.name)\",\"version\":\"\(Self.serverVersion)\",\"extensions\":[\"binary_tensor_data\"]}")
    }

    func serverReady() -> Response {
        if let reason = server.unreadyReason {
            return jsonResponse("{\"ready\":false,\"reason\":\(jsonString(reason))}", status: .serviceUnavailable)
        }
        return jsonResponse("{\"ready\":true}")
    }

    func metadata(_ context: Context) throws -> Response {
        let model = try context.parameters.require("model_name")
        let signature = try server.signature(model: model, version: context.parameters.get("model_version"))
        let versions = try server.describe(model: model, version: "all").map(\.modelVersion)
        func tensors(_ specs: [ModelSignature.TensorSpec], prefix: String) -> String {
            "[" + specs.map { spec in
                "{\"name\":\(jsonString(spec.kserveName(prefix: prefix))),\"datatype\":\"\(spec.kserveDatatype)\",\"shape\":[\(spec.shape.map(String.init).joined(separator: ","))]}"
            }.joined(separator: ",") + "]"
        }
        return jsonResponse(
            "{\"name\":\(jsonString(model)),\"versions\":[\(versions.map(jsonString).joined(separator: ","))],"
                + "\"platform\":\"pytorch_libtorch\",\"inputs\":\(tensors(signature.inputs, prefix: "input")),"
                + "\"outputs\":\(tensors(signature.outputs, prefix: "output"))}")
    }

    func modelReady(_ context: Context) throws -> Response {
        let model = try context.parameters.require("model_name")
        let ready = try server.isReady(model: model, version: context.parameters.get("model_version"))
        return jsonResponse("{\"name\":\(jsonString(model)),\"ready\":\(ready)}", status: ready ? .ok : .serviceUnavailable)
    }

    func infer(_ request: Request, _ context: Context) async throws -> Response {
        let model = try context.parameters.require("model_name")
        let version = context.parameters.get("model_version")
        let body = try await inference.readBody(request)
        let decoded = try KServeTensorCoding.decodeRequest(
            Array(buffer: body), headerLength: HeaderName.inferenceHeaderLength.flatMap { request.headers[$0] })
        let timeout = [decoded.timeout, try inference.headerTimeout(request)].compactMap { $0 }.min()
        let result: (version: String, outputs: [KServeTensor])
        do {
            result = try await KServeInference(server: server).infer(
                model: model, version: version, inputs: decoded.inputs, outputs: decoded.outputNames, timeout: timeout,
                connection: await inference.clientConnection(context))
        } catch let error as ModelServerError {
            inference.countResponse(model: model, version: version, status: APIError(error).status)
            throw error
        }
        inference.countResponse(model: model, version: result.version, status: .ok)
        let id = decoded.id ?? HeaderName.requestID.flatMap { request.headers[$0] }
        let (bytes, headerLength) = KServeTensorCoding.encodeResponse(
            model: model, version: result.version, outputs: result.outputs, id: id, binary: decoded.binaryOutputs)
        var headers: HTTPFields = [.contentType: headerLength == nil ? "application/json" : "application/octet-stream"]
        if let headerLength, let name = HeaderName.inferenceHeaderLength { headers[name] = String(headerLength) }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

/// What KServe v2 reports as the server's name and version, over HTTP and gRPC alike.
package enum KServeServerInfo {
    package static let name = "serve"
    package static let version = "1.0.0"
}

extension ModelSignature.TensorSpec {
    /// The protocol's name of a model's tensor: `input__0`, `output__0`… by position (`prefix`
    /// is `input` or `output`), else the name `forward` gives it.
    package func kserveName(prefix: String) -> String {
        switch key {
        case .index(let index): return "\(prefix)__\(index)"
        case .name(let name): return name
        }
    }

    /// The protocol's datatype name, or libtorch's where the protocol has none.
    package var kserveDatatype: String { KServeDatatype(dtype)?.rawValue ?? "\(dtype)" }
}
