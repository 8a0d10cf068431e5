import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import ServerTestSupport
import TestFixtures
import Testing

/// The `serve` executable as a container runs it (`--foreground`) and as a user does
/// (`--start`, `--stop`), driven over loopback: start-up with listeners first, and SIGTERM
/// under load.
@Suite(.serialized) struct ServeProcessTests {
    static let executable = BuiltExecutable("serve")

    /// A fresh folder with a config.properties for loopback ports that were just free (no token
    /// authorization, plus `extra` lines); the caller removes the folder.
    static func serveFolder(config extra: String = "") throws -> (folder: URL, ports: [Int]) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("serve-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        // Six ports: the three HTTP listeners and the three gRPC ones (whose defaults, 8083, 7070
        // and 7071, would clash between tests running side by side).
        let ports = try freePorts(6)
        try """
            inference_address=http://127.0.0.1:\(ports[0])
            management_address=http://127.0.0.1:\(ports[1])
            metrics_address=http://127.0.0.1:\(ports[2])
            grpc_kserve_address=127.0.0.1:\(ports[3])
            grpc_inference_port=\(ports[4])
            grpc_management_port=\(ports[5])
            disable_token_authorization=true
            \(extra)
            """.write(to: folder.appendingPathComponent("config.properties"), atomically: true, encoding: .utf8)
        return (folder, ports)
    }

    /// A running `serve --foreground` with its own folder, store and ports.
    final class ServeProcess: @unchecked Sendable {
        let process = Process()
        let folder: URL
        let inferencePort: Int
        let log: URL

        /// - Parameter environment: variables set for the process on top of this one's.
        init(models: String, config extra: String = "", store: TestModelStore, environment: [String: String] = [:]) throws {
            let ports: [Int]
            (folder, ports) = try ServeProcessTests.serveFolder(config: extra)
            inferencePort = ports[0]
            log = folder.appendingPathComponent("serve.log")
            FileManager.default.createFile(atPath: log.path, contents: nil)
            process.executableURL = ServeProcessTests.executable.url
            process.arguments = ["--foreground", "--ncs", "--ts-config", "config.properties", "--model-store", store.root.path,
                                 "--models", models, "--log-dir", folder.appendingPathComponent("logs").path]
            process.currentDirectoryURL = folder
            if !environment.isEmpty {
                process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            }
            let handle = try FileHandle(forWritingTo: log)
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
        }

        var logText: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

        func stop() {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
            try? FileManager.default.removeItem(at: folder)
        }

        /// Status and body of `GET path`, or nil when the connection failed.
        func get(_ path: String) async -> (status: Int, body: String)? {
            await send(URLRequest(url: url(path)))
        }

        func predict(_ body: [UInt8]) async -> (status: Int, body: String)? {
            var request = URLRequest(url: url("/predictions/unet_tiny"))
            request.httpMethod = "POST"
            request.httpBody = Data(body)
            return await send(request)
        }

        private func url(_ path: String) -> URL {
            URL(string: "http://127.0.0.1:\(inferencePort)\(path)") ?? URL(fileURLWithPath: "/")
        }

        private func send(_ request: URLRequest) async -> (status: Int, body: String)? {
            var request = request
            request.timeoutInterval = 30
            guard let (data, response) = try? await URLSession.shared.data(for: request),
                  let status = (response as? HTTPURLResponse)?.statusCode else { return nil }
            return (status, String(decoding: data, as: UTF8.self))
        }

        /// Polls `/ping` until it answers at all (listening) within `seconds`. 120 s: with the whole
        /// suite running beside it on two cores, a debug `serve` once took over 60 s to listen.
        func waitForListener(seconds: Double = 120) async throws -> (status: Int, body: String) {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if let answer = await get("/ping") { return answer }
                guard process.isRunning else { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "serve did not listen; log:\n\(logText)"])
        }
    }

    @Test func startForksAHealthyDaemonAndStopDrainsIt() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        let (folder, ports) = try Self.serveFolder(config: "drain_delay=0")
        defer { try? FileManager.default.removeItem(at: folder) }
        let arguments = ["--start", "--ncs", "--model-store", store.root.path, "--models", "unet_tiny"]

        let started = try Self.executable.run(arguments, in: folder)
        let pidText = try? String(contentsOf: folder.appendingPathComponent("logs/serve.pid"), encoding: .utf8)
        let pid = pid_t(pidText?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
        defer { if pid > 0 { kill(pid, SIGKILL) } }
        #expect(started.status == 0, "\(started.output)")
        #expect(started.output.contains("serve: started (pid \(pid))"), "\(started.output)")
        #expect(pid > 0 && kill(pid, 0) == 0)
        // Forked off `serve --start` (libtorch's start-up paid once), not spawned as `serve --foreground`.
        let commandLine = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
        #expect(commandLine.split(separator: "\0").contains("--start"), "\(commandLine)")

        // Healthy as --start said, and it answers predictions.
        var request = URLRequest(url: try #require(URL(string: "http://127.0.0.1:\(ports[0])/predictions/unet_tiny")))
        request.httpMethod = "POST"
        request.httpBody = Data(try Fixtures.bytes("images/rgb.png"))
        let (_, response) = try await URLSession.shared.data(for: request)
        #expect((response as? HTTPURLResponse)?.statusCode == 200)
        // Its malloc is jemalloc, which Package.swift links (a SERVE_ALLOCATOR=glibc build keeps glibc's).
        let glibcBuild = ProcessInfo.processInfo.environment["SERVE_ALLOCATOR"] == "glibc"
        // Read to the end: Foundation's String(contentsOfFile:) stops at the first 4 KiB of a /proc file.
        let mapsData = try? FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/\(pid)/maps")).readToEnd()
        let maps = String(decoding: mapsData ?? Data(), as: UTF8.self)
        #expect(maps.contains("/libjemalloc.so") != glibcBuild, "\(maps.suffix(3000))")

        // A second --start from the same folder refuses.
        let again = try Self.executable.run(arguments, in: folder)
        #expect(again.status != 0)
        #expect(again.output.contains("a server is already running (pid \(pid)"), "\(again.output)")

        let stopped = try Self.executable.run(["--stop"], in: folder)
        #expect(stopped.status == 0, "\(stopped.output)")
        #expect(stopped.output.contains("serve: stopped (pid \(pid))"), "\(stopped.output)")
        // Gone, or a zombie waiting for whoever adopted it to reap it.
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        let state = stat.split(separator: ")").last?.trimmingCharacters(in: .whitespaces).first
        #expect(stat.isEmpty || state == "Z" || state == "X", "\(stat)")
        let log = (try? String(contentsOf: folder.appendingPathComponent("logs/serve.log"), encoding: .utf8)) ?? ""
        #expect(log.contains("stopped"), "\(log.suffix(2000))")
        #expect(log.contains(glibcBuild ? "malloc: glibc malloc, 2 arenas" : "malloc: jemalloc 5."), "\(log.prefix(2000))")
    }

    @Test func startReportsAModelThatFailsToLoadAndStopsTheServer() throws {
        let store = try TestModelStore()
        defer { store.remove() }
        try store.addFolderArchive(name: "broken", model: "models/not_a_model.pt", config: TestModelStore.segmenterConfig)
        let (folder, _) = try Self.serveFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let started = try Self.executable.run(["--start", "--ncs", "--model-store", store.root.path, "--models", "broken"], in: folder)
        #expect(started.status != 0)
        #expect(started.output.contains("model broken: failed to load"), "\(started.output)")
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("logs/serve.pid").path))
    }

    @Test func aStartUpModelThatFailsKeepsTheServerUpWithReadinessSayingWhy() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        try store.addFolderArchive(name: "broken", model: "models/not_a_model.pt", config: TestModelStore.segmenterConfig)
        let serve = try ServeProcess(models: "unet_tiny,broken", store: store)
        defer { serve.stop() }
        _ = try await serve.waitForListener()
        var answer = await serve.get("/ping")
        let deadline = Date().addingTimeInterval(60)
        while answer?.body.contains("failed to load") != true && Date() < deadline {
            try await Task.sleep(for: .milliseconds(100))
            answer = await serve.get("/ping")
        }
        #expect(answer?.status == 503)
        #expect(answer?.body.contains("model broken: failed to load") == true, "\(answer?.body ?? "no answer")")
        #expect(serve.process.isRunning)
        // The model that did load answers.
        let predicted = await serve.predict(try Fixtures.bytes("images/rgb.png"))
        #expect(predicted?.status == 200)
    }

    @Test func sigtermUnderLoadFlipsReadinessAndKeepsAnsweringUntilTheDrainDelayEnds() async throws {
        let store = try TestModelStore()
        defer { store.remove() }
        let drainDelay = 2.0
        let serve = try ServeProcess(models: "unet_tiny", config: "drain_delay=2\ngraceful_shutdown_timeout=10", store: store)
        defer { serve.stop() }
        var ready = try await serve.waitForListener()
        let loaded = Date().addingTimeInterval(60)
        while ready.status != 200 && Date() < loaded {
            try await Task.sleep(for: .milliseconds(50))
            ready = await serve.get("/ping") ?? ready
        }
        #expect(ready.status == 200, "\(ready.body)")

        let body = try Fixtures.bytes("images/rgb.png")
        let signalled = SignalTime()
        @Sendable func signalThenPing() async -> Int? {
            try? await Task.sleep(for: .seconds(1))
            signalled.mark()
            kill(serve.process.processIdentifier, SIGTERM)
            // Readiness flips at once, while predictions are still answered.
            try? await Task.sleep(for: .milliseconds(300))
            return await serve.get("/ping")?.status
        }
        async let pingAfterSignal = signalThenPing()
        let predictions = await withTaskGroup(of: [(sent: Date, status: Int?)].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var seen: [(sent: Date, status: Int?)] = []
                    let end = Date().addingTimeInterval(1 + drainDelay + 3)
                    while Date() < end {
                        let sent = Date()
                        let answer = await serve.predict(body)
                        seen.append((sent, answer?.status))
                        if answer == nil { try? await Task.sleep(for: .milliseconds(50)) }
                    }
                    return seen
                }
            }
            var all: [(sent: Date, status: Int?)] = []
            for await part in group { all += part }
            return all
        }
        #expect(await pingAfterSignal == 503)
        let signalTime = try #require(signalled.time)
        // Requests sent before the drain delay ends are all answered: no connection errors.
        let beforeDeadline = predictions.filter { $0.sent < signalTime.addingTimeInterval(drainDelay - 0.3) }
        #expect(beforeDeadline.count > 4)
        let failures = beforeDeadline.filter { $0.status != 200 }.map { $0.status.map(String.init) ?? "connection error" }
        #expect(failures.isEmpty, "\(failures.prefix(5))")
        serve.process.waitUntilExit()
        #expect(serve.process.terminationStatus == 0, "\(serve.logText.suffix(2000))")
    }
}

/// When SIGTERM was sent.
final class SignalTime: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Date?

    var time: Date? { lock.withLock { value } }

    func mark() { lock.withLock { value = Date() } }
}

/// Loopback ports that were free a moment ago (bound to port 0, then released).
func freePorts(_ count: Int) throws -> [Int] {
    var sockets: [Int32] = []
    defer { sockets.forEach { close($0) } }
    var ports: [Int] = []
    for _ in 0..<count {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        sockets.append(fd)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw POSIXError(.EADDRINUSE) }
        ports.append(Int(UInt16(bigEndian: address.sin_port)))
    }
    return ports
}
