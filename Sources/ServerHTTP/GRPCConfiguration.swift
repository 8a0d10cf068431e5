import Foundation
import ServerCore

/// The settings of the gRPC listeners: KServe v2's `inference.GRPCInferenceService`, and
/// TorchServe's inference and management services (their key names are TorchServe's, so its
/// configs keep working). Read from `config.properties` by ``ServerSettings``; the listeners
/// themselves are in the ServerGRPC target.
public struct GRPCConfiguration: Sendable {
    /// A gRPC listener's bind host and port.
    public struct Address: Sendable, Equatable, CustomStringConvertible {
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        /// `host:port` (an IPv6 host in brackets).
        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    /// Whether any gRPC listener runs (`enable_grpc`).
    public var enabled = true
    /// KServe v2 over gRPC (`grpc_kserve_address`); nil: off.
    public var kserveAddress: Address? = Address(host: "127.0.0.1", port: 8083)
    /// TorchServe's gRPC inference service (`grpc_inference_address`, `grpc_inference_port`).
    public var inferenceAddress = Address(host: "127.0.0.1", port: 7070)
    /// TorchServe's gRPC management service (`grpc_management_address`, `grpc_management_port`).
    public var managementAddress = Address(host: "127.0.0.1", port: 7071)

    public init() {}

    /// The KServe v2 listener's address when it runs.
    public var activeKServeAddress: Address? { enabled ? kserveAddress : nil }

    /// The gRPC keys of `config.properties`, in the order they are applied and documented.
    public static let keys: [ConfigurationKey<GRPCConfiguration>] = [
        .boolean("enable_grpc", default: "true", "Runs the gRPC listeners (KServe v2, and TorchServe's inference and management); `false` turns all of them off.") {
            $0.enabled = $1
        },
        ConfigurationKey<GRPCConfiguration>(
            "grpc_kserve_address", default: "127.0.0.1:8083",
            "Where KServe v2 (Open Inference Protocol) over gRPC listens, as HOST:PORT (IPv6 as [HOST]:PORT); empty or `off` turns it off."
        ) { config, text, _ throws(ConfigurationError) in
            config.kserveAddress = try hostAndPort(text, key: "grpc_kserve_address")
        },
        ConfigurationKey<GRPCConfiguration>("grpc_inference_address", default: "127.0.0.1", "The host TorchServe's gRPC inference service binds.") { config, text, _ throws(ConfigurationError) in
            config.inferenceAddress.host = try host(text, key: "grpc_inference_address")
        },
        .integer("grpc_inference_port", 0...65535, default: "7070", "The port of TorchServe's gRPC inference service (0 picks a free one).") {
            $0.inferenceAddress.port = $1
        },
        ConfigurationKey<GRPCConfiguration>("grpc_management_address", default: "127.0.0.1", "The host TorchServe's gRPC management service binds.") { config, text, _ throws(ConfigurationError) in
            config.managementAddress.host = try host(text, key: "grpc_management_address")
        },
        .integer("grpc_management_port", 0...65535, default: "7071", "The port of TorchServe's gRPC management service (0 picks a free one).") {
            $0.managementAddress.port = $1
        },
    ]

    /// `HOST:PORT` or `[IPV6]:PORT`; nil for empty or `off`.
    static func hostAndPort(_ text: String, key: String) throws(ConfigurationError) -> Address? {
        let value = text.trimmingCharacters(in: .whitespaces)
        if value.isEmpty || value.lowercased() == "off" { return nil }
        let host: Substring
        let portText: Substring
        if value.hasPrefix("["), let close = value.firstIndex(of: "]") {
            host = value[value.index(after: value.startIndex)..<close]
            let rest = value[value.index(after: close)...]
            guard rest.hasPrefix(":") else {
                throw ConfigurationError(key: key, message: "'\(value)' is not of the form HOST:PORT, [IPV6]:PORT or off")
            }
            portText = rest.dropFirst()
        } else if let colon = value.lastIndex(of: ":"), !value[..<colon].contains(":") {
            host = value[..<colon]
            portText = value[value.index(after: colon)...]
        } else {
            throw ConfigurationError(key: key, message: "'\(value)' is not of the form HOST:PORT, [IPV6]:PORT or off")
        }
        guard !host.isEmpty, let port = Int(portText), (0...65535).contains(port) else {
            throw ConfigurationError(key: key, message: "'\(value)' is not of the form HOST:PORT (port 0...65535), [IPV6]:PORT or off")
        }
        return Address(host: String(host), port: port)
    }

    private static func host(_ text: String, key: String) throws(ConfigurationError) -> String {
        let value = text.trimmingCharacters(in: .whitespaces)
        guard !value.isEmpty, !value.contains("/"), !value.contains(" ") else {
            throw ConfigurationError(key: key, message: "'\(text)' is not a host name or address")
        }
        return value.hasPrefix("[") && value.hasSuffix("]") ? String(value.dropFirst().dropLast()) : value
    }
}
