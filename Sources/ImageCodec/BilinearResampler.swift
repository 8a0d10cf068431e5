/// Pillow's `Image.resize(size, Image.BILINEAR)` for 8-bit images, reproduced bit for bit.
///
/// Separable and antialiased: the triangle filter's support widens by the scale when
/// shrinking. Weights are computed in Double, normalised to sum 1, then turned into fixed point
/// with 22 fractional bits (32 bits less 8 for the sample, less 2 for headroom), each rounded
/// half away from zero. Each pass sums `sample * weight` from a start of 2^21 (one half), shifts
/// right by 22 and clamps to 0...255; the horizontal pass runs first, into an 8-bit
/// intermediate, and a pass whose size does not change is skipped.
struct BilinearResampler {
    static let precisionBits = 32 - 8 - 2

    /// The weights of one axis: output index `i` reads `count[i]` inputs from `start[i]`, with
    /// weights `weights[i * taps ..< i * taps + count[i]]`.
    struct Axis {
        let inputSize: Int
        let outputSize: Int
        let taps: Int
        let start: [Int]
        let count: [Int]
        let weights: [Int32]

        init(inputSize: Int, outputSize: Int) {
            self.inputSize = inputSize
            self.outputSize = outputSize
            let scale = Double(inputSize) / Double(outputSize)
            let filterScale = max(scale, 1.0)
            let support = 1.0 * filterScale  // the triangle filter's support is 1
            let taps = Int(support.rounded(.up)) * 2 + 1
            let inverseFilterScale = 1.0 / filterScale
            let one = Double(1 << BilinearResampler.precisionBits)

            var start = [Int](repeating: 0, count: outputSize)
            var count = [Int](repeating: 0, count: outputSize)
            var weights = [Int32](repeating: 0, count: outputSize * taps)
            var raw = [Double](repeating: 0, count: taps)
            for output in 0..<outputSize {
                let center = (Double(output) + 0.5) * scale
                // Int(_:) truncates toward zero, as C's (int) cast does.
                let first = max(Int(center - support + 0.5), 0)
                let end = min(Int(center + support + 0.5), inputSize)
                let n = end - first
                var total = 0.0
                for tap in 0..<n {
                    let distance = (Double(tap + first) - center + 0.5) * inverseFilterScale
                    let magnitude = abs(distance)
                    let weight = magnitude < 1.0 ? 1.0 - magnitude : 0.0
                    raw[tap] = weight
                    total += weight
                }
                for tap in 0..<n {
                    let normalized = total != 0.0 ? raw[tap] / total : raw[tap]
                    let scaled = normalized < 0 ? -0.5 + normalized * one : 0.5 + normalized * one
                    weights[output * taps + tap] = Int32(scaled)  // truncates toward zero
                }
                start[output] = first
                count[output] = n
            }
            self.taps = taps
            self.start = start
            self.count = count
            self.weights = weights
        }

        /// The input range all outputs together read.
        var usedInputRange: Range<Int> {
            guard let first = start.first, let lastStart = start.last, let lastCount = count.last else {
                return 0..<0
            }
            return first..<(lastStart + lastCount)
        }
    }

    @inline(__always)
    static func clamp(_ sum: Int32) -> UInt8 {
        let value = sum >> Int32(precisionBits)
        return value < 0 ? 0 : value > 255 ? 255 : UInt8(truncatingIfNeeded: value)
    }

    /// Resizes `source` (HWC, `channels` interleaved) to `width` x `height`.
    static func resize(_ source: Image, width: Int, height: Int) -> Image {
        let channels = source.channels
        let needsHorizontal = width != source.width
        let needsVertical = height != source.height
        if !needsHorizontal && !needsVertical { return source }

        let vertical = Axis(inputSize: source.height, outputSize: height)
        // Only the rows the vertical pass reads are resampled horizontally.
        let rows = needsVertical ? vertical.usedInputRange : 0..<source.height

        var intermediate = source.pixels
        var intermediateRowOffset = 0
        if needsHorizontal {
            let horizontal = Axis(inputSize: source.width, outputSize: width)
            intermediate = horizontalPass(
                source.pixels, inputWidth: source.width, rows: rows, channels: channels, axis: horizontal)
            intermediateRowOffset = rows.lowerBound
        }
        guard needsVertical else {
            return Image(checkedWidth: width, height: height, format: source.format, pixels: intermediate)
        }
        let output = verticalPass(
            intermediate, rowOffset: intermediateRowOffset, width: width, channels: channels, axis: vertical)
        return Image(checkedWidth: width, height: height, format: source.format, pixels: output)
    }

    /// Resamples each row in `rows` of `input` to `axis.outputSize` columns; the result holds
    /// `rows.count` rows.
    private static func horizontalPass(
        _ input: [UInt8], inputWidth: Int, rows: Range<Int>, channels: Int, axis: Axis
    ) -> [UInt8] {
        let outputWidth = axis.outputSize
        let inputStride = inputWidth * channels
        let outputStride = outputWidth * channels
        let half = Int32(1 << (precisionBits - 1))
        return [UInt8](unsafeUninitializedCapacity: rows.count * outputStride) { output, initialized in
            input.withUnsafeBufferPointer { input in
                axis.weights.withUnsafeBufferPointer { weights in
                    guard let inputBase = input.baseAddress, let weightsBase = weights.baseAddress,
                        let outputBase = output.baseAddress
                    else {
                        output.initialize(repeating: 0)  // only for empty buffers, which Image rules out
                        return
                    }
                    for (outRow, inRow) in rows.enumerated() {
                        let sourceRow = inputBase + inRow * inputStride
                        var destination = outputBase + outRow * outputStride
                        for x in 0..<outputWidth {
                            let k = weightsBase + x * axis.taps
                            var p = sourceRow + axis.start[x] * channels
                            let n = axis.count[x]
                            if channels == 3 {
                                var r = half, g = half, b = half
                                for tap in 0..<n {
                                    let w = k[tap]
                                    r = r &+ Int32(p[0]) &* w
                                    g = g &+ Int32(p[1]) &* w
                                    b = b &+ Int32(p[2]) &* w
                                    p += 3
                                }
                                destination[0] = clamp(r)
                                destination[1] = clamp(g)
                                destination[2] = clamp(b)
                                destination += 3
                            } else {
                                for c in 0..<channels {
                                    var sum = half
                                    for tap in 0..<n {
                                        sum = sum &+ Int32(p[tap * channels + c]) &* k[tap]
                                    }
                                    destination[c] = clamp(sum)
                                }
                                destination += channels
                            }
                        }
                    }
                }
            }
            initialized = rows.count * outputStride
        }
    }

    /// Resamples the columns of `input` (whose first row is source row `rowOffset`) to
    /// `axis.outputSize` rows.
    private static func verticalPass(
        _ input: [UInt8], rowOffset: Int, width: Int, channels: Int, axis: Axis
    ) -> [UInt8] {
        let stride = width * channels
        let half = Int32(1 << (precisionBits - 1))
        // One row of sums, reused: each output row accumulates its input rows in turn, which
        // keeps the inner loop contiguous.
        var sums = [Int32](repeating: 0, count: stride)
        return [UInt8](unsafeUninitializedCapacity: axis.outputSize * stride) { output, initialized in
            input.withUnsafeBufferPointer { input in
                axis.weights.withUnsafeBufferPointer { weights in
                    sums.withUnsafeMutableBufferPointer { sums in
                        for y in 0..<axis.outputSize {
                            for i in 0..<stride { sums[i] = half }
                            let first = axis.start[y] - rowOffset
                            for tap in 0..<axis.count[y] {
                                let w = weights[y * axis.taps + tap]
                                let row = (first + tap) * stride
                                for i in 0..<stride {
                                    sums[i] = sums[i] &+ Int32(input[row + i]) &* w
                                }
                            }
                            let destination = y * stride
                            for i in 0..<stride {
                                output[destination + i] = clamp(sums[i])
                            }
                        }
                    }
                }
            }
            initialized = axis.outputSize * stride
        }
    }
}
