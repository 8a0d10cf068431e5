import Foundation
import ImageCodec
import TestFixtures
import Testing

/// A good fixture image and what PIL says about it (see Tests/Fixtures/images/images.json).
struct GoodImage: Sendable, CustomTestStringConvertible {
    let file: String
    let stem: String
    let width: Int
    let height: Int
    let format: ImageFormat

    var testDescription: String { file }
}

/// The good fixtures, as scripts/fixtures/make_image_fixtures.py writes them.
let goodImages: [GoodImage] = [
    GoodImage(file: "rgb.png", stem: "rgb", width: 160, height: 120, format: .png),
    GoodImage(file: "rgba.png", stem: "rgba", width: 200, height: 150, format: .png),
    GoodImage(file: "gray.png", stem: "gray", width: 131, height: 97, format: .png),
    GoodImage(file: "gray_alpha.png", stem: "gray_alpha", width: 120, height: 90, format: .png),
    GoodImage(file: "palette.png", stem: "palette", width: 64, height: 48, format: .png),
    GoodImage(file: "palette_trns.png", stem: "palette_trns", width: 100, height: 75, format: .png),
    GoodImage(file: "rgb16.png", stem: "rgb16", width: 96, height: 72, format: .png),
    GoodImage(file: "gray16.png", stem: "gray16", width: 80, height: 60, format: .png),
    GoodImage(file: "interlaced.png", stem: "interlaced", width: 131, height: 97, format: .png),
    GoodImage(file: "baseline.jpg", stem: "baseline", width: 150, height: 200, format: .jpeg),
    GoodImage(file: "progressive.jpg", stem: "progressive", width: 131, height: 97, format: .jpeg),
    GoodImage(file: "gray.jpg", stem: "gray_jpg", width: 160, height: 120, format: .jpeg),
    GoodImage(file: "cmyk.jpg", stem: "cmyk", width: 120, height: 90, format: .jpeg),
]

/// The good fixtures with a centre-crop (classifier) reference.
let classifierImages: [GoodImage] = goodImages.filter { ["rgb.png", "baseline.jpg", "gray.png"].contains($0.file) }

let imagenetMean: [Float] = [0.485, 0.456, 0.406]
let imagenetStd: [Float] = [0.229, 0.224, 0.225]

func decodeFixture(_ file: String, decoder: ImageDecoder = ImageDecoder()) throws -> Image {
    try decoder.decode(Fixtures.bytes("images/\(file)"))
}

/// Reads a little-endian float32 fixture file.
func floatFixture(_ relativePath: String) throws -> [Float] {
    let bytes = try Fixtures.bytes(relativePath)
    return bytes.withUnsafeBytes { raw in
        (0..<(bytes.count / 4)).map {
            Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)))
        }
    }
}

/// Largest absolute difference, and where it is.
func maxAbsDifference(_ a: [Float], _ b: [Float]) -> (value: Float, index: Int) {
    var worst: (value: Float, index: Int) = (0, -1)
    for i in 0..<min(a.count, b.count) where abs(a[i] - b[i]) > worst.value {
        worst = (abs(a[i] - b[i]), i)
    }
    return worst
}

/// Describes the first differing byte of two pixel buffers, or nil when they are equal.
func firstPixelMismatch(_ actual: [UInt8], _ expected: [UInt8], width: Int, channels: Int = 3) -> String? {
    guard actual.count == expected.count else { return "\(actual.count) bytes, expected \(expected.count)" }
    var differing = 0
    var first: Int?
    var largest = 0
    for i in 0..<actual.count where actual[i] != expected[i] {
        differing += 1
        first = first ?? i
        largest = max(largest, abs(Int(actual[i]) - Int(expected[i])))
    }
    guard let first else { return nil }
    let pixel = first / channels
    return "\(differing) bytes differ (largest by \(largest)); first at x \(pixel % width), y \(pixel / width), "
        + "channel \(first % channels): \(actual[first]) vs \(expected[first])"
}

/// The fixture manifest written by the fixture script.
struct FixtureManifest: Decodable {
    struct Entry: Decodable {
        let file: String
        let stem: String
        let width: Int
        let height: Int
        let format: String
        let mode: String
    }
    let images: [Entry]
}

/// A CRC-32 (the PNG/zlib polynomial), for crafting PNG chunks in tests.
func crc32(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 {
            crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1
        }
    }
    return ~crc
}

func bigEndian(_ value: UInt32) -> [UInt8] {
    [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
}

/// A PNG chunk with a correct CRC.
func pngChunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
    let body = Array(type.utf8) + data
    return bigEndian(UInt32(data.count)) + body + bigEndian(crc32(body))
}

/// The bytes of a PNG whose IHDR declares `width` x `height` RGB8 and whose only IDAT holds a
/// few bytes of a zlib stream: a small file claiming a large image.
func pngDeclaring(width: UInt32, height: UInt32) -> [UInt8] {
    let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    let header = bigEndian(width) + bigEndian(height) + [8, 2, 0, 0, 0]
    // zlib header + a stored block of 4 zero bytes: far less data than the image needs.
    let idat: [UInt8] = [0x78, 0x01, 0x01, 0x04, 0x00, 0xFB, 0xFF, 0, 0, 0, 0]
    return signature + pngChunk("IHDR", header) + pngChunk("IDAT", idat) + pngChunk("IEND", [])
}

/// A PNG built by hand from already packed, unfiltered rows, its zlib stream made of stored
/// (uncompressed) blocks: for PNG variants the fixture script does not cover.
func handmadePNG(
    width: UInt32, height: UInt32, colorType: UInt8, bitDepth: UInt8, rows: [[UInt8]],
    chunksBeforeIDAT: [[UInt8]] = []
) -> [UInt8] {
    let raw: [UInt8] = rows.flatMap { row -> [UInt8] in [0] + row }  // filter type 0 on every row
    var zlib: [UInt8] = [0x78, 0x01]
    var offset = 0
    repeat {
        let block = Array(raw[offset..<min(offset + 65535, raw.count)])
        offset += block.count
        let length = UInt16(block.count)
        let complement = ~length
        let final: UInt8 = offset >= raw.count ? 1 : 0
        zlib += [final, UInt8(length & 0xFF), UInt8(length >> 8)]
        zlib += [UInt8(complement & 0xFF), UInt8(complement >> 8)]
        zlib += block
    } while offset < raw.count
    var a: UInt32 = 1, b: UInt32 = 0
    for byte in raw {
        a = (a + UInt32(byte)) % 65521
        b = (b + a) % 65521
    }
    zlib += bigEndian(b << 16 | a)
    let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    let header = bigEndian(width) + bigEndian(height) + [bitDepth, colorType, 0, 0, 0]
    var png = signature + pngChunk("IHDR", header)
    for chunk in chunksBeforeIDAT { png += chunk }
    png += pngChunk("IDAT", zlib)
    png += pngChunk("IEND", [])
    return png
}
