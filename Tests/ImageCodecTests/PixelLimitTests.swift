import ImageCodec
import TestFixtures
import Testing

@Suite struct PixelLimitTests {
    @Test func defaultLimitIs64MiPixels() {
        #expect(ImageDecoder.defaultPixelLimit == 67_108_864)
        #expect(ImageDecoder().pixelLimit == ImageDecoder.defaultPixelLimit)
    }

    /// A 100-byte PNG declaring 20000 x 20000 (1.2 GB of RGB) is refused from its header.
    @Test func hugeDeclaredPNGIsRefused() {
        let bytes = pngDeclaring(width: 20000, height: 20000)
        #expect(bytes.count < 100)
        #expect(throws: ImageError.tooLarge(width: 20000, height: 20000, limit: ImageDecoder.defaultPixelLimit)) {
            try ImageDecoder().decode(bytes)
        }
    }

    /// The refusal comes from the header alone: the same file under a limit it fits in gets
    /// as far as the pixel data, and fails there for want of it.
    @Test func refusalHappensBeforeThePixelData() {
        let bytes = pngDeclaring(width: 300, height: 200)
        #expect(throws: ImageError.tooLarge(width: 300, height: 200, limit: 59_999)) {
            try ImageDecoder(pixelLimit: 59_999).decode(bytes)
        }
        do {
            _ = try ImageDecoder(pixelLimit: 60_000).decode(bytes)
            Issue.record("a PNG without its pixel data decoded")
        } catch let error as ImageError {
            if case .tooLarge = error { Issue.record("refused at the limit itself: \(error)") }
        } catch {
            Issue.record("not an ImageError: \(error)")
        }
    }

    @Test func limitIsInclusive() throws {
        // rgb.png is 160 x 120 = 19,200 pixels.
        #expect(try decodeFixture("rgb.png", decoder: ImageDecoder(pixelLimit: 19_200)).width == 160)
        #expect(throws: ImageError.tooLarge(width: 160, height: 120, limit: 19_199)) {
            try decodeFixture("rgb.png", decoder: ImageDecoder(pixelLimit: 19_199))
        }
        // 150 x 200 = 30,000.
        #expect(try decodeFixture("baseline.jpg", decoder: ImageDecoder(pixelLimit: 30_000)).height == 200)
        #expect(throws: ImageError.tooLarge(width: 150, height: 200, limit: 29_999)) {
            try decodeFixture("baseline.jpg", decoder: ImageDecoder(pixelLimit: 29_999))
        }
    }

    /// baseline.jpg with its frame header rewritten to claim 30000 x 30000.
    @Test func hugeDeclaredJPEGIsRefused() throws {
        var bytes = try Fixtures.bytes("images/baseline.jpg")
        let sof = try #require((0..<bytes.count - 1).first { bytes[$0] == 0xFF && bytes[$0 + 1] == 0xC0 })
        // FFC0, length (2), precision (1), height (2), width (2).
        bytes.replaceSubrange(sof + 5..<sof + 9, with: [0x75, 0x30, 0x75, 0x30])
        #expect(throws: ImageError.tooLarge(width: 30000, height: 30000, limit: ImageDecoder.defaultPixelLimit)) {
            try ImageDecoder().decode(bytes)
        }
    }

    @Test func messageNamesSizeAndLimit() {
        let error = ImageError.tooLarge(width: 20000, height: 20000, limit: 67_108_864)
        #expect(error.description == "image too large: 20000x20000 is 400000000 pixels, the limit is 67108864")
    }
}
