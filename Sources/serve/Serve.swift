import ArchiverCommand
import ArgumentParser
import Foundation
import Hummingbird
import Logging
import ServerCore
import Prometheus
import ServerHTTP
import ServerGRPC
import ServiceLifecycle

/// The entry point. `serve --start` forks the server off before anything else starts a thread
/// (see `Serve.launch()`); then the command runs under Swift concurrency. Called as `archiver`
/// (a link to this binary, as in the CUDA bundle), it is the archiver.
@main
enum ServeMain {
    static func main() {
        if let name = CommandLine.arguments.first, URL(fileURLWithPath: name).lastPathComponent == "archiver" {
            ArchiverCommandLine.main()
            return
        }
        _ = HostAllocator.inUse
        let work: @Sendable () async throws -> Void
        do {
            work = try Serve.parse().launch()
        } catch {
            Serve.exit(withError: error)
        }
        Task {
            do {
                try await work()
                Serve.exit()
            } catch {
                Serve.exit(withError: error)
            }
        }
        dispatchMain()
    }
}

struct Serve: AsyncParsableCommand, Sendable {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve TorchScript models from .mar archives over HTTP, as torchserve does.",
        discussion: """
            Exactly one of --start, --stop or --foreground.

            Examples:
              serve --start --ncs --model-store model_store --models unet=unet.mar
              curl -H "Authorization: Bearer $(jq -r .inference.key key_file.json)" \\
                   -T image.png http://127.0.0.1:8080/predictions/unet/
              serve --stop

            Listeners (config.properties: inference_address, management_address, metrics_address):
            inference on 127.0.0.1:8080, management on 127.0.0.1:8081, Prometheus metrics on 127.0.0.1:8082.
            gRPC (grpc_kserve_address, grpc_inference_port, grpc_management_port; enable_grpc=false turns them off):
            KServe v2 on 127.0.0.1:8083, TorchServe's inference on 127.0.0.1:7070 and management on 127.0.0.1:7071. Keys for token authorization are written
            to key_file.json in the working directory at start and removed at stop.
            """)

    @Flag(name: .long, help: "Start the server in the background; returns once /ping is healthy (exit 0) or start-up failed (exit 1).")
    var start = false

    @Flag(name: .long, help: "Stop the server started from this folder: drains in-flight requests, then exits.")
    var stop = false

    @Flag(name: .long, help: "Run attached (containers, tests); logs go to stderr. SIGTERM or Ctrl-C drain and stop it.")
    var foreground = false

    @Option(name: .long, help: "Folder holding model archives (.mar, .tar.gz or folders). Default: config's model_store, else ./model_store.")
    var modelStore: String?

    @Option(name: .long, help: "Models to load at start: NAME=FILE.mar[,...], FILE.mar, or 'all' (every archive in the store).")
    var models: String?

    @Option(name: .customLong("ts-config"), help: "A TorchServe config.properties. Default: ./config.properties if present.")
    var tsConfig: String?

    @Flag(name: .long, help: "No config snapshot: neither restore the last one nor write new ones.")
    var ncs = false

    @Option(name: .long, help: "Folder for serve.log, the pid file and snapshots (default: ./logs).")
    var logDir: String = "logs"

    @Flag(name: .long, help: "Allow registering and unregistering models through the management API.")
    var enableModelAPI = false

    @Flag(name: .long, help: "Serve without token authorization (no key_file.json; anyone who reaches a port may use it).")
    var disableTokenAuth = false

    @Flag(name: .long, help: "Print the config.properties key reference (docs/configuration.md) and exit.")
    var printConfigReference = false

    func validate() throws {
        guard printConfigReference || [start, stop, foreground].filter({ $0 }).count == 1 else {
            throw ValidationError("give exactly one of --start, --stop or --foreground")
        }
    }

    func run() async throws {
        if printConfigReference {
            print(ServerSettings.referenceMarkdown(), terminator: "")
        } else if stop {
            try Daemon.stop(logDirectory: logDirectory)
        } else if start {
            try await launch()()
        } else {
            try await runForeground()
        }
    }

    /// What this process goes on to do. For `--start` the server process is made here: forked
    /// off this one while it has a single thread, so that libtorch's start-up (~0.45 s of CPU in
    /// every process that loads it) is paid once, else spawned as `serve --foreground`.
    func launch() throws -> @Sendable () async throws -> Void {
        guard start else { return { try await run() } }
        let settings = try loadConfiguration()
        let logFile = try Daemon.prepareStart(logDirectory: logDirectory)
        let pid: pid_t
        switch try Daemon.forkServer(logFile: logFile) {
        case .server:
            return { try await runForeground() }
        case .launcher(let child):
            pid = child
        case nil:
            pid = try Daemon.spawn(arguments: Array(CommandLine.arguments.dropFirst()), logFile: logFile)
        }
        let logDirectory = logDirectory
        return {
            try await Daemon.awaitHealthy(
                pid: pid, logDirectory: logDirectory, logFile: logFile, inferenceAddress: settings.http.inferenceAddress)
        }
    }

    var logDirectory: URL {
        URL(fileURLWithPath: logDir, isDirectory: true).standardizedFileURL
    }

    /// Defaults, then the config file, then command-line flags.
    func loadConfiguration() throws -> ServerSettings {
        let cwd = URL(fileURLWithPath: FileManager.default.currentDirectoryPath, isDirectory: true)
        var settings = ServerSettings(core: ServerConfiguration(
            modelStore: cwd.appendingPathComponent("model_store", isDirectory: true),
            workDirectory: WorkDirectory.folder(in: FileManager.default.temporaryDirectory)))
        let configPath = tsConfig ?? (FileManager.default.fileExists(atPath: "config.properties") ? "config.properties" : nil)
        if let configPath {
            let url = URL(fileURLWithPath: configPath, relativeTo: cwd)
            guard let text = try? String(contentsOf: url, encoding: .utf8) else {
                throw ValidationError("cannot read the config file \(url.path)")
            }
            do {
                let warnings = try settings.apply(
                    PropertiesFile(parsing: text), environment: ProcessInfo.processInfo.environment,
                    relativeTo: url.deletingLastPathComponent())
                for warning in warnings { FileHandle.standardError.write(Data("serve: warning: \(warning)\n".utf8)) }
            } catch {
                throw ValidationError("\(url.lastPathComponent): \(error)")
            }
        }
        if let modelStore { settings.core.modelStore = URL(fileURLWithPath: modelStore, relativeTo: cwd).standardizedFileURL }
        if let models { settings.core.loadModels = models.split(separator: ",").map(String.init) }
        if enableModelAPI { settings.core.enableModelAPI = true }
        if disableTokenAuth { settings.http.tokenAuthorization = false }
        do {
            try settings.http.applyPlatformEnvironment(ProcessInfo.processInfo.environment)
        } catch {
            throw ValidationError("\(error)")
        }
        return settings
    }

    func runForeground() async throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        let logger = Logger(label: "serve")
        HTTPConfiguration.NetworkLimits.raiseOpenFileLimit()
        let settings = try loadConfiguration()
        logger.info("malloc: \(HostAllocator.inUse)")
        let configuration = settings.core
        let http = settings.http
        try WorkDirectory.prepare(configuration.workDirectory, logger: logger)
        // Before the listeners are built: the inference port adds its server spans only when a tracer is there.
        let traceExport = try TraceExport.bootstrap(
            configured: configuration.enableTracing, environment: ProcessInfo.processInfo.environment, logger: logger)
        defer { try? FileManager.default.removeItem(at: configuration.workDirectory) }

        let snapshots = ncs ? nil : SnapshotStore(directory: logDirectory.appendingPathComponent("config", isDirectory: true))
        // A corrupt snapshot is moved aside and kept; the server starts without it.
        let (restored, setAside) = try snapshots?.loadAtStart() ?? (nil, nil)
        if let setAside { logger.error("\(setAside)") }
        let registry = PrometheusCollectorRegistry()
        let server = ModelServer(
            configuration: configuration, logger: logger, snapshots: snapshots,
            metricsFactory: HTTPServer.metricsFactory(registry: registry))
        defer { server.shutdown() }

        let authorization: TokenAuthorization?
        if http.tokenAuthorization {
            authorization = try TokenAuthorization(
                keyFile: URL(fileURLWithPath: "key_file.json"), expirationMinutes: http.tokenExpirationMinutes)
            logger.info("token authorization on: keys in key_file.json")
        } else {
            authorization = nil
            if http.managementAddress.host != "127.0.0.1" && http.managementAddress.host != "localhost" {
                logger.warning("the management API listens on \(http.managementAddress.host) without token authorization")
            }
        }
        defer { authorization?.removeKeyFile() }

        if let restored {
            logger.info("restoring \(restored.models.count) models from the snapshot of \(restored.createdOn)")
        }
        // The listeners come up first so liveness answers at once and readiness says which
        // model is loading; the models load in the background.
        let startup = StartupService(
            server: server, snapshot: restored,
            registrations: try StartupModels.parse(configuration.loadModels, store: configuration.modelStore))

        // Timeouts, connection caps and one bound on request bodies in flight for all three listeners.
        let edge = NetworkEdge(limits: http.networkLimits, maxRequestSize: configuration.maxRequestSize, logger: logger)
        let inference = HTTPServer.inferenceApplication(
            server: server, host: http.inferenceAddress.host, port: http.inferenceAddress.port,
            authorization: authorization, edge: edge, invocationsModel: http.invocationsModel, logger: logger)
        let management = HTTPServer.managementApplication(
            server: server, host: http.managementAddress.host, port: http.managementAddress.port,
            authorization: authorization, edge: edge, logger: logger)
        let metrics = HTTPServer.metricsApplication(
            server: server, registry: registry, host: http.metricsAddress.host,
            port: http.metricsAddress.port, edge: edge, logger: logger)
        // gRPC: KServe v2 on grpc_kserve_address, TorchServe's on 7070/7071 (enable_grpc=false: none).
        let grpc = GRPCListeners.configured(settings.grpc, server: server, authorization: authorization, logger: logger)
        // Services stop in reverse order: the drain comes first, the listeners after it.
        // The trace exporter comes first, so it stops last and flushes the spans of drained requests.
        var groupConfiguration = ServiceGroupConfiguration(
            services: (traceExport.map { [.init(service: $0)] } ?? [])
                + [.init(service: inference), .init(service: management), .init(service: metrics)]
                + grpc.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) }
                + [.init(service: startup),
                   .init(service: DrainService(server: server, delay: .seconds(configuration.drainDelay)))],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        groupConfiguration.maximumGracefulShutdownDuration = .seconds(configuration.drainDelay + configuration.gracefulShutdownTimeout)
        let group = ServiceGroup(configuration: groupConfiguration)
        try await group.run()
        logger.info("stopped")
    }
}

/// The `--models` / `load_models` entries: which archives to register at start.
enum StartupModels {
    static func parse(_ entries: [String], store: URL) throws -> [RegistrationOptions] {
        var result: [RegistrationOptions] = []
        for item in entries.map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            if item == "all" {
                let files = (try? FileManager.default.contentsOfDirectory(atPath: store.path)) ?? []
                result += files.sorted()
                    .filter { $0.hasSuffix(".mar") || $0.hasSuffix(".tar.gz") || $0.hasSuffix(".tgz") }
                    .map { RegistrationOptions(url: $0) }
                continue
            }
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            switch parts.count {
            case 1: result.append(RegistrationOptions(url: parts[0]))
            case 2 where !parts[0].isEmpty && !parts[1].isEmpty: result.append(RegistrationOptions(url: parts[1], modelName: parts[0]))
            default: throw ValidationError("--models entry '\(item)' is not NAME=FILE.mar or FILE.mar")
            }
        }
        return result
    }
}

/// Loads the snapshot's and the declared models once the listeners are up; a model that fails
/// keeps readiness at 503 with the reason (and `serve --start` reports it).
struct StartupService: Service {
    let server: ModelServer
    let snapshot: Snapshot?
    let registrations: [RegistrationOptions]

    func run() async throws {
        await server.loadStartupModels(snapshot: snapshot, registrations: registrations)
        try? await gracefulShutdown()
    }
}

/// On graceful shutdown, flips readiness to 503 and keeps the listeners open for `delay`.
struct DrainService: Service {
    let server: ModelServer
    let delay: Duration

    func run() async throws {
        try? await gracefulShutdown()
        server.beginDraining()
        try? await Task.sleep(for: delay)
    }
}
