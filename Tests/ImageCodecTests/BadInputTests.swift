import ImageCodec
import TestFixtures
import Testing

@Suite struct BadInputTests {
    func decodeError(_ bytes: [UInt8]) -> ImageError? {
        do {
            _ = try ImageDecoder().decode(bytes)
            return nil
        } catch let error as ImageError {
            return error
        } catch {
            Issue.record("not an ImageError: \(error)")
            return nil
        }
    }

    func fixtureError(_ file: String) throws -> ImageError? {
        decodeError(try Fixtures.bytes("images/\(file)"))
    }

    @Test func emptyBodyIsEmpty() throws {
        #expect(try fixtureError("empty.bin") == .empty)
        #expect(decodeError([]) == .empty)
    }

    @Test func textIsUnsupportedAndSaysWhatItLooksLike() throws {
        let error = try fixtureError("not_an_image.txt")
        guard case .unsupportedFormat(let what) = error else {
            Issue.record("got \(String(describing: error))")
            return
        }
        #expect(what == "not a PNG or JPEG image (starts with 48 65 6c 6c 6f 2c 20 74 \"Hello, t\")")
        #expect(error?.description.hasPrefix("unsupported image format: not a PNG or JPEG image") == true)
    }

    @Test func otherFormatsAreNamed() {
        let cases: [([UInt8], String)] = [
            (Array("GIF89a".utf8) + [1, 0, 1, 0], "looks like GIF"),
            (Array("RIFF".utf8) + [0, 0, 0, 0] + Array("WEBPVP8 ".utf8), "looks like WebP"),
            ([0x49, 0x49, 0x2A, 0x00, 8, 0, 0, 0], "looks like TIFF"),
            (Array("  <html><body>".utf8), "looks like HTML, XML or SVG text"),
            (Array("{\"data\": 1}".utf8), "looks like JSON text"),
        ]
        for (bytes, expected) in cases {
            guard case .unsupportedFormat(let what) = decodeError(bytes) else {
                Issue.record("\(bytes) was not refused as unsupported")
                continue
            }
            #expect(what.contains(expected), "\(what)")
        }
    }

    @Test func truncatedPNGIsTruncated() throws {
        let error = try fixtureError("truncated.png")
        guard case .truncated(let reason) = error else {
            Issue.record("got \(String(describing: error))")
            return
        }
        #expect(reason.contains("PNG data ends"))
    }

    @Test func truncatedJPEGIsTruncated() throws {
        let error = try fixtureError("truncated.jpg")
        guard case .truncated(let reason) = error else {
            Issue.record("got \(String(describing: error))")
            return
        }
        #expect(reason.contains("Premature end of JPEG file"))
    }

    /// corrupt.png has IDAT bytes inverted and its CRC left as it was. libpng inflates a chunk
    /// before it checks the chunk's CRC, so here the damaged row filter is what it reports.
    @Test func corruptPNGIsCorrupt() throws {
        let error = try fixtureError("corrupt.png")
        guard case .corrupt(let reason) = error else {
            Issue.record("got \(String(describing: error))")
            return
        }
        #expect(reason == "bad adaptive filter value")
    }

    /// A damaged CRC alone, on a critical chunk, is corruption too.
    @Test func badCRCIsCorrupt() throws {
        var bytes = try Fixtures.bytes("images/rgb.png")
        bytes[8 + 8 + 13] ^= 0x01  // the IHDR chunk's CRC
        #expect(decodeError(bytes) == .corrupt("IHDR: CRC error"))
    }

    /// The same damage with the CRC fixed: zlib must notice instead.
    @Test func corruptPNGWithValidCRCIsCorrupt() throws {
        var bytes = try Fixtures.bytes("images/corrupt.png")
        var offset = 8
        while offset + 8 <= bytes.count {
            let length = Int(bytes[offset]) << 24 | Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8
                | Int(bytes[offset + 3])
            let type = String(decoding: bytes[offset + 4..<offset + 8], as: UTF8.self)
            if type == "IDAT" {
                let crc = bigEndian(crc32(Array(bytes[offset + 4..<offset + 8 + length])))
                bytes.replaceSubrange(offset + 8 + length..<offset + 12 + length, with: crc)
                break
            }
            offset += 12 + length
        }
        let error = decodeError(bytes)
        guard case .corrupt = error else {
            Issue.record("got \(String(describing: error))")
            return
        }
    }

    @Test func signatureCutShortIsTruncated() {
        #expect(decodeError([0x89, 0x50, 0x4E]) == .truncated("only 3 bytes of a PNG signature"))
        #expect(decodeError([0xFF, 0xD8]) == .truncated("only 2 bytes of a JPEG signature"))
    }

    @Test func jpegWithoutImageIsTruncated() {
        guard case .truncated = decodeError([0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10]) else {
            Issue.record("a JPEG header cut in its first segment was not reported as truncated")
            return
        }
    }

    /// Cuts at ~100 places and scattered byte damage: always a thrown ImageError or an image,
    /// never a crash, an abort or output on stderr. Every cut JPEG is an error, even one missing
    /// only its EOI marker (PIL says "image file is truncated" there too); a PNG cut inside its
    /// final IEND chunk has all its pixels and decodes, as in PIL.
    @Test(arguments: ["rgb.png", "interlaced.png", "palette_trns.png", "baseline.jpg", "progressive.jpg", "cmyk.jpg"])
    func damagedInputNeverCrashes(_ file: String) throws {
        let bytes = try Fixtures.bytes("images/\(file)")
        let endMarker = file.hasSuffix(".png") ? 12 : 0
        var lengths = Array(Swift.stride(from: 1, to: bytes.count, by: max(1, bytes.count / 97)))
        lengths += (bytes.count - endMarker - 8)..<bytes.count
        for length in lengths {
            let error = decodeError(Array(bytes[..<length]))
            if length < bytes.count - endMarker {
                #expect(error != nil, "\(file) cut to \(length) of \(bytes.count) bytes decoded")
            } else {
                #expect(error == nil, "\(file) without IEND: \(String(describing: error))")
            }
        }
        var generator = SplitMix64(seed: 42)
        for _ in 0..<200 {
            var damaged = bytes
            for _ in 0..<4 {
                let index = 8 + Int(generator.next() % UInt64(damaged.count - 8))
                damaged[index] = UInt8(truncatingIfNeeded: generator.next())
            }
            // Decoding may succeed (JPEG recovers from most damage, as PIL does) or throw.
            _ = decodeError(damaged)
        }
    }
}

/// A tiny deterministic generator for the damage test.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
