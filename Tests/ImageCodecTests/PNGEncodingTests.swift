import ImageCodec
import Testing

@Suite struct PNGEncodingTests {
    /// A deterministic pattern with every byte value.
    func pattern(width: Int, height: Int, channels: Int) -> [UInt8] {
        (0..<width * height * channels).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 / 13) }
    }

    @Test(arguments: [(1, 1), (37, 23), (256, 3)])
    func rgbRoundTrips(_ size: (Int, Int)) throws {
        let pixels = pattern(width: size.0, height: size.1, channels: 3)
        let image = try Image(width: size.0, height: size.1, format: .rgb8, pixels: pixels)
        let png = try image.encodedPNG()
        #expect(ImageFormat.sniff(png) == .png)
        #expect(png[25] == 2, "IHDR colour type should be RGB")
        #expect(try ImageDecoder().decode(png) == image)
    }

    @Test(arguments: [(1, 1), (37, 23), (256, 3)])
    func grayRoundTrips(_ size: (Int, Int)) throws {
        let pixels = pattern(width: size.0, height: size.1, channels: 1)
        let image = try Image(width: size.0, height: size.1, format: .gray8, pixels: pixels)
        let png = try image.encodedPNG()
        #expect(png[25] == 0, "IHDR colour type should be gray")
        // The decoder gives RGB; each gray value is replicated.
        let decoded = try ImageDecoder().decode(png)
        #expect(decoded.width == size.0 && decoded.height == size.1)
        #expect(decoded.pixels == pixels.flatMap { [$0, $0, $0] })
    }

    @Test func compressionLevelsAllRoundTrip() throws {
        let image = try Image(width: 64, height: 64, format: .gray8, pixels: [UInt8](repeating: 3, count: 4096))
        let stored = try image.encodedPNG(compressionLevel: 0)
        let smallest = try image.encodedPNG(compressionLevel: 9)
        #expect(stored.count > 4096)
        #expect(smallest.count < stored.count / 10)
        #expect(try ImageDecoder().decode(stored) == ImageDecoder().decode(smallest))
        #expect(throws: ImageError.invalidArgument("PNG compression level 10 is not in 0...9")) { try image.encodedPNG(compressionLevel: 10) }
        #expect(throws: ImageError.invalidArgument("PNG compression level -1 is not in 0...9")) { try image.encodedPNG(compressionLevel: -1) }
    }

    /// A segmentation mask, the main use: class indices in gray, written and read back.
    @Test func maskRoundTripsThroughDecode() throws {
        let width = 96, height = 64
        let mask = (0..<width * height).map { i in UInt8((i % width) / 16 + (i / width) / 16 * 6) }
        let png = try Image(width: width, height: height, format: .gray8, pixels: mask).encodedPNG()
        let decoded = try ImageDecoder().decode(png)
        #expect(stride(from: 0, to: decoded.pixels.count, by: 3).map { decoded.pixels[$0] } == mask)
    }

    @Test func imageRefusesMismatchedSizes() {
        #expect(throws: ImageError.invalidArgument("2x2 rgb8 needs 2*2*3 bytes, got 3")) {
            try Image(width: 2, height: 2, format: .rgb8, pixels: [0, 0, 0])
        }
        #expect(throws: ImageError.invalidArgument("image size 0x2 must be positive")) { try Image(width: 0, height: 2, format: .gray8, pixels: []) }
        #expect(throws: ImageError.invalidArgument("image size -1x-1 must be positive")) {
            try Image(width: -1, height: -1, format: .gray8, pixels: [0])
        }
    }
}
