/// A validated model name: 1 to 64 characters from `A-Z a-z 0-9 _ - .`, starting with a letter or digit.
///
/// The same rule holds for model versions (``ModelName/validateVersion(_:)``), and matches the
/// `^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$` rule of the HTTP API, so a name can never be a path.
public struct ModelName: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: String

    /// A name, or `nil` when `rawValue` breaks the rule.
    public init?(rawValue: String) {
        guard Self.isValid(rawValue) else { return nil }
        self.rawValue = rawValue
    }

    /// A name; throws ``ArchiveError/invalidModelName(_:)`` when `string` breaks the rule.
    public init(validating string: String) throws {
        guard Self.isValid(string) else { throw ArchiveError.invalidModelName(string) }
        self.rawValue = string
    }

    public init(from decoder: any Decoder) throws {
        let string = try decoder.singleValueContainer().decode(String.self)
        try self.init(validating: string)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    public var description: String { rawValue }

    /// Throws ``ArchiveError/invalidModelVersion(_:)`` unless `version` follows the name rule.
    public static func validateVersion(_ version: String) throws {
        guard isValid(version) else { throw ArchiveError.invalidModelVersion(version) }
    }

    /// Whether `string` is 1 to 64 characters from `A-Z a-z 0-9 _ - .`, starting with a letter or digit.
    public static func isValid(_ string: String) -> Bool {
        let bytes = Array(string.utf8)
        guard let first = bytes.first, bytes.count <= 64, isAlphanumeric(first) else { return false }
        return bytes.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
            || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }
}
