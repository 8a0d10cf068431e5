import Foundation
import ImageCodec
import TestFixtures
import Testing

@Suite struct DecodeTests {
    /// Every good fixture decodes to exactly PIL's `convert("RGB")` pixels (gray16.png: the
    /// high byte; see images.json). CMYK is exact too: the C code uses PIL's formula.
    @Test(arguments: goodImages)
    func decodesLikePIL(_ fixture: GoodImage) throws {
        let image = try decodeFixture(fixture.file)
        #expect(image.width == fixture.width)
        #expect(image.height == fixture.height)
        #expect(image.format == .rgb8)
        let expected = try Fixtures.bytes("expected/\(fixture.stem).rgb")
        let mismatch = firstPixelMismatch(image.pixels, expected, width: image.width)
        #expect(mismatch == nil, "\(fixture.file): \(mismatch ?? "")")
    }

    @Test(arguments: goodImages)
    func sniffsFormatFromMagicBytes(_ fixture: GoodImage) throws {
        #expect(ImageFormat.sniff(try Fixtures.bytes("images/\(fixture.file)")) == fixture.format)
    }

    /// The table above agrees with the manifest the fixture script wrote.
    @Test func fixtureTableMatchesManifest() throws {
        let data = try Data(contentsOf: Fixtures.url("images/images.json"))
        let manifest = try JSONDecoder().decode(FixtureManifest.self, from: data)
        #expect(manifest.images.map(\.file) == goodImages.map(\.file))
        for (entry, fixture) in zip(manifest.images, goodImages) {
            #expect(entry.stem == fixture.stem)
            #expect(entry.width == fixture.width && entry.height == fixture.height, "\(entry.file)")
            #expect(entry.format == (fixture.format == .png ? "PNG" : "JPEG"), "\(entry.file)")
        }
        // The fixtures cover the PIL modes the decoder must convert.
        #expect(Set(manifest.images.map(\.mode)) == ["RGB", "RGBA", "L", "LA", "P", "I", "CMYK"])
    }

    /// Decoding takes any byte collection: arrays, slices, Data, non-contiguous ones.
    @Test func decodesFromAnyByteCollection() throws {
        let bytes = try Fixtures.bytes("images/rgb.png")
        let reference = try ImageDecoder().decode(bytes)
        #expect(try ImageDecoder().decode(Data(bytes)) == reference)
        #expect(try ImageDecoder().decode(([0, 0] + bytes)[2...]) == reference)
        #expect(try ImageDecoder().decode(bytes.lazy.map { $0 }) == reference)
    }

    /// Trailing bytes after the image (some uploads carry them) are ignored, as PIL does.
    @Test func ignoresTrailingBytes() throws {
        for file in ["rgb.png", "baseline.jpg"] {
            let bytes = try Fixtures.bytes("images/\(file)")
            let reference = try ImageDecoder().decode(bytes)
            #expect(try ImageDecoder().decode(bytes + Array(repeating: 0x41, count: 100)) == reference)
        }
    }
}
