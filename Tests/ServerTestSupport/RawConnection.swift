import Foundation
import Synchronization

/// A plain blocking TCP connection to 127.0.0.1, for what an HTTP client library hides or
/// never does: hanging up right after sending, sending a head or a body slowly, holding a
/// connection open. Reads run on threads of their own, so no task blocks.
public final class RawConnection: @unchecked Sendable {
    private let socketFD: Int32

    public init(port: Int) throws {
        socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socketFD >= 0 else { throw POSIXError(.EIO) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socketFD, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            Glibc.close(socketFD)
            throw POSIXError(.ECONNREFUSED)
        }
    }

    /// A complete HTTP/1.1 POST that asks the server to close after answering.
    public static func post(_ path: String, body: [UInt8]) -> [UInt8] {
        Array("POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8) + body
    }

    public func send(_ text: String) throws {
        try send(Array(text.utf8))
    }

    public func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(socketFD, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { throw POSIXError(.EPIPE) }
            offset += sent
        }
    }

    /// Sends `parts` with `seconds` between them, from a thread of its own so that a busy
    /// task pool does not stretch the pauses.
    public func sendPaced(_ parts: [String], every seconds: Double) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let thread = Thread {
                do {
                    for part in parts {
                        Thread.sleep(forTimeInterval: seconds)
                        try self.send(part)
                    }
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            thread.start()
        }
    }

    public struct Reply: Sendable, CustomStringConvertible {
        public var text: String
        /// Whether the server closed (or reset) the connection.
        public var closed: Bool
        public var seconds: Double

        public var description: String { "closed: \(closed) after \(seconds) s: \(text.prefix(400))" }
    }

    /// Everything the server sends until it closes (at most two minutes).
    public func readToEnd() async -> String {
        await readUntilClosed(timeout: 120).text
    }

    /// What the server sends until it closes, or until `timeout` seconds pass.
    public func readUntilClosed(timeout: Double) async -> Reply {
        await read(timeout: timeout) { _ in false }
    }

    /// What the server sends until the text contains `marker`, it closes, or `timeout` passes.
    public func readUntil(_ marker: String, timeout: Double) async -> Reply {
        await read(timeout: timeout) { $0.contains(marker) }
    }

    private func read(timeout: Double, until done: @escaping @Sendable (String) -> Bool) async -> Reply {
        await withCheckedContinuation { continuation in
            let thread = Thread { [socketFD] in
                let start = Date()
                var received: [UInt8] = []
                var closed = false
                var chunk = [UInt8](repeating: 0, count: 65536)
                while !done(String(decoding: received, as: UTF8.self)) {
                    let left = timeout - Date().timeIntervalSince(start)
                    guard left > 0 else { break }
                    var poller = pollfd(fd: socketFD, events: Int16(POLLIN), revents: 0)
                    guard poll(&poller, 1, Int32(left * 1000) + 1) > 0 else { continue }
                    let count = chunk.withUnsafeMutableBytes { recv(socketFD, $0.baseAddress, $0.count, 0) }
                    if count <= 0 {
                        closed = true
                        break
                    }
                    received += chunk[0..<count]
                }
                continuation.resume(returning: Reply(
                    text: String(decoding: received, as: UTF8.self), closed: closed, seconds: Date().timeIntervalSince(start)))
            }
            thread.start()
        }
    }

    private let closed = Mutex(false)

    /// Closes the socket, once.
    public func close() {
        let wasClosed = closed.withLock { isClosed in
            defer { isClosed = true }
            return isClosed
        }
        guard !wasClosed else { return }
        Glibc.close(socketFD)
    }
}
