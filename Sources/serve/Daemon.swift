import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import ServerCore
import ServerHTTP
import Torch

/// `serve --start` and `serve --stop`: a detached server process with a pid file.
enum Daemon {
    static func pidFile(in logDirectory: URL) -> URL {
        logDirectory.appendingPathComponent("serve.pid")
    }

    /// The pid in the pid file, if that process is alive.
    static func runningPID(in logDirectory: URL) -> pid_t? {
        guard let text = try? String(contentsOf: pidFile(in: logDirectory), encoding: .utf8),
              let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0, isAlive(pid)
        else { return nil }
        return pid
    }

    /// Whether `pid` runs (a zombie waiting for its reaper does not count).
    static func isAlive(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return true }
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
        return state != "Z" && state != "X"
    }

    /// Checks that no server runs from `logDirectory` and returns the log file a new one writes.
    static func prepareStart(logDirectory: URL) throws -> URL {
        if let pid = runningPID(in: logDirectory) {
            throw ServeError("a server is already running (pid \(pid), pid file \(pidFile(in: logDirectory).path)); stop it with serve --stop")
        }
        try FileManager.default.createDirectory(at: logDirectory, withIntermediateDirectories: true)
        return logDirectory.appendingPathComponent("serve.log")
    }

    enum Detached {
        /// This is the new server process: in its own session, logging to the log file.
        case server
        /// This is `serve --start`; the server runs as `pid`.
        case launcher(pid: pid_t)
    }

    /// Forks the server off this process, which has already paid for loading libtorch
    /// (~0.45 s of CPU at every process start), so start-up pays for it once. Only safe
    /// while this process has a single thread (no Swift concurrency, no dispatch queues
    /// yet), so it returns nil, forking nothing, when it has more. OpenBLAS's idle pool,
    /// started when the library loaded, is stopped first, as OpenBLAS does before any fork.
    static func forkServer(logFile: URL) throws -> Detached? {
        try? TorchRuntime.stopBLASThreads()
        guard singleThreaded else { return nil }
        fflush(nil)
        let pid = fork()
        guard pid >= 0 else { throw ServeError("cannot start the server: fork failed: \(String(cString: strerror(errno)))") }
        guard pid == 0 else { return .launcher(pid: pid) }
        // The server: a new session (it outlives this shell and its terminal), stdin from
        // /dev/null, stdout and stderr to the log file.
        setsid()
        let input = open("/dev/null", O_RDONLY)
        let log = open(logFile.path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        guard input >= 0, log >= 0 else {
            FileHandle.standardError.write(Data("serve: cannot open \(logFile.path): \(String(cString: strerror(errno)))\n".utf8))
            _exit(1)
        }
        dup2(input, 0)
        dup2(log, 1)
        dup2(log, 2)
        // Nothing else inherited stays open: a descriptor the caller of `--start` watches for
        // its end (a pipe, or the socket Foundation's Process holds to see a child exit) would
        // otherwise wait for the server's end instead.
        closefrom(3)
        return .server
    }

    /// Whether this process runs one thread, per /proc/self/task.
    static var singleThreaded: Bool {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task"))?.count == 1
    }

    /// Starts `serve --foreground` with the same arguments as a new program in a new session,
    /// logging to `logFile`: the way to start when this process can no longer fork safely.
    static func spawn(arguments: [String], logFile: URL) throws -> pid_t {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let childArguments = [executable] + arguments.map { $0 == "--start" ? "--foreground" : $0 }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logFile.path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, posixSpawnSetSID)

        // The server inherits only 0, 1 and 2 (see forkServer).
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? [] {
            if let fd = Int32(name), fd > 2 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        }
        var pid: pid_t = 0
        let argv = childArguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let status = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard status == 0 else {
            throw ServeError("cannot start \(executable): \(String(cString: strerror(status)))")
        }
        return pid
    }

    /// Records the server's pid and returns once its `/ping` is healthy; stops it and throws
    /// when a model failed to load, and throws with the log's tail when it exited.
    static func awaitHealthy(pid: pid_t, logDirectory: URL, logFile: URL, inferenceAddress: HTTPConfiguration.Address) async throws {
        try "\(pid)\n".write(to: pidFile(in: logDirectory), atomically: true, encoding: .utf8)

        let started = ContinuousClock.now
        while ContinuousClock.now - started < .seconds(600) {
            var exitStatus: Int32 = 0
            if waitpid(pid, &exitStatus, WNOHANG) == pid {
                try? FileManager.default.removeItem(at: pidFile(in: logDirectory))
                let tail = (try? String(contentsOf: logFile, encoding: .utf8))?.split(separator: "\n").suffix(15).joined(separator: "\n") ?? ""
                throw ServeError("the server exited during start-up; last lines of \(logFile.path):\n\(tail)")
            }
            switch await health(inferenceAddress) {
            case .healthy:
                print("serve: started (pid \(pid)); inference on \(inferenceAddress), logs in \(logFile.path)")
                return
            case .unhealthy(let reason) where reason.contains("failed to load"):
                kill(pid, SIGTERM)
                _ = waitpid(pid, nil, 0)
                try? FileManager.default.removeItem(at: pidFile(in: logDirectory))
                throw ServeError("start-up failed, \(reason); the server was stopped. See \(logFile.path)")
            case .unhealthy, .unreachable:
                break
            }
            // /ping is cheap; a short poll keeps `--start` from adding up to its interval to start-up.
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ServeError("the server (pid \(pid)) did not become healthy within 600 s; see \(logFile.path)")
    }

    enum Health {
        case healthy
        case unhealthy(reason: String)
        case unreachable
    }

    /// What `/ping` says: 200, 503 with its reason, or no answer.
    /// Through AsyncHTTPClient, not URLSession: FoundationNetworking would tie `serve` to libcurl,
    /// which a build with the static Swift standard library (scripts/cuda/bundle) must then link.
    static func health(_ address: HTTPConfiguration.Address) async -> Health {
        let request = HTTPClientRequest(url: "http://\(address.host):\(address.port)/ping")
        guard let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(2)),
              let body = try? await response.body.collect(upTo: 64 * 1024)
        else { return .unreachable }
        if response.status == .ok { return .healthy }
        let json = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any]
        return .unhealthy(reason: json?["reason"] as? String ?? "HTTP \(response.status.code)")
    }

    /// Sends SIGTERM to the server of the pid file and waits for it to drain and exit.
    static func stop(logDirectory: URL) throws {
        let file = pidFile(in: logDirectory)
        guard let pid = runningPID(in: logDirectory) else {
            try? FileManager.default.removeItem(at: file)
            throw ServeError("no server is running from here (no live pid in \(file.path))")
        }
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(60)
        while isAlive(pid) && Date() < deadline {
            usleep(100_000)
        }
        if isAlive(pid) {
            throw ServeError("the server (pid \(pid)) is still draining after 60 s; it will exit when done, or kill -9 \(pid)")
        }
        try? FileManager.default.removeItem(at: file)
        print("serve: stopped (pid \(pid))")
    }
}

/// glibc's `POSIX_SPAWN_SETSID`, hidden from Swift behind `_GNU_SOURCE`.
private let posixSpawnSetSID: Int16 = 0x80

/// A start or stop failure, printed without the usage text.
struct ServeError: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}
