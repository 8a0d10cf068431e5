/// Bounds on what unpacking one archive may write; every bound counts bytes actually produced,
/// never sizes an archive declares.
public struct ExtractionLimits: Equatable, Sendable {
    /// Total bytes of all unpacked files. Default 4 GiB.
    public var maxTotalBytes: Int64
    /// Entries (files, folders, and tar's metadata headers). Default 10 000.
    public var maxEntryCount: Int
    /// Unpacked bytes per compressed byte, per zip entry (per gzip stream for `.tar.gz`). Default 1000.
    public var maxCompressionRatio: Int
    /// The ratio is checked once an entry has unpacked this many bytes, so tiny, very compressible
    /// files (an all-zero buffer of a few KiB) pass. Default 1 MiB.
    public var compressionRatioThreshold: Int64

    public init(
        maxTotalBytes: Int64 = 4 << 30, maxEntryCount: Int = 10_000,
        maxCompressionRatio: Int = 1000, compressionRatioThreshold: Int64 = 1 << 20
    ) {
        self.maxTotalBytes = maxTotalBytes
        self.maxEntryCount = maxEntryCount
        self.maxCompressionRatio = maxCompressionRatio
        self.compressionRatioThreshold = compressionRatioThreshold
    }

    /// 4 GiB, 10 000 entries, ratio 1000 beyond 1 MiB.
    public static let `default` = ExtractionLimits()
}
