import NIOCore

/// An IPv4 (4 bytes) or IPv6 (16 bytes) address in network order, as a host name resolved to it.
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    /// 4 bytes for IPv4, 16 for IPv6.
    public let bytes: [UInt8]

    /// nil unless `bytes` holds 4 or 16 bytes.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// `bytes` known to be 4 or 16 long.
    fileprivate init(unchecked bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// A numeric address (`10.0.0.1`, `fd00::1`), parsed without any name lookup; nil for anything else.
    public init?(_ text: String) {
        guard let parsed = try? AddressResolver.resolve(text, numericOnly: true).first else { return nil }
        self = parsed
    }

    public var isIPv4: Bool { bytes.count == 4 }

    /// The IPv4 address an IPv6 address carries in its last 4 bytes: IPv4-mapped
    /// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`) or the NAT64 well-known prefix
    /// (`64:ff9b::a.b.c.d`). A connection to one of them reaches that IPv4 address, so it is
    /// checked as that address too.
    public var embeddedIPv4: IPAddress? {
        guard bytes.count == 16 else { return nil }
        let head = bytes[0..<12]
        let mapped = head.elementsEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF])
        let compatible = head.allSatisfy { $0 == 0 }
        let nat64 = head.elementsEqual([0x00, 0x64, 0xFF, 0x9B, 0, 0, 0, 0, 0, 0, 0, 0])
        guard mapped || compatible || nat64 else { return nil }
        return IPAddress(unchecked: Array(bytes[12..<16]))
    }

    /// The socket address to connect to: this address and `port`.
    func socketAddress(port: Int) throws -> SocketAddress {
        try SocketAddress(packedIPAddress: ByteBuffer(bytes: bytes), port: port)
    }

    /// Dotted decimal, or RFC 5952 hexadecimal groups with the longest run of zero groups as `::`.
    public var description: String {
        if isIPv4 { return bytes.map(String.init).joined(separator: ".") }
        let groups = stride(from: 0, to: 16, by: 2).map { UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]) }
        var longest = 0..<0
        var start: Int?
        for index in 0...groups.count {
            if index < groups.count, groups[index] == 0 {
                start = start ?? index
            } else if let first = start {
                if index - first > longest.count, index - first > 1 { longest = first..<index }
                start = nil
            }
        }
        let text = { (range: Range<Int>) in groups[range].map { String($0, radix: 16) }.joined(separator: ":") }
        guard !longest.isEmpty else { return text(0..<groups.count) }
        return text(0..<longest.lowerBound) + "::" + text(longest.upperBound..<groups.count)
    }
}

/// A range of addresses in CIDR form (`10.0.0.0/8`, `fe80::/10`); a plain address is a range of one.
public struct AddressRange: Sendable, Hashable, CustomStringConvertible {
    /// The first address of the range (bits beyond the prefix are zero).
    public let network: IPAddress
    /// The number of leading bits every address in the range shares with `network`.
    public let prefixLength: Int

    /// nil when `prefixLength` is longer than the address.
    public init?(_ address: IPAddress, prefixLength: Int) {
        guard (0...(address.bytes.count * 8)).contains(prefixLength) else { return nil }
        self.init(masking: address, prefixLength: prefixLength)
    }

    /// `prefixLength` known to fit the address.
    fileprivate init(masking address: IPAddress, prefixLength: Int) {
        var masked = address.bytes
        for index in masked.indices {
            let kept = min(max(prefixLength - index * 8, 0), 8)
            masked[index] &= kept == 0 ? 0 : ~UInt8(0) << (8 - kept)
        }
        network = IPAddress(unchecked: masked)
        self.prefixLength = prefixLength
    }

    /// `ADDRESS` or `ADDRESS/PREFIX` as a config value spells it; nil for anything else.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard let address = IPAddress(parts[0]) else { return nil }
        var length = address.bytes.count * 8
        if parts.count == 2 {
            guard parts[1].allSatisfy(\.isASCII), let prefix = Int(parts[1]) else { return nil }
            length = prefix
        }
        self.init(address, prefixLength: length)
    }

    /// Whether `address` is of the same family and shares the range's prefix.
    public func contains(_ address: IPAddress) -> Bool {
        guard address.bytes.count == network.bytes.count else { return false }
        return AddressRange(masking: address, prefixLength: prefixLength).network == network
    }

    public var description: String { "\(network)/\(prefixLength)" }

    /// Ranges an image URL's host may not resolve to unless `allowed_fetch_addresses` lists
    /// them: the server's own host, its private networks and cloud metadata services live here.
    static let specialUse: [AddressRange] = [
        v4(0, 0, 8),            // "this network"; 0.0.0.0 reaches the local host
        v4(10, 0, 8),           // private
        v4(100, 64, 10),        // carrier-grade NAT (shared address space)
        v4(127, 0, 8),          // loopback
        v4(169, 254, 16),       // link-local, cloud metadata (169.254.169.254)
        v4(172, 16, 12),        // private
        v4(192, 168, 16),       // private
        v4(224, 0, 4),          // multicast
        v4(240, 0, 4),          // reserved, and the broadcast address
        v6(0x00, 0x00, 128),    // unspecified (::)
        v6(0xFC, 0x00, 7),      // unique local
        v6(0xFE, 0x80, 10),     // link-local
        v6(0xFE, 0xC0, 10),     // site-local (deprecated, still routed privately)
        v6(0xFF, 0x00, 8),      // multicast
        AddressRange(masking: IPAddress(unchecked: Array(repeating: 0, count: 15) + [1]), prefixLength: 128), // loopback (::1)
    ]

    private static func v4(_ first: UInt8, _ second: UInt8, _ prefix: Int) -> AddressRange {
        AddressRange(masking: IPAddress(unchecked: [first, second, 0, 0]), prefixLength: prefix)
    }

    private static func v6(_ first: UInt8, _ second: UInt8, _ prefix: Int) -> AddressRange {
        AddressRange(masking: IPAddress(unchecked: [first, second] + Array(repeating: 0, count: 14)), prefixLength: prefix)
    }
}

/// Which addresses an image fetch may connect to: any address outside the special-use ranges,
/// and those `allowed_fetch_addresses` lists.
struct FetchAddressPolicy: Sendable {
    /// `allowed_fetch_addresses`.
    let allowed: [AddressRange]

    /// Whether a connection to `address` is permitted. An IPv6 address that carries an IPv4
    /// one (mapped, compatible, NAT64) is judged by both.
    func permits(_ address: IPAddress) -> Bool {
        let forms = [address] + (address.embeddedIPv4.map { [$0] } ?? [])
        if forms.contains(where: { form in allowed.contains { $0.contains(form) } }) { return true }
        return !forms.contains { form in AddressRange.specialUse.contains { $0.contains(form) } }
    }
}
