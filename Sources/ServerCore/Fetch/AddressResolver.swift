#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Host names to addresses through the system's resolver (`getaddrinfo`): the one place the
/// fetch code touches a C structure. It blocks, so it runs on a thread pool, never on an event
/// loop or the cooperative pool.
enum AddressResolver {
    /// `getaddrinfo` failed; `code` is its `EAI_…` status, for logs only.
    struct Failure: Error {
        var code: Int32
    }

    /// The addresses `host` resolves to for TCP, in the order the resolver gives them, each once.
    /// - Parameter numericOnly: parse a numeric address only, never asking a name server.
    static func resolve(_ host: String, numericOnly: Bool = false) throws(Failure) -> [IPAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if os(Linux)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        hints.ai_flags = numericOnly ? AI_NUMERICHOST : 0
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, nil, &hints, &list)
        guard status == 0, let first = list else { throw Failure(code: status) }
        defer { freeaddrinfo(first) }
        var addresses: [IPAddress] = []
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let current = entry {
            if let socketAddress = current.pointee.ai_addr, let address = Self.address(socketAddress),
               !addresses.contains(address) {
                addresses.append(address)
            }
            entry = current.pointee.ai_next
        }
        guard !addresses.isEmpty else { throw Failure(code: EAI_NONAME) }
        return addresses
    }

    /// The IP address of an `AF_INET` or `AF_INET6` socket address; nil for other families.
    private static func address(_ socketAddress: UnsafeMutablePointer<sockaddr>) -> IPAddress? {
        switch Int32(socketAddress.pointee.sa_family) {
        case AF_INET:
            return socketAddress.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in
                withUnsafeBytes(of: pointer.pointee.sin_addr) { IPAddress(bytes: Array($0)) }
            }
        case AF_INET6:
            return socketAddress.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                withUnsafeBytes(of: pointer.pointee.sin6_addr) { IPAddress(bytes: Array($0)) }
            }
        default:
            return nil
        }
    }
}
