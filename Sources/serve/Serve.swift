import ArgumentParser
import Foundation
import Hummingbird
import Logging
import ModelServer
import ServerHTTP

@main
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve TorchScript models from .mar archives over HTTP (TorchServe-compatible).",
        discussion: """
            Examples:
              serve --foreground --model-store model_store --models unet=unet.mar
              curl -X POST http://127.0.0.1:8080/predictions/unet/ -T image.png
            """)

    @Flag(name: .long, help: "Run attached to the terminal (for containers and tests); logs go to stderr.")
    var foreground = false

    @Option(name: .long, help: "Folder holding model archives (.mar, .tar.gz or folders).")
    var modelStore: String = "model_store"

    @Option(name: .long, help: "Models to load at start: NAME=FILE.mar[,NAME=FILE.mar...], FILE.mar, or 'all' for every archive in the store.")
    var models: String?

    @Option(name: .long, help: "Inference listener address, e.g. http://127.0.0.1:8080.")
    var inferenceAddress: String = "http://127.0.0.1:8080"

    @Option(name: .long, help: "libtorch intra-op threads per worker (default 1: robust when other processes share the cores).")
    var intraOpThreads: Int = 1

    func validate() throws {
        guard foreground else {
            throw ValidationError("only --foreground is available in this build; run: serve --foreground --model-store model_store --models all")
        }
        guard intraOpThreads >= 1 else { throw ValidationError("--intra-op-threads must be at least 1") }
        _ = try ListenAddress(inferenceAddress)
    }

    func run() async throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        let logger = Logger(label: "serve")
        let address = try ListenAddress(inferenceAddress)
        let store = URL(fileURLWithPath: modelStore, isDirectory: true).standardizedFileURL
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("serve-\(getpid())", isDirectory: true)
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }

        var configuration = ServerConfiguration(modelStore: store, workDirectory: work)
        configuration.intraOpThreads = intraOpThreads
        let server = ModelServer(configuration: configuration, logger: logger)
        defer { server.shutdown() }

        for registration in try StartupModels.parse(models, store: store) {
            do {
                let description = try await server.register(registration, atStartup: true)
                logger.info("model \(description.modelName) version \(description.modelVersion) ready")
            } catch {
                logger.error("model \(registration.modelName ?? registration.url) failed to load: \(error)")
                throw ExitCode.failure
            }
        }
        let app = HTTPServer.inferenceApplication(server: server, host: address.host, port: address.port, logger: logger)
        try await app.runService()
    }
}

/// `http://host:port` as the config files write listener addresses.
struct ListenAddress {
    var host: String
    var port: Int

    init(_ text: String) throws {
        guard let components = URLComponents(string: text), components.scheme == "http",
              let host = components.host, let port = components.port, (1...65535).contains(port) else {
            throw ValidationError("address '\(text)' is not of the form http://HOST:PORT")
        }
        self.host = host
        self.port = port
    }
}

/// The `--models` value: which archives to register at start.
enum StartupModels {
    static func parse(_ value: String?, store: URL) throws -> [RegistrationOptions] {
        guard let value, !value.isEmpty else { return [] }
        if value == "all" {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: store.path)) ?? []
            return files.sorted().filter { $0.hasSuffix(".mar") || $0.hasSuffix(".tar.gz") }.map { RegistrationOptions(url: $0) }
        }
        return try value.split(separator: ",").map { item in
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            switch parts.count {
            case 1: return RegistrationOptions(url: parts[0])
            case 2 where !parts[0].isEmpty && !parts[1].isEmpty: return RegistrationOptions(url: parts[1], modelName: parts[0])
            default: throw ValidationError("--models entry '\(item)' is not NAME=FILE.mar or FILE.mar")
            }
        }
    }
}
