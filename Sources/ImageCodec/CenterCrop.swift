extension Image {
    /// The central `width` x `height` region, as torchvision's `CenterCrop((height, width))`:
    /// the top-left corner is `round((H - height) / 2)`, `round((W - width) / 2)` with Python's
    /// round-half-to-even; a side shorter than the crop is padded with zeros first
    /// (`(crop - size) // 2` before, the rest after).
    ///
    /// - Throws: ``ImageError/invalidArgument(_:)`` unless both sizes are positive.
    public func centerCropped(width cropWidth: Int, height cropHeight: Int) throws -> Image {
        guard cropWidth > 0, cropHeight > 0 else {
            throw ImageError.invalidArgument("crop \(cropWidth)x\(cropHeight) must be positive")
        }
        let (outputStride, strideOverflow) = cropWidth.multipliedReportingOverflow(by: self.channels)
        guard !strideOverflow, !outputStride.multipliedReportingOverflow(by: cropHeight).overflow else {
            throw ImageError.invalidArgument("crop \(cropWidth)x\(cropHeight) is too large")
        }
        if cropWidth == width && cropHeight == height { return self }
        // Offset of the crop in source coordinates; negative where the source is padded.
        let left = Image.cropOrigin(size: width, crop: cropWidth)
        let top = Image.cropOrigin(size: height, crop: cropHeight)
        let channels = self.channels
        let stride = width * channels
        // Source columns that land inside the crop.
        let firstColumn = max(left, 0)
        let endColumn = min(left + cropWidth, width)
        let output = [UInt8](unsafeUninitializedCapacity: cropHeight * outputStride) { buffer, initialized in
            buffer.initialize(repeating: 0)
            pixels.withUnsafeBufferPointer { source in
                for y in 0..<cropHeight {
                    let sourceRow = top + y
                    guard sourceRow >= 0, sourceRow < height, firstColumn < endColumn else { continue }
                    let from = sourceRow * stride + firstColumn * channels
                    let to = y * outputStride + (firstColumn - left) * channels
                    let count = (endColumn - firstColumn) * channels
                    for i in 0..<count { buffer[to + i] = source[from + i] }
                }
            }
            initialized = cropHeight * outputStride
        }
        return Image(checkedWidth: cropWidth, height: cropHeight, format: format, pixels: output)
    }

    /// A square ``centerCropped(width:height:)``, as torchvision's `CenterCrop(size)`.
    public func centerCropped(size: Int) throws -> Image {
        try centerCropped(width: size, height: size)
    }

    static func cropOrigin(size: Int, crop: Int) -> Int {
        if crop > size {
            // torchvision pads (crop - size) // 2 before, then crops at 0.
            return -((crop - size) / 2)
        }
        return Int((Double(size - crop) / 2.0).rounded(.toNearestOrEven))
    }
}
