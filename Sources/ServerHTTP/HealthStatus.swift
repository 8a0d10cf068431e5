import ServerCore

/// The server's health as `GET /ping` and TorchServe's gRPC `Ping` answer it.
package struct HealthStatus: Sendable {
    /// Why the server cannot answer every start-up model yet, or nil when it can.
    package var reason: String?

    package init(server: ModelServer) {
        reason = server.unreadyReason
    }

    /// `{"status":"Healthy"}`, or `{"status":"Unhealthy","reason":"…"}`.
    package var json: String {
        guard let reason else { return "{\"status\":\"Healthy\"}" }
        return "{\"status\":\"Unhealthy\",\"reason\":\(jsonString(reason))}"
    }
}
