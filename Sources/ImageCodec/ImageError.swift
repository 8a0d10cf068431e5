/// Why an image could not be decoded, encoded or transformed.
public enum ImageError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The body has no bytes at all.
    case empty
    /// The bytes are neither PNG nor JPEG; the text says what they look like instead.
    case unsupportedFormat(String)
    /// The data ends before the image does.
    case truncated(String)
    /// The data is malformed: a bad checksum, marker or compressed stream.
    case corrupt(String)
    /// The header declares more pixels than the decoder's limit; nothing was decoded.
    case tooLarge(width: Int, height: Int, limit: Int)
    /// Memory for the pixels could not be allocated.
    case outOfMemory(String)
    /// A caller passed sizes, buffers or parameters that do not fit together.
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .empty:
            return "empty image: the body has no bytes"
        case .unsupportedFormat(let what):
            return "unsupported image format: \(what)"
        case .truncated(let reason):
            return "truncated image: \(reason)"
        case .corrupt(let reason):
            return "corrupt image: \(reason)"
        case .tooLarge(let width, let height, let limit):
            return "image too large: \(width)x\(height) is \(width * height) pixels, the limit is \(limit)"
        case .outOfMemory(let reason):
            return "out of memory: \(reason)"
        case .invalidArgument(let reason):
            return "invalid argument: \(reason)"
        }
    }
}
