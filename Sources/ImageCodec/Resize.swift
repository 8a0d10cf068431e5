extension Image {
    /// The image resampled to `width` x `height` exactly as Pillow's
    /// `img.resize((width, height), Image.BILINEAR)` (Pillow 9.4) does, which is what
    /// torchvision's `Resize((height, width))` runs on a PIL image.
    ///
    /// - Throws: ``ImageError/invalidArgument(_:)`` unless both sizes are positive.
    public func resized(width: Int, height: Int) throws -> Image {
        guard width > 0, height > 0 else {
            throw ImageError.invalidArgument("resize target \(width)x\(height) must be positive")
        }
        let (area, areaOverflow) = width.multipliedReportingOverflow(by: height)
        guard !areaOverflow, !area.multipliedReportingOverflow(by: channels).overflow else {
            throw ImageError.invalidArgument("resize target \(width)x\(height) is too large")
        }
        return BilinearResampler.resize(self, width: width, height: height)
    }

    /// The image resized so its shorter side is `size`, as torchvision 0.14's `Resize(size)`
    /// with an int does: the longer side becomes `int(size * long / short)` (truncated), the
    /// aspect ratio is kept.
    ///
    /// - Throws: ``ImageError/invalidArgument(_:)`` unless `size` is positive.
    public func resized(shorterSide size: Int) throws -> Image {
        let target = try Image.shorterSideSize(width: width, height: height, shorterSide: size)
        return try resized(width: target.width, height: target.height)
    }

    /// The output size of ``resized(shorterSide:)`` for a `width` x `height` image.
    public static func shorterSideSize(width: Int, height: Int, shorterSide size: Int) throws -> (
        width: Int, height: Int
    ) {
        guard size > 0, width > 0, height > 0 else {
            throw ImageError.invalidArgument("shorter side \(size) of a \(width)x\(height) image must be positive")
        }
        let (short, long) = width <= height ? (width, height) : (height, width)
        // Python computes `size * long` exactly, divides in double and truncates toward zero.
        let (product, overflow) = size.multipliedReportingOverflow(by: long)
        guard !overflow else {
            throw ImageError.invalidArgument("shorter side \(size) of a \(width)x\(height) image is too large")
        }
        // Int(exactly:) rather than Int(_:), which traps when the quotient rounds to 2^63.
        guard let newLong = Int(exactly: (Double(product) / Double(short)).rounded(.towardZero)) else {
            throw ImageError.invalidArgument("shorter side \(size) of a \(width)x\(height) image is too large")
        }
        guard newLong > 0 else {
            throw ImageError.invalidArgument("resizing \(width)x\(height) to shorter side \(size) leaves no pixels")
        }
        return width <= height ? (size, newLong) : (newLong, size)
    }
}
