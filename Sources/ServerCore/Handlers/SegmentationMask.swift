import ImageCodec

/// A class id per pixel, row-major.
struct SegmentationMask: Sendable, Equatable {
    var width: Int
    var height: Int
    var classes: [UInt8]

    /// Nearest-neighbour resize: target (y, x) takes source (⌊y·H/H′⌋, ⌊x·W/W′⌋).
    func resizedNearest(width newWidth: Int, height newHeight: Int) -> SegmentationMask {
        if newWidth == width && newHeight == height { return self }
        let columns = (0..<newWidth).map { $0 * width / newWidth }
        var result = [UInt8](repeating: 0, count: newWidth * newHeight)
        for y in 0..<newHeight {
            let sourceRow = (y * height / newHeight) * width
            let targetRow = y * newWidth
            for x in 0..<newWidth {
                result[targetRow + x] = classes[sourceRow + columns[x]]
            }
        }
        return SegmentationMask(width: newWidth, height: newHeight, classes: result)
    }

    /// The input blended half and half with each pixel's class colour: `(input + colour + 1) / 2`.
    func overlay(on image: Image) throws -> Image {
        let mask = resizedNearest(width: image.width, height: image.height)
        let palette = (0..<256).map { Self.colour(ofClass: $0) }
        var pixels = [UInt8](repeating: 0, count: image.width * image.height * 3)
        let channels = image.channels
        for index in 0..<(image.width * image.height) {
            let colour = palette[Int(mask.classes[index])]
            for c in 0..<3 {
                let source = Int(image.pixels[index * channels + min(c, channels - 1)])
                pixels[index * 3 + c] = UInt8((source + Int(colour[c]) + 1) / 2)
            }
        }
        return try Image(width: image.width, height: image.height, format: .rgb8, pixels: pixels)
    }

    /// PASCAL VOC's palette: for j = 0…7, bits 3j, 3j+1, 3j+2 of k set bit 7−j of red, green, blue.
    static func colour(ofClass k: Int) -> [UInt8] {
        var red = 0, green = 0, blue = 0, bits = k
        for j in 0..<8 {
            red |= (bits & 1) << (7 - j)
            green |= ((bits >> 1) & 1) << (7 - j)
            blue |= ((bits >> 2) & 1) << (7 - j)
            bits >>= 3
        }
        return [UInt8(red), UInt8(green), UInt8(blue)]
    }
}
