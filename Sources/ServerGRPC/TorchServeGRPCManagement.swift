import GRPCCore
import ModelArchive
import ServerCore
import ServerHTTP
import SwiftProtobuf

package typealias TorchServeManagementAPIs = Org_Pytorch_Serve_Grpc_Management_ManagementAPIsService
package typealias ManagementResponse = Org_Pytorch_Serve_Grpc_Management_ManagementResponse

/// TorchServe's gRPC management service (`org.pytorch.serve.grpc.management.ManagementAPIsService`,
/// port 7071), through the same calls as the REST management API (``ManagementOperations``).
/// As TorchServe's, `DescribeModel` and `ListModels` answer the REST JSON in `msg`, the other
/// calls the status line that the REST JSON carries as `status`. Unset proto3 numbers (0) mean
/// the default, as TorchServe reads them.
package struct TorchServeGRPCManagement: TorchServeManagementAPIs.SimpleServiceProtocol {
    let operations: ManagementOperations

    package init(server: ModelServer) {
        operations = ManagementOperations(server: server)
    }

    package func describeModel(
        request: Org_Pytorch_Serve_Grpc_Management_DescribeModelRequest, context: ServerContext
    ) async throws -> ManagementResponse {
        let model = try Self.required(request.modelName, "model_name", "the name of a registered model")
        let version = request.modelVersion.isEmpty ? nil : request.modelVersion
        return try await Self.answer { try operations.describe(model: model, version: version) }
    }

    package func listModels(
        request: Org_Pytorch_Serve_Grpc_Management_ListModelsRequest, context: ServerContext
    ) async throws -> ManagementResponse {
        guard request.nextPageToken >= 0 else {
            throw RPCError(code: .invalidArgument, message: "next_page_token must be 0 or more (from a previous answer's nextPageToken), got \(request.nextPageToken)")
        }
        return ManagementResponse.with {
            $0.msg = operations.list(limit: Int(request.limit), start: Int(request.nextPageToken))
        }
    }

    package func registerModel(
        request: Org_Pytorch_Serve_Grpc_Management_RegisterModelRequest, context: ServerContext
    ) async throws -> ManagementResponse {
        let url = try Self.required(request.url, "url", "a .mar in the model store, or an http(s) URL that allowed_urls permits")
        guard !request.s3SseKms else {
            throw RPCError(code: .invalidArgument, message: "s3_sse_kms is not supported: this server does not read archives from S3; register from the model store or an http(s) URL with s3_sse_kms false")
        }
        let ranges = ModelSettings.Override.Range.self
        let options = RegistrationOptions(
            url: url,
            modelName: request.modelName.isEmpty ? nil : request.modelName,
            batchSize: try Self.setting(request.batchSize, "batch_size", in: ranges.batchSize),
            maxBatchDelay: try Self.setting(request.maxBatchDelay, "max_batch_delay", in: ranges.maxBatchDelay),
            initialWorkers: try Self.setting(request.initialWorkers, "initial_workers", in: ranges.workers),
            responseTimeout: try Self.setting(request.responseTimeout, "response_timeout", in: ranges.responseTimeout),
            startupTimeout: try Self.setting(request.startupTimeout, "startup_timeout", in: ranges.startupTimeout),
            handler: request.handler.isEmpty ? nil : request.handler)
        let runtime = request.runtime.isEmpty ? nil : request.runtime
        return try await Self.answer {
            try await operations.register(options, runtime: runtime, synchronous: request.synchronous).status
        }
    }

    package func scaleWorker(
        request: Org_Pytorch_Serve_Grpc_Management_ScaleWorkerRequest, context: ServerContext
    ) async throws -> ManagementResponse {
        let model = try Self.required(request.modelName, "model_name", "the name of a registered model")
        let version = request.modelVersion.isEmpty ? nil : request.modelVersion
        let workers = ModelSettings.Override.Range.workers
        let minWorkers = try Self.setting(request.minWorker, "min_worker", in: workers) ?? 1
        let maxWorkers = try Self.setting(request.maxWorker, "max_worker", in: minWorkers...workers.upperBound) ?? minWorkers
        let timeout = request.timeout > 0 ? Int(request.timeout) : nil
        return try await Self.answer {
            try await operations.scale(
                model: model, version: version, minWorkers: minWorkers, maxWorkers: maxWorkers,
                synchronous: request.synchronous, timeout: timeout).status
        }
    }

    package func setDefault(
        request: Org_Pytorch_Serve_Grpc_Management_SetDefaultRequest, context: ServerContext
    ) async throws -> ManagementResponse {
        let model = try Self.required(request.modelName, "model_name", "the name of a registered model")
        let version = try Self.required(request.modelVersion, "model_version", "the version to make the default")
        return try await Self.answer { try operations.setDefault(model: model, version: version).status }
    }

    package func unregisterModel(
        request: Org_Pytorch_Serve_Grpc_Management_UnregisterModelRequest, context: ServerContext
    ) async throws -> ManagementResponse {
        let model = try Self.required(request.modelName, "model_name", "the name of a registered model")
        let version = request.modelVersion.isEmpty ? nil : request.modelVersion
        return try await Self.answer { try await operations.unregister(model: model, version: version).status }
    }

    /// `msg` from a call; what it throws as the call's status (``GRPCStatusMapping``).
    static func answer(_ call: () async throws -> String) async throws -> ManagementResponse {
        let msg = try await GRPCStatusMapping.mapping { try await call() }
        return ManagementResponse.with { $0.msg = msg }
    }

    static func required(_ value: String, _ name: String, _ meaning: String) throws(RPCError) -> String {
        guard !value.isEmpty else {
            throw RPCError(code: .invalidArgument, message: "\(name) is required: \(meaning)")
        }
        return value
    }

    /// A number the client set (above 0), checked against its range; nil when unset.
    static func setting(_ value: Int32, _ name: String, in range: ClosedRange<Int>) throws(RPCError) -> Int? {
        guard value > 0 else { return nil }
        guard range.contains(Int(value)) else {
            throw RPCError(code: .invalidArgument, message: "\(name) must be in \(range.lowerBound)...\(range.upperBound), got \(value)")
        }
        return Int(value)
    }
}
