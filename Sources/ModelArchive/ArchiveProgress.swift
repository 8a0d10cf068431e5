/// How far writing an archive has come, reported as bytes are stored.
public struct ArchiveProgress: Sendable, Equatable {
    /// The entry being stored.
    public var entry: String
    /// Bytes of all entries stored so far.
    public var bytesDone: Int64
    /// Bytes of all entries.
    public var bytesTotal: Int64

    public init(entry: String, bytesDone: Int64, bytesTotal: Int64) {
        self.entry = entry
        self.bytesDone = bytesDone
        self.bytesTotal = bytesTotal
    }
}
