import GRPCCore

/// The deadline a gRPC client gave its call, from the `grpc-timeout` metadata: 1 to 8 digits
/// and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
package enum GRPCDeadline {
    /// The call's timeout; nil when the client set none (or sent one that is not well formed,
    /// which grpc-swift also ignores).
    package static func timeout(in metadata: Metadata) -> Duration? {
        guard let text = metadata[stringValues: "grpc-timeout"].first(where: { _ in true }),
              let unit = text.last, (2...9).contains(text.count),
              let amount = Int64(text.dropLast()), amount >= 0
        else { return nil }
        switch unit {
        case "H": return .seconds(amount * 3600)
        case "M": return .seconds(amount * 60)
        case "S": return .seconds(amount)
        case "m": return .milliseconds(amount)
        case "u": return .microseconds(amount)
        case "n": return .nanoseconds(amount)
        default: return nil
        }
    }
}
