internal import CImage

/// Decodes PNG and JPEG bytes into an 8-bit RGB ``Image`` the way PIL's
/// `Image.open(f).convert("RGB")` does, refusing images over a pixel limit.
///
/// PNG: 16-bit samples keep their high byte, palettes (with or without tRNS) are expanded,
/// gray is replicated, alpha is dropped without compositing, Adam7 is de-interlaced, gamma is
/// not applied. JPEG: libjpeg's defaults (islow IDCT, fancy upsampling); CMYK and YCCK are read
/// as Adobe-inverted and converted with PIL's formula. One difference from PIL: 16-bit
/// grayscale keeps its high byte, where PIL clips the 16-bit value to 255.
///
/// Work is bounded by more than the pixel limit, so that a small hostile file cannot hold a
/// worker: PNG ancillary chunks (text, ICC profiles, EXIF) are skipped without being inflated;
/// a JPEG may hold at most 500 scans, and fewer above 8.6 Mpixels so that scans times pixels
/// stays under 2^32 (64 scans at 8192 x 8192), else it is refused as
/// ``ImageError/tooComplex(scans:limit:)``; and ``decode(_:deadline:)`` abandons decoding at a
/// deadline.
public struct ImageDecoder: Sendable {
    /// 64 Mi pixels (64 * 1024 * 1024 = 67,108,864), 192 MiB of RGB: larger than any
    /// photograph a model input is made from, small enough that a few concurrent requests
    /// cannot exhaust memory.
    public static let defaultPixelLimit = 64 * 1024 * 1024

    /// The most pixels (width * height) an image may declare; larger ones are refused after the
    /// header is read, before pixel memory is allocated.
    public var pixelLimit: Int

    /// A decoder refusing images of more than `pixelLimit` pixels.
    public init(pixelLimit: Int = ImageDecoder.defaultPixelLimit) {
        self.pixelLimit = pixelLimit
    }

    /// Decodes `bytes`, a PNG or JPEG recognised by its magic bytes, to ``PixelFormat/rgb8``,
    /// with no time limit.
    ///
    /// - Throws: ``ImageError``: `.empty`, `.unsupportedFormat`, `.truncated`, `.corrupt`,
    ///   `.tooLarge`, `.tooComplex`, `.outOfMemory`.
    public func decode(_ bytes: some Collection<UInt8>) throws -> Image {
        try decode(bytes, deadline: nil)
    }

    /// Decodes `bytes` as ``decode(_:)`` does, abandoning the work at `deadline`: an image whose
    /// decoding would run past it throws ``ImageError/deadlineExceeded`` and leaves the thread
    /// free. The decoders look at the clock between rows (about every 65,536 pixels of work), so
    /// they stop within a fraction of a millisecond of the deadline.
    ///
    /// - Parameters:
    ///   - bytes: a PNG or JPEG.
    ///   - deadline: when to give up; nil for no limit. A deadline already passed throws before
    ///     any work.
    /// - Throws: ``ImageError``: `.deadlineExceeded` and everything ``decode(_:)`` throws.
    public func decode(_ bytes: some Collection<UInt8>, deadline: ContinuousClock.Instant?) throws -> Image {
        if let deadline, ContinuousClock.now >= deadline { throw ImageError.deadlineExceeded }
        let format = try ImageFormat.detect(bytes)
        if let result = try bytes.withContiguousStorageIfAvailable({
            try decode($0, format: format, deadline: deadline)
        }) {
            return result
        }
        return try Array(bytes).withUnsafeBufferPointer { try decode($0, format: format, deadline: deadline) }
    }

    /// Decodes `bytes` as ``decode(_:deadline:)`` does, with a deadline `timeBudget` from now.
    ///
    /// - Parameters:
    ///   - bytes: a PNG or JPEG.
    ///   - timeBudget: the longest the decoding may take; nil for no limit. Zero or less throws
    ///     ``ImageError/deadlineExceeded`` before any work.
    public func decode(_ bytes: some Collection<UInt8>, timeBudget: Duration?) throws -> Image {
        guard let timeBudget else { return try decode(bytes, deadline: nil) }
        guard timeBudget > .zero else { throw ImageError.deadlineExceeded }
        // Longer than any request can wait (and past it, the deadline arithmetic could overflow).
        guard timeBudget < ImageDecoder.unlimitedBudget else { return try decode(bytes, deadline: nil) }
        return try decode(bytes, deadline: ContinuousClock.now.advanced(by: timeBudget))
    }

    /// Budgets from this long up are no limit at all: about 31,700 years.
    static let unlimitedBudget = Duration.seconds(Int64(1) << 40)

    /// Nanoseconds left until `deadline`, at least 1, for the C decoders' budget (where 0 means
    /// none); nil when the deadline has passed.
    static func nanoseconds(until deadline: ContinuousClock.Instant) -> UInt64? {
        let left = ContinuousClock.now.duration(to: deadline)
        guard left > .zero else { return nil }
        let (seconds, attoseconds) = left.components
        let (whole, overflow) = UInt64(clamping: seconds).multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return .max }
        let (total, sumOverflow) = whole.addingReportingOverflow(UInt64(clamping: attoseconds / 1_000_000_000))
        if sumOverflow { return .max }
        return max(total, 1)
    }

    private func decode(
        _ bytes: UnsafeBufferPointer<UInt8>, format: ImageFormat, deadline: ContinuousClock.Instant?
    ) throws -> Image {
        let limit = UInt64(max(pixelLimit, 0))
        var budget: UInt64 = 0
        if let deadline {
            guard let left = ImageDecoder.nanoseconds(until: deadline) else { throw ImageError.deadlineExceeded }
            budget = left
        }
        var output = cimage_rgb8()
        try callCImage(
            { err, errlen in
                switch format {
                case .png:
                    return cimage_decode_png(bytes.baseAddress, bytes.count, limit, budget, &output, err, errlen)
                case .jpeg:
                    return cimage_decode_jpeg(bytes.baseAddress, bytes.count, limit, budget, &output, err, errlen)
                }
            },
            tooLarge: {
                ImageError.tooLarge(width: Int(output.width), height: Int(output.height), limit: pixelLimit)
            },
            tooComplex: {
                ImageError.tooComplex(scans: Int(output.scans), limit: Int(output.max_scans))
            })
        defer { cimage_free(output.pixels) }
        guard let pixels = output.pixels else { throw ImageError.corrupt("decoder returned no pixels") }
        let width = Int(output.width)
        let height = Int(output.height)
        let (area, areaOverflow) = width.multipliedReportingOverflow(by: height)
        let (count, countOverflow) = area.multipliedReportingOverflow(by: PixelFormat.rgb8.channels)
        guard width > 0, height > 0, !areaOverflow, !countOverflow else {
            throw ImageError.corrupt("decoder returned an impossible size \(width)x\(height)")
        }
        let decoded = [UInt8](UnsafeBufferPointer(start: pixels, count: count))
        return Image(checkedWidth: width, height: height, format: .rgb8, pixels: decoded)
    }
}
