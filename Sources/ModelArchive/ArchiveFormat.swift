import Foundation

/// The container of a model archive.
public enum ArchiveFormat: String, CaseIterable, Sendable, Codable {
    /// A zip, the `.mar` of torch-model-archiver's `default` and `zip-store` formats.
    case zip
    /// A gzip-compressed tar, torch-model-archiver's `tgz` format and SageMaker's `model.tar.gz`.
    case tarGzip = "tgz"
    /// An uncompressed tar (read only).
    case tar
    /// An unpacked folder, torch-model-archiver's `no-archive` format.
    case folder

    /// What `source` is, from its first bytes (never its extension).
    /// - Throws: ``ArchiveError/notFound(path:role:)``, ``ArchiveError/unrecognizedFormat(path:)``.
    public static func detect(_ source: URL) throws -> ArchiveFormat {
        switch FileIO.resolvedKind(of: source) {
        case .missing: throw ArchiveError.notFound(path: source.path, role: "model archive")
        case .directory: return .folder
        case .file: break
        default: throw ArchiveError.unrecognizedFormat(path: source.path)
        }
        let head = try InputFile(source, role: "model archive").read(count: 512, at: 0)
        if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) || head.starts(with: [0x50, 0x4B, 0x05, 0x06]) { return .zip }
        if head.starts(with: [0x1F, 0x8B]) { return .tarGzip }
        if head.count == 512, head[257..<262].elementsEqual(Array("ustar".utf8)) { return .tar }
        throw ArchiveError.unrecognizedFormat(path: source.path)
    }
}
