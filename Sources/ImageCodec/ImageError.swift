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
    /// The JPEG holds more scans than the decoder allows at its size (`limit`: 500, fewer above
    /// 8.6 Mpixels); every scan is a pass over the whole image, so it was refused unfinished.
    case tooComplex(scans: Int, limit: Int)
    /// Decoding did not finish before the caller's deadline and was abandoned; nothing was
    /// decoded.
    case deadlineExceeded

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
            let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
            let count = overflow ? "more than \(Int.max)" : "\(pixels)"
            return "image too large: \(width)x\(height) is \(count) pixels, the limit is \(limit)"
        case .outOfMemory(let reason):
            return "out of memory: \(reason)"
        case .invalidArgument(let reason):
            return "invalid argument: \(reason)"
        case .tooComplex(let scans, let limit):
            return "image too complex: the JPEG has \(scans) scans, more than the \(limit) the decoder allows "
                + "for its size (each scan is a pass over the whole image); re-encode it as a baseline JPEG, "
                + "or as a progressive one with the encoder's standard scans (about 10)"
        case .deadlineExceeded:
            return "image decoding abandoned: it did not finish before the request's deadline; "
                + "send a smaller image, or allow the request more time"
        }
    }
}
