extension Image {
    /// Writes the image as float32 CHW, `(v / 255 - mean[c]) / std[c]`, into `destination`:
    /// torchvision's `Normalize(mean, std)(ToTensor()(image))`, computed in float32 in the same
    /// order, so the values are identical. `destination` is typically a tensor's own storage.
    ///
    /// - Parameters:
    ///   - destination: exactly `channels * height * width` floats.
    ///   - mean: one value per channel.
    ///   - std: one non-zero value per channel.
    /// - Throws: ``ImageError/invalidArgument(_:)`` when the counts do not match or a std is 0.
    public func writeNormalizedCHW(
        into destination: UnsafeMutableBufferPointer<Float>, mean: [Float], std: [Float]
    ) throws {
        let plane = width * height
        guard destination.count == channels * plane else {
            throw ImageError.invalidArgument(
                "destination holds \(destination.count) floats, "
                    + "\(channels)x\(height)x\(width) needs \(channels * plane)")
        }
        guard mean.count == channels, std.count == channels else {
            throw ImageError.invalidArgument(
                "mean and std need \(channels) values each, got \(mean.count) and \(std.count)")
        }
        guard !std.contains(0) else { throw ImageError.invalidArgument("std must not contain 0") }

        // Each channel maps 256 byte values; a table holds the exact per-value results.
        var table = [Float](repeating: 0, count: 256)
        let channels = self.channels
        pixels.withUnsafeBufferPointer { source in
            for c in 0..<channels {
                for v in 0..<256 {
                    table[v] = (Float(v) / 255 - mean[c]) / std[c]
                }
                table.withUnsafeBufferPointer { table in
                    let base = c * plane
                    for i in 0..<plane {
                        destination[base + i] = table[Int(source[i * channels + c])]
                    }
                }
            }
        }
    }

    /// ``writeNormalizedCHW(into:mean:std:)`` into a new array.
    public func normalizedCHW(mean: [Float], std: [Float]) throws -> [Float] {
        var result = [Float](repeating: 0, count: channels * width * height)
        try result.withUnsafeMutableBufferPointer { try writeNormalizedCHW(into: $0, mean: mean, std: std) }
        return result
    }
}
