internal import CImage

/// Calls a CImage entry point with a message buffer and turns a failed status into an
/// ``ImageError``; every call into C goes through here.
///
/// - Parameters:
///   - tooLarge: the error for `CIMAGE_TOO_LARGE`, built from the sizes the call wrote.
///   - tooComplex: the error for `CIMAGE_TOO_COMPLEX`, built from the counts the call wrote.
func callCImage(
    _ body: (_ err: UnsafeMutablePointer<CChar>, _ errlen: Int) -> cimage_status,
    tooLarge: () -> ImageError = { ImageError.corrupt("image too large") },
    tooComplex: () -> ImageError = { ImageError.corrupt("image too complex") }
) throws {
    let capacity = 512
    let failure: ImageError? = withUnsafeTemporaryAllocation(of: CChar.self, capacity: capacity) { buffer in
        guard let base = buffer.baseAddress else { return ImageError.outOfMemory("no message buffer") }
        base.initialize(to: 0)
        let status = body(base, capacity)
        base[capacity - 1] = 0
        let message = String(cString: base)
        switch status {
        case CIMAGE_OK: return nil
        case CIMAGE_UNSUPPORTED: return .unsupportedFormat(message)
        case CIMAGE_TRUNCATED: return .truncated(message)
        case CIMAGE_CORRUPT: return .corrupt(message)
        case CIMAGE_TOO_LARGE: return tooLarge()
        case CIMAGE_OUT_OF_MEMORY: return .outOfMemory(message)
        case CIMAGE_INVALID_ARGUMENT: return .invalidArgument(message)
        case CIMAGE_TOO_COMPLEX: return tooComplex()
        case CIMAGE_DEADLINE: return .deadlineExceeded
        default: return .corrupt("unknown status \(status.rawValue): \(message)")
        }
    }
    if let failure { throw failure }
}
