import ImageCodec
import Testing

/// PNG variants beyond the fixtures, built by hand; the expected values are what PIL's
/// convert("RGB") gives for them (low-bit gray scaled to 0...255, tRNS ignored).
@Suite struct PNGVariantTests {
    @Test func oneBitGrayIsScaled() throws {
        // 10 pixels: 1010110011 -> packed into two bytes, padded with zeros.
        let png = handmadePNG(width: 10, height: 1, colorType: 0, bitDepth: 1, rows: [[0b1010_1100, 0b1100_0000]])
        let image = try ImageDecoder().decode(png)
        let gray: [UInt8] = [255, 0, 255, 0, 255, 255, 0, 0, 255, 255]
        #expect(image.pixels == gray.flatMap { [$0, $0, $0] })
    }

    @Test func twoBitGrayIsScaled() throws {
        let png = handmadePNG(width: 4, height: 2, colorType: 0, bitDepth: 2, rows: [[0b0001_1011], [0b1110_0100]])
        let image = try ImageDecoder().decode(png)
        let gray: [UInt8] = [0, 85, 170, 255, 255, 170, 85, 0]
        #expect(image.pixels == gray.flatMap { [$0, $0, $0] })
    }

    @Test func grayWithTRNSKeepsItsValues() throws {
        // tRNS marks gray 0x10 transparent; convert("RGB") ignores it.
        let trns = pngChunk("tRNS", [0x00, 0x10])
        let png = handmadePNG(
            width: 3, height: 1, colorType: 0, bitDepth: 8, rows: [[0x10, 0x80, 0xFF]], chunksBeforeIDAT: [trns])
        #expect(try ImageDecoder().decode(png).pixels == [0x10, 0x10, 0x10, 0x80, 0x80, 0x80, 0xFF, 0xFF, 0xFF])
    }

    @Test func rgbWithTRNSKeepsItsValues() throws {
        let trns = pngChunk("tRNS", [0x00, 0x01, 0x00, 0x02, 0x00, 0x03])
        let png = handmadePNG(
            width: 2, height: 1, colorType: 2, bitDepth: 8, rows: [[1, 2, 3, 200, 100, 50]], chunksBeforeIDAT: [trns])
        #expect(try ImageDecoder().decode(png).pixels == [1, 2, 3, 200, 100, 50])
    }

    @Test func sixteenBitGrayAlphaKeepsHighBytes() throws {
        // Gray+alpha, 16 bits: (0x1234, 0x0000), (0xFEDC, 0xFFFF).
        let png = handmadePNG(
            width: 2, height: 1, colorType: 4, bitDepth: 16, rows: [[0x12, 0x34, 0x00, 0x00, 0xFE, 0xDC, 0xFF, 0xFF]])
        #expect(try ImageDecoder().decode(png).pixels == [0x12, 0x12, 0x12, 0xFE, 0xFE, 0xFE])
    }

    @Test func sixteenBitRGBAKeepsHighBytesAndDropsAlpha() throws {
        let row: [UInt8] = [0x01, 0xFF, 0x02, 0xFF, 0x03, 0xFF, 0x00, 0x00]
        let png = handmadePNG(width: 1, height: 1, colorType: 6, bitDepth: 16, rows: [row])
        #expect(try ImageDecoder().decode(png).pixels == [1, 2, 3])
    }

    /// A gAMA chunk changes nothing: PIL applies no gamma correction, nor does the decoder.
    @Test func gammaIsNotApplied() throws {
        let gama = pngChunk("gAMA", bigEndian(45455))  // 1 / 2.2
        let png = handmadePNG(
            width: 2, height: 1, colorType: 2, bitDepth: 8, rows: [[10, 20, 30, 128, 64, 32]], chunksBeforeIDAT: [gama])
        #expect(try ImageDecoder().decode(png).pixels == [10, 20, 30, 128, 64, 32])
    }

    /// Each decode owns its libpng/libjpeg state: concurrent decodes agree with serial ones.
    @Test func decodesConcurrently() async throws {
        let files = ["rgb.png", "interlaced.png", "baseline.jpg", "progressive.jpg", "cmyk.jpg", "palette_trns.png"]
        let serial = try files.map { try decodeFixture($0) }
        let concurrent = try await withThrowingTaskGroup(of: (Int, Image).self) { group in
            for _ in 0..<4 {
                for (index, file) in files.enumerated() {
                    group.addTask { (index, try decodeFixture(file)) }
                }
            }
            var results: [(Int, Image)] = []
            for try await result in group { results.append(result) }
            return results
        }
        #expect(concurrent.count == files.count * 4)
        for (index, image) in concurrent {
            #expect(image == serial[index], "\(files[index])")
        }
    }
}
