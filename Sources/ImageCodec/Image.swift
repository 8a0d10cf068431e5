/// How the bytes of one pixel are laid out: 8 bits per channel, channels interleaved.
public enum PixelFormat: Int, Sendable, CaseIterable {
    /// One channel.
    case gray8 = 1
    /// Three channels, red, green, blue.
    case rgb8 = 3

    /// Bytes (channels) per pixel.
    public var channels: Int { rawValue }
}

/// An 8-bit image in memory: row-major, channels interleaved (HWC), no row padding.
public struct Image: Sendable, Equatable {
    /// Columns.
    public let width: Int
    /// Rows.
    public let height: Int
    /// The layout of each pixel.
    public let format: PixelFormat
    /// `width * height * format.channels` bytes, row by row.
    public let pixels: [UInt8]

    /// Bytes (channels) per pixel.
    public var channels: Int { format.channels }

    /// Wraps `pixels`; throws ``ImageError/invalidArgument(_:)`` unless the sizes agree.
    public init(width: Int, height: Int, format: PixelFormat, pixels: [UInt8]) throws {
        guard width > 0, height > 0 else {
            throw ImageError.invalidArgument("image size \(width)x\(height) must be positive")
        }
        let (area, areaOverflow) = width.multipliedReportingOverflow(by: height)
        let (count, countOverflow) = area.multipliedReportingOverflow(by: format.channels)
        guard !areaOverflow, !countOverflow, pixels.count == count else {
            throw ImageError.invalidArgument(
                "\(width)x\(height) \(format) needs \(width)*\(height)*\(format.channels) bytes, got \(pixels.count)")
        }
        self.init(checkedWidth: width, height: height, format: format, pixels: pixels)
    }

    /// For callers in this module that built `pixels` to the right size themselves.
    init(checkedWidth width: Int, height: Int, format: PixelFormat, pixels: [UInt8]) {
        self.width = width
        self.height = height
        self.format = format
        self.pixels = pixels
    }
}
