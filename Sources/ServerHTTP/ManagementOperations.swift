import Foundation
import ServerCore

/// The management calls as the REST API and TorchServe's gRPC management API both make them:
/// checked values in, the core's call, and the answer's text out. The REST routes parse query
/// parameters into these; the gRPC service parses protobuf fields into them.
package struct ManagementOperations: Sendable {
    /// The outcome of a call that answers with a status line: `{"status": …}` on REST, the line
    /// itself in TorchServe's gRPC `ManagementResponse.msg`.
    package struct StatusAnswer: Sendable, Equatable {
        /// 200, 202 (accepted, still working) or 206 (the wait was cut short).
        package var code: Int
        package var status: String

        /// The REST body: `{"status":"…"}`.
        package var json: String { "{\"status\":\(jsonString(status))}" }
    }

    let server: ModelServer

    package init(server: ModelServer) {
        self.server = server
    }

    /// The `runtime` values TorchServe's registration accepts.
    static var runtimes: Set<String> { ["python", "python2", "python3"] }

    /// Registers an archive; with `synchronous` and workers to start, waits until they are up.
    package func register(_ options: RegistrationOptions, runtime: String?, synchronous: Bool) async throws -> StatusAnswer {
        guard server.configuration.enableModelAPI else { throw ModelServerError.modelAPIDisabled }
        if let runtime, !Self.runtimes.contains(runtime) {
            throw ModelServerError.badRequest(
                "runtime must be one of \(Self.runtimes.sorted().joined(separator: ", ")) (TorchServe's runtimes; this server runs the TorchScript model itself, so the value changes nothing), got '\(runtime)'")
        }
        // With no workers to start there is nothing to wait for: the answer is the same 200 either way.
        if !synchronous && options.settings.minWorkers != 0 {
            try await server.register(options, wait: false)
            return StatusAnswer(code: 202, status: "Processing worker updates...")
        }
        let description = try await server.register(options)
        let workers = description.settings.minWorkers
        let status = workers == 0
            ? "Model \"\(description.modelName)\" Version: \(description.modelVersion) registered with 0 initial workers. Use scale workers API to add workers for the model."
            : "Model \"\(description.modelName)\" Version: \(description.modelVersion) registered with \(workers) initial workers"
        let notes = description.notes.isEmpty ? "" : " (\(description.notes.joined(separator: "; ")))"
        return StatusAnswer(code: 200, status: status + notes)
    }

    /// `GET /models`' JSON: a page of `limit` (1...100, else 100) models from `start`.
    package func list(limit: Int, start: Int) -> String {
        let limit = (1...100).contains(limit) ? limit : 100
        let all = server.listModels()
        let page = all.dropFirst(start).prefix(limit)
        let models = page.map { "{\"modelName\":\(jsonString($0.name)),\"modelUrl\":\(jsonString($0.url))}" }
        let token = start + page.count < all.count ? "\"nextPageToken\":\"\(start + page.count)\"," : ""
        return "{\(token)\"models\":[\(models.joined(separator: ","))]}"
    }

    /// Describe's JSON array for the default version, a version, or every version (`all`).
    package func describe(model: String, version: String?) throws -> String {
        let descriptions = try server.describe(model: model, version: version)
        let encoder = JSONEncoder()
        // Sorted, so that the same state gives the same text on every call and every protocol.
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        return String(decoding: try encoder.encode(descriptions.map(DescribedModel.init)), as: UTF8.self)
    }

    /// Runs `minWorkers` workers; with `synchronous`, waits for them at most `timeout` seconds
    /// (nil: no limit), after which the scaling goes on in the background (206).
    package func scale(model: String, version: String?, minWorkers: Int, maxWorkers: Int,
                       synchronous: Bool, timeout: Int?) async throws -> StatusAnswer {
        if !synchronous {
            try await server.scale(model: model, version: version, minWorkers: minWorkers, maxWorkers: maxWorkers, wait: false)
            return StatusAnswer(code: 202, status: "Processing worker updates...")
        }
        let server = self.server
        let finished = try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await server.scale(model: model, version: version, minWorkers: minWorkers, maxWorkers: maxWorkers, wait: true)
                return true
            }
            if let timeout {
                group.addTask {
                    try await Task.sleep(for: .seconds(timeout))
                    return false
                }
            }
            let first = try await group.next() ?? true
            if !first {
                // The scaling goes on in the background; only the wait is cut short.
                return false
            }
            group.cancelAll()
            return true
        }
        guard finished else {
            return StatusAnswer(code: 206, status: "Workers scaling in progress...")
        }
        let suffix = version.map { ", version: \($0)" } ?? ""
        return StatusAnswer(code: 200, status: "Workers scaled to \(minWorkers) for model: \(model)\(suffix)")
    }

    /// Makes `version` the default of `model`.
    package func setDefault(model: String, version: String) throws -> StatusAnswer {
        try server.setDefault(model: model, version: version)
        return StatusAnswer(code: 200, status: "Default version successfully updated for model \"\(model)\" to \"\(version)\"")
    }

    /// Unregisters the default version of `model`, or `version`.
    package func unregister(model: String, version: String?) async throws -> StatusAnswer {
        guard server.configuration.enableModelAPI else { throw ModelServerError.modelAPIDisabled }
        try await server.unregister(model: model, version: version)
        return StatusAnswer(code: 200, status: "Model \"\(model)\" unregistered")
    }
}
