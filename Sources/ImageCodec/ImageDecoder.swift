internal import CImage

/// Decodes PNG and JPEG bytes into an 8-bit RGB ``Image`` the way PIL's
/// `Image.open(f).convert("RGB")` does, refusing images over a pixel limit.
///
/// PNG: 16-bit samples keep their high byte, palettes (with or without tRNS) are expanded,
/// gray is replicated, alpha is dropped without compositing, Adam7 is de-interlaced, gamma is
/// not applied. JPEG: libjpeg's defaults (islow IDCT, fancy upsampling); CMYK and YCCK are read
/// as Adobe-inverted and converted with PIL's formula. One difference from PIL: 16-bit
/// grayscale keeps its high byte, where PIL clips the 16-bit value to 255.
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

    /// Decodes `bytes`, a PNG or JPEG recognised by its magic bytes, to ``PixelFormat/rgb8``.
    ///
    /// - Throws: ``ImageError``: `.empty`, `.unsupportedFormat`, `.truncated`, `.corrupt`,
    ///   `.tooLarge`, `.outOfMemory`.
    public func decode(_ bytes: some Collection<UInt8>) throws -> Image {
        let format = try ImageFormat.detect(bytes)
        if let result = try bytes.withContiguousStorageIfAvailable({ try decode($0, format: format) }) {
            return result
        }
        return try Array(bytes).withUnsafeBufferPointer { try decode($0, format: format) }
    }

    private func decode(_ bytes: UnsafeBufferPointer<UInt8>, format: ImageFormat) throws -> Image {
        let limit = UInt64(max(pixelLimit, 0))
        var output = cimage_rgb8()
        try callCImage(
            { err, errlen in
                switch format {
                case .png: return cimage_decode_png(bytes.baseAddress, bytes.count, limit, &output, err, errlen)
                case .jpeg: return cimage_decode_jpeg(bytes.baseAddress, bytes.count, limit, &output, err, errlen)
                }
            },
            tooLarge: {
                ImageError.tooLarge(width: Int(output.width), height: Int(output.height), limit: pixelLimit)
            })
        defer { cimage_free(output.pixels) }
        guard let pixels = output.pixels else { throw ImageError.corrupt("decoder returned no pixels") }
        let width = Int(output.width)
        let height = Int(output.height)
        let decoded = [UInt8](UnsafeBufferPointer(start: pixels, count: width * height * 3))
        return Image(checkedWidth: width, height: height, format: .rgb8, pixels: decoded)
    }
}
