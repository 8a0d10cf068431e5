import Foundation
import Hummingbird
import ServerCore

/// The management port: register, list, describe, scale, set-default, unregister.
public struct ManagementAPI<Context: RequestContext>: Sendable {
    let server: ModelServer
    let authorization: TokenAuthorization?

    public init(server: ModelServer, authorization: TokenAuthorization? = nil) {
        self.server = server
        self.authorization = authorization
    }

    /// The routes of the port: what is served and what `OPTIONS /` describes.
    var routes: [Route<Context>] {
        let model = "/models/{model_name}", version = "/models/{model_name}/{model_version}"
        return [
            Route(method: .post, path: "/models", summary: "Register a model from the model store or an allowed http(s) URL.",
                  errors: [400, 401, 403, 404, 409, 500, 507]) { request, _ in try await register(request) },
            Route(method: .get, path: "/models", summary: "List models (limit, next_page_token).",
                  errors: [400, 401]) { request, _ in try list(request) },
            Route(method: .get, path: model, summary: "Describe the default version.",
                  errors: [401, 404]) { _, context in try describe(context, version: nil) },
            Route(method: .get, path: version, summary: "Describe a version, or all versions with 'all'.",
                  errors: [401, 404]) { _, context in try describe(context, version: context.parameters.require("model_version")) },
            Route(method: .put, path: model, summary: "Scale the default version's workers (min_worker, max_worker, synchronous, timeout), or swap it for the archive at url (swap=true).",
                  errors: [400, 401, 403, 404, 409, 500, 507]) { request, context in try await scale(request, context, version: nil) },
            Route(method: .put, path: version, summary: "Scale a version's workers.",
                  errors: [400, 401, 404, 500, 507]) { request, context in
                try await scale(request, context, version: context.parameters.require("model_version"))
            },
            Route(method: .put, path: version + "/set-default", summary: "Make a version the default.",
                  errors: [401, 404, 507]) { _, context in try setDefault(context) },
            Route(method: .delete, path: model, summary: "Unregister the default version.",
                  errors: [401, 403, 404, 507]) { _, context in try await unregister(context, version: nil) },
            Route(method: .delete, path: version, summary: "Unregister a version.",
                  errors: [401, 403, 404, 507]) { _, context in
                try await unregister(context, version: context.parameters.require("model_version"))
            },
            Route(method: .get, path: "/token", summary: "Renew the inference or management key (type) with the API key.",
                  errors: [400, 401]) { request, _ in try renewToken(request) },
        ]
    }

    /// Adds this port's routes to `router`.
    public func addRoutes(to router: Router<Context>) {
        router.add(routes, title: "Management API")
    }

    var operations: ManagementOperations { ManagementOperations(server: server) }

    /// `GET /token?type=inference|management` with the API key renews that key.
    func renewToken(_ request: Request) throws -> Response {
        guard let authorization else {
            throw ModelServerError.badRequest("token authorization is disabled on this server")
        }
        guard authorization.accepts(request.headers[.authorization], as: .api) else {
            var error = APIError(.unauthorized, type: "InvalidKeyException", message: "Renewing a key needs the API key from key_file.json")
            error.headers[.wwwAuthenticate] = "Bearer"
            throw error
        }
        let kind: TokenAuthorization.Kind
        switch RequestParameters(request).string("type") {
        case "inference": kind = .inference
        case "management": kind = .management
        case let other: throw ModelServerError.badRequest("type must be inference or management, got '\(other ?? "")'")
        }
        try authorization.regenerate(kind)
        let name = kind == .inference ? "Inference" : "Management"
        return jsonResponse("{\"status\":\"\(name) key regenerated\"}")
    }

    func register(_ request: Request) async throws -> Response {
        guard server.configuration.enableModelAPI else { throw ModelServerError.modelAPIDisabled }
        var request = request
        var parameters = RequestParameters(request)
        if request.headers[.contentType]?.lowercased().hasPrefix("application/json") == true {
            try parameters.merge(jsonBody: try await request.collectBody(upTo: 1 << 20))
        }
        let options = RegistrationOptions(
            url: try parameters.required("url"),
            modelName: parameters.string("model_name"),
            batchSize: try parameters.int("batch_size", in: ModelSettings.Override.Range.batchSize),
            maxBatchDelay: try parameters.int("max_batch_delay", in: ModelSettings.Override.Range.maxBatchDelay),
            initialWorkers: try parameters.int("initial_workers", in: ModelSettings.Override.Range.workers),
            responseTimeout: try parameters.int("response_timeout", in: ModelSettings.Override.Range.responseTimeout),
            startupTimeout: try parameters.int("startup_timeout", in: ModelSettings.Override.Range.startupTimeout),
            handler: parameters.string("handler"))
        let answer = try await operations.register(
            options, runtime: parameters.string("runtime"), synchronous: try parameters.bool("synchronous") ?? true)
        return answer.response
    }

    func list(_ request: Request) throws -> Response {
        let parameters = RequestParameters(request)
        let limit = Int(parameters.string("limit") ?? "") ?? 100
        let start = try parameters.int("next_page_token", in: 0...Int.max) ?? 0
        return jsonResponse(operations.list(limit: limit, start: start))
    }

    func describe(_ context: Context, version: String?) throws -> Response {
        let model = try context.parameters.require("model_name")
        return jsonResponse(try operations.describe(model: model, version: version))
    }

    func scale(_ request: Request, _ context: Context, version: String?) async throws -> Response {
        let model = try context.parameters.require("model_name")
        let parameters = RequestParameters(request)
        if try parameters.bool("swap") == true {
            return try await swap(model: model, version: version, parameters: parameters)
        }
        let workers = ModelSettings.Override.Range.workers
        let minWorkers = try parameters.int("min_worker", in: workers) ?? 1
        let maxWorkers = try parameters.int("max_worker", in: minWorkers...workers.upperBound) ?? minWorkers
        let synchronous = try parameters.bool("synchronous") ?? false
        let timeout = try parameters.int("timeout", in: -1...86_400) ?? -1
        let answer = try await operations.scale(
            model: model, version: version, minWorkers: minWorkers, maxWorkers: maxWorkers,
            synchronous: synchronous, timeout: timeout >= 0 ? timeout : nil)
        return answer.response
    }

    func setDefault(_ context: Context) throws -> Response {
        let model = try context.parameters.require("model_name")
        let version = try context.parameters.require("model_version")
        return try operations.setDefault(model: model, version: version).response
    }

    /// `PUT /models/{m}?url=…&swap=true`: load the new version, make it default, drain the old.
    func swap(model: String, version: String?, parameters: RequestParameters) async throws -> Response {
        guard server.configuration.enableModelAPI else { throw ModelServerError.modelAPIDisabled }
        guard version == nil else {
            throw ModelServerError.badRequest("swap replaces the default version: use PUT /models/\(model)?url=...&swap=true without a version")
        }
        let (old, new) = try await server.swap(model: model, url: try parameters.required("url"))
        return jsonResponse("{\"status\":\(jsonString("Model \"\(model)\" Version: \(new) is default; version \(old) unregistered"))}")
    }

    func unregister(_ context: Context, version: String?) async throws -> Response {
        let model = try context.parameters.require("model_name")
        return try await operations.unregister(model: model, version: version).response
    }
}

/// Describe's JSON for one version (docs/api.md).
struct DescribedModel: Encodable {
    struct Worker: Encodable {
        var id: String
        var startTime: String
        var status: String
        var memoryUsage: Int
        var pid: Int32
        var gpu: Bool
        var device: String
        var gpuUsage: String
        var lastError: String?
    }

    /// How long loading took, apart from warming up, and the first request after it.
    struct LoadTimes: Encodable {
        var loadMs: Int
        var warmUpMs: Int
        var firstRequestMs: Double?
    }

    struct QueueStatus: Encodable {
        var remainingCapacity: Int
        var pendingRequests: Int
    }

    var modelName: String
    var modelVersion: String
    var modelUrl: String
    var runtime: String
    var handler: String
    var isDefault: Bool
    var minWorkers: Int
    var maxWorkers: Int
    var batchSize: Int
    var maxBatchDelay: Int
    var responseTimeout: Int
    var startupTimeout: Int
    var deviceType: String
    var deviceIds: [Int]
    var loadedAtStartup: Bool
    var workers: [Worker]
    var jobQueueStatus: QueueStatus
    var loadTimes: LoadTimes?
    /// Class index → name from the labels file, when the model has one.
    var labels: [String: String]?
    /// What limits how the version is served (an AOTInductor package's batch), when something does.
    var notes: [String]?

    init(_ description: ModelDescription) {
        let settings = description.settings
        let usesGPU = description.workers.contains { $0.gpuIndex != nil }
        modelName = description.modelName
        modelVersion = description.modelVersion
        modelUrl = description.modelURL
        runtime = description.runtime
        handler = description.handler
        isDefault = description.isDefault
        minWorkers = settings.minWorkers
        maxWorkers = settings.maxWorkers
        batchSize = settings.batchSize
        maxBatchDelay = settings.maxBatchDelay
        responseTimeout = settings.responseTimeout
        startupTimeout = settings.startupTimeout
        deviceType = usesGPU ? "gpu" : "cpu"
        deviceIds = Array(Set(description.workers.compactMap(\.gpuIndex))).sorted()
        loadedAtStartup = description.loadedAtStartup
        notes = description.notes.isEmpty ? nil : description.notes
        labels = description.labels.isEmpty ? nil : Dictionary(uniqueKeysWithValues: description.labels.map { (String($0.key), $0.value) })
        workers = description.workers.map { worker in
            let gpuIndex = worker.gpuIndex
            return Worker(
                id: String(worker.id), startTime: timestamp(worker.startTime), status: worker.status.rawValue,
                memoryUsage: description.weightBytes, pid: getpid(), gpu: gpuIndex != nil,
                device: worker.device.description, gpuUsage: gpuIndex.map { "gpuId::\($0)" } ?? "N/A",
                lastError: worker.lastError)
        }
        loadTimes = description.loadTimings.map {
            LoadTimes(loadMs: $0.loadMilliseconds, warmUpMs: $0.warmUpMilliseconds, firstRequestMs: $0.firstRequestMilliseconds)
        }
        jobQueueStatus = QueueStatus(
            remainingCapacity: max(0, description.queueCapacity - description.pendingRequests),
            pendingRequests: description.pendingRequests)
    }
}

/// UTC ISO-8601 with milliseconds, as docs/api.md writes times.
func timestamp(_ date: Date) -> String {
    date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt))
}

extension ManagementOperations.StatusAnswer {
    /// The REST answer: `{"status": …}` with the call's status code.
    var response: Response {
        jsonResponse(json, status: HTTPResponse.Status(code: code))
    }
}
