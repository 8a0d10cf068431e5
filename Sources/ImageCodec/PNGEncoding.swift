internal import CImage

extension Image {
    /// The image as a non-interlaced 8-bit PNG (gray or RGB, as its ``format`` is).
    ///
    /// - Parameter compressionLevel: zlib's level, 0 (store) ... 9 (smallest); 6 is zlib's
    ///   default balance.
    /// - Throws: ``ImageError/invalidArgument(_:)`` for a level outside 0...9 or an image
    ///   wider or taller than PNG allows.
    public func encodedPNG(compressionLevel: Int = 6) throws -> [UInt8] {
        guard (0...9).contains(compressionLevel) else {
            throw ImageError.invalidArgument("PNG compression level \(compressionLevel) is not in 0...9")
        }
        guard let pngWidth = UInt32(exactly: width), let pngHeight = UInt32(exactly: height),
            width <= Int(Int32.max), height <= Int(Int32.max)
        else {
            throw ImageError.invalidArgument("\(width)x\(height) is larger than PNG allows")
        }
        var data: UnsafeMutablePointer<UInt8>?
        var length = 0
        try pixels.withUnsafeBufferPointer { source in
            try callCImage { err, errlen in
                cimage_encode_png(
                    source.baseAddress, source.count, pngWidth, pngHeight, UInt32(channels),
                    Int32(compressionLevel), &data, &length, err, errlen)
            }
        }
        defer { cimage_free(data) }
        guard let data else { throw ImageError.outOfMemory("encoder returned no data") }
        return [UInt8](UnsafeBufferPointer(start: data, count: length))
    }
}
