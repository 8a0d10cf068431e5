import ImageCodec
import Testing

/// Regression tests for the decoder bounds in time and memory: one per finding of the attack run
/// (many-scan JPEG, text-chunk PNG, no deadline, header sizes), on inputs built here from bytes.
@Suite struct DecoderBoundsTests {
    func decodeError(_ bytes: [UInt8], decoder: ImageDecoder = ImageDecoder(), timeBudget: Duration? = nil)
        -> ImageError?
    {
        do {
            _ = try decoder.decode(bytes, timeBudget: timeBudget)
            return nil
        } catch let error as ImageError {
            return error
        } catch {
            Issue.record("not an ImageError: \(error)")
            return nil
        }
    }

    // MARK: - Progressive JPEG with thousands of scans

    /// The attack itself: 8192 x 8192 with 6,000 empty scans (60 KB). Every scan costs a pass
    /// over 64 Mi pixels, so it took 34 s; now it is refused after 64 scans, the cap at this
    /// size (scans x pixels stays under 2^32), in about half a second.
    @Test func thousandsOfScansAtFullSizeAreRefusedQuickly() {
        let bytes = handmadeGrayJPEG(width: 8192, height: 8192, progressiveScans: 6000, scanData: false)
        #expect(bytes.count < 70_000)
        let clock = ContinuousClock()
        var error: ImageError?
        let elapsed = clock.measure { error = decodeError(bytes) }
        #expect(error == .tooComplex(scans: 6000, limit: 64))
        // 600 of these scans took 5.5 s before the cap; the refusal needs about 0.5 s.
        #expect(elapsed < .seconds(5), "took \(elapsed)")
    }

    /// A small image may hold 500 scans, and no more: the limit counts every SOS in the file.
    @Test func smallImageMayHold500Scans() throws {
        let atLimit = handmadeGrayJPEG(width: 64, height: 64, progressiveScans: 500, scanData: true)
        let image = try ImageDecoder().decode(atLimit)
        #expect(image.width == 64 && image.height == 64)
        #expect(image.pixels.allSatisfy { $0 == 128 })

        let overLimit = handmadeGrayJPEG(width: 64, height: 64, progressiveScans: 501, scanData: true)
        #expect(decodeError(overLimit) == .tooComplex(scans: 501, limit: 500))
    }

    @Test func tooComplexSaysWhatToDo() {
        let message = ImageError.tooComplex(scans: 6000, limit: 64).description
        #expect(
            message == "image too complex: the JPEG has 6000 scans, more than the 64 the decoder allows for its "
                + "size (each scan is a pass over the whole image); re-encode it as a baseline JPEG, or as a "
                + "progressive one with the encoder's standard scans (about 10)")
    }

    // MARK: - PNG with many large compressed text chunks

    /// 100 zTXt and 100 iTXt chunks, each inflating to 7.7 MB (1.5 MB of file): libpng inflated
    /// every one, 7.5 s of CPU. Ancillary chunks are now skipped unread; the pixels are intact.
    @Test func textChunksAreSkippedWithoutInflating() throws {
        let bomb = zlibZeros(count: 7_740_001)
        #expect(bomb.count < 7_600)
        let ztxt = pngChunk("zTXt", Array("Comment".utf8) + [0, 0] + bomb)
        let itxt = pngChunk("iTXt", Array("XML:com.adobe.xmp".utf8) + [0, 1, 0, 0, 0] + bomb)
        let width = 40, height = 30
        let rows = (0..<height).map { y in (0..<width * 3).map { x in UInt8((x * 7 + y * 13) & 0xFF) } }
        func png(_ chunks: [[UInt8]]) -> [UInt8] {
            handmadePNG(
                width: UInt32(width), height: UInt32(height), colorType: 2, bitDepth: 8, rows: rows,
                chunksBeforeIDAT: chunks)
        }
        let bytes = png(Array(repeating: ztxt, count: 100) + Array(repeating: itxt, count: 100))
        #expect(bytes.count < 2_000_000)

        let clock = ContinuousClock()
        var image: Image?
        let elapsed = try clock.measure { image = try ImageDecoder().decode(bytes) }
        let decoded = try #require(image)
        #expect(decoded.width == width && decoded.height == height)
        #expect(decoded.pixels == rows.flatMap { $0 })
        let withoutText = try ImageDecoder().decode(png([]))
        #expect(decoded == withoutText)
        #expect(elapsed < .seconds(2), "took \(elapsed)")
    }

    // MARK: - Deadlines

    @Test func passedDeadlineThrowsBeforeAnyWork() throws {
        let bytes = handmadeGrayJPEG(width: 64, height: 64)
        let decoder = ImageDecoder()
        #expect(throws: ImageError.deadlineExceeded) {
            try decoder.decode(bytes, deadline: ContinuousClock.now - .seconds(1))
        }
        #expect(throws: ImageError.deadlineExceeded) { try decoder.decode(bytes, timeBudget: .zero) }
        #expect(throws: ImageError.deadlineExceeded) { try decoder.decode(bytes, timeBudget: .seconds(-1)) }
        // Not even the format is looked at.
        #expect(throws: ImageError.deadlineExceeded) { try decoder.decode([UInt8](), timeBudget: .zero) }
        // No deadline, or a far one, decodes.
        #expect(try decoder.decode(bytes, deadline: nil).width == 64)
        #expect(try decoder.decode(bytes, deadline: ContinuousClock.now + .seconds(60)).width == 64)
        #expect(try decoder.decode(bytes, timeBudget: .seconds(Int64.max)).width == 64)
    }

    /// 4096 x 4096 takes about 50 ms; with 1 ms the decoder stops at its first look at the clock.
    @Test func tinyBudgetAbandonsALargeJPEG() throws {
        let bytes = handmadeGrayJPEG(width: 4096, height: 4096)
        #expect(decodeError(bytes, timeBudget: .milliseconds(1)) == .deadlineExceeded)
        // The same file within a generous budget.
        let small = handmadeGrayJPEG(width: 1024, height: 1024)
        let image = try ImageDecoder().decode(small, timeBudget: .seconds(60))
        #expect(image.width == 1024 && image.pixels.allSatisfy { $0 == 128 })
    }

    /// 4096 x 4096 takes about 50 ms; with 1 ms the decoder stops between rows. The same file,
    /// interlaced, stops within the first passes.
    @Test func tinyBudgetAbandonsALargePNG() throws {
        for interlaced in [false, true] {
            let bytes = blackPNG(width: 4096, height: 4096, interlaced: interlaced)
            #expect(decodeError(bytes, timeBudget: .milliseconds(1)) == .deadlineExceeded)
        }
        // A smaller one within a generous budget.
        let image = try ImageDecoder().decode(blackPNG(width: 1000, height: 700, interlaced: true), timeBudget: .seconds(60))
        #expect(image.width == 1000 && image.height == 700 && image.pixels.allSatisfy { $0 == 0 })
    }

    @Test func deadlineExceededSaysWhatToDo() {
        #expect(
            ImageError.deadlineExceeded.description
                == "image decoding abandoned: it did not finish before the request's deadline; "
                + "send a smaller image, or allow the request more time")
    }

    // MARK: - Sizes from headers

    /// Headers at the edges of what the formats (and libjpeg, 65500) can say are refused without trapping or
    /// allocating, whatever the pixel limit.
    @Test func hugeDimensionsAreRefusedWithoutTrapping() {
        let limit = ImageDecoder.defaultPixelLimit
        #expect(
            decodeError(pngDeclaring(width: 0x7FFF_FFFF, height: 0x7FFF_FFFF))
                == .tooLarge(width: 0x7FFF_FFFF, height: 0x7FFF_FFFF, limit: limit))
        // Beyond what PNG allows (2^31 - 1): still read as a size and refused.
        #expect(
            decodeError(pngDeclaring(width: 0xFFFF_FFFF, height: 0xFFFF_FFFF))
                == .tooLarge(width: 0xFFFF_FFFF, height: 0xFFFF_FFFF, limit: limit))
        // With no pixel limit at all, a side over 1,000,000 is still refused from the header.
        let unlimited = ImageDecoder(pixelLimit: .max)
        guard case .unsupportedFormat(let reason) = decodeError(pngDeclaring(width: 0x7FFF_FFFF, height: 1), decoder: unlimited)
        else {
            Issue.record("a 2^31 - 1 wide PNG was not refused as unsupported")
            return
        }
        #expect(reason == "PNG declares 2147483647x1 pixels; sides longer than 1000000 are not supported")
        // 1,000,000 x 1,000,000 passes every header check; its 3 TB are refused by the allocator
        // or its missing pixel data ends it. Either way an error, not a trap.
        #expect(decodeError(pngDeclaring(width: 1_000_000, height: 1_000_000), decoder: unlimited) != nil)
        // JPEG sides are 16-bit, and libjpeg reads up to 65500.
        #expect(
            decodeError(handmadeGrayJPEG(width: 65500, height: 65500, progressiveScans: 1, scanData: false))
                == .tooLarge(width: 65500, height: 65500, limit: limit))
        #expect(decodeError(handmadeGrayJPEG(width: 65535, height: 1), decoder: unlimited) != nil)
        // The message of a size whose product does not fit an Int.
        #expect(
            ImageError.tooLarge(width: .max, height: 2, limit: limit).description
                == "image too large: \(Int.max)x2 is more than \(Int.max) pixels, the limit is \(limit)")
    }

    /// Sizes derived from an image's (header) sizes in the preprocessing arithmetic throw instead
    /// of trapping.
    @Test func preprocessingSizesAreChecked() throws {
        #expect(throws: ImageError.invalidArgument("shorter side 1 of a 1x9223372036854775807 image is too large")) {
            try Image.shorterSideSize(width: 1, height: .max, shorterSide: 1)
        }
        let image = try Image(width: 2, height: 2, format: .rgb8, pixels: [UInt8](repeating: 7, count: 12))
        #expect(throws: ImageError.invalidArgument("crop 9223372036854775807x2 is too large")) { try image.centerCropped(width: .max, height: 2) }
        #expect(throws: ImageError.invalidArgument("crop 1099511627776x1099511627776 is too large")) {
            try image.centerCropped(width: 1 << 40, height: 1 << 40)
        }
        #expect(throws: ImageError.invalidArgument("resize target 9223372036854775807x2 is too large")) { try image.resized(width: .max, height: 2) }
    }
}

// MARK: - Inputs built from bytes

/// A grayscale JPEG built by hand: one 8-bit component, a quantisation table of 1s, and Huffman
/// tables of one 1-bit code each (DC difference category 0; AC end-of-block), so all-zero
/// entropy-coded data is a valid image of uniform gray 128.
///
/// - Parameters:
///   - progressiveScans: nil for a baseline JPEG; otherwise a progressive one made of this many
///     DC scans (all the same: first pass, no successive approximation).
///   - scanData: whether each progressive scan carries its entropy-coded data (1 bit a block);
///     without, every scan is empty, as in the attack, and libjpeg decodes zeros with a warning.
func handmadeGrayJPEG(width: UInt16, height: UInt16, progressiveScans: Int? = nil, scanData: Bool = true)
    -> [UInt8]
{
    let blocks = ((Int(width) + 7) / 8) * ((Int(height) + 7) / 8)
    func segment(_ marker: UInt8, _ payload: [UInt8]) -> [UInt8] {
        let length = payload.count + 2
        return [0xFF, marker, UInt8(length >> 8), UInt8(length & 0xFF)] + payload
    }
    let oneCodeTable: [UInt8] = [1] + [UInt8](repeating: 0, count: 15) + [0x00]  // one code of length 1: symbol 0
    var jpeg: [UInt8] = [0xFF, 0xD8]
    jpeg += segment(0xDB, [0x00] + [UInt8](repeating: 1, count: 64))
    let frame: [UInt8] = [8, UInt8(height >> 8), UInt8(height & 0xFF), UInt8(width >> 8), UInt8(width & 0xFF), 1, 1, 0x11, 0]
    jpeg += segment(progressiveScans == nil ? 0xC0 : 0xC2, frame)
    jpeg += segment(0xC4, [0x00] + oneCodeTable)  // DC table 0
    if let scans = progressiveScans {
        // Component 1, tables 0/0, spectral selection 0...0, approximation 0/0.
        let scan = segment(0xDA, [1, 1, 0x00, 0, 0, 0x00])
            + (scanData ? [UInt8](repeating: 0, count: (blocks + 7) / 8) : [])
        for _ in 0..<scans { jpeg += scan }
    } else {
        jpeg += segment(0xC4, [0x10] + oneCodeTable)  // AC table 0
        jpeg += segment(0xDA, [1, 1, 0x00, 0, 63, 0x00])
        jpeg += [UInt8](repeating: 0, count: (2 * blocks + 7) / 8)  // per block: DC "0", EOB "0"
    }
    return jpeg + [0xFF, 0xD9]
}

/// Bits for a deflate stream: values least significant bit first, Huffman codes most significant
/// bit first, as RFC 1951 packs them.
struct DeflateBits {
    private(set) var bytes: [UInt8] = []
    private var bitCount = 0

    mutating func write(_ value: Int, bits: Int) {
        for bit in 0..<bits { append((value >> bit) & 1 == 1) }
    }

    mutating func writeCode(_ code: Int, bits: Int) {
        for bit in stride(from: bits - 1, through: 0, by: -1) { append((code >> bit) & 1 == 1) }
    }

    /// `count` zero bits at once.
    mutating func writeZeros(_ count: Int) {
        bitCount += count
        let needed = (bitCount + 7) / 8
        if bytes.count < needed { bytes += [UInt8](repeating: 0, count: needed - bytes.count) }
    }

    private mutating func append(_ bit: Bool) {
        if bitCount % 8 == 0 { bytes.append(0) }
        if bit { bytes[bytes.count - 1] |= UInt8(1 << (bitCount % 8)) }
        bitCount += 1
    }
}

/// A zlib stream of `count` (at least 1) zero bytes at deflate's best ratio, 1032:1: one
/// dynamic-Huffman block whose length-258 code and distance-1 code are one bit each, so its body
/// is pairs of zero bits. (Checked with Python's zlib.decompress.)
func zlibZeros(count: Int) -> [UInt8] {
    var bits = DeflateBits()
    bits.write(1, bits: 1)  // BFINAL
    bits.write(2, bits: 2)  // BTYPE 10: dynamic Huffman codes
    bits.write(286 - 257, bits: 5)  // HLIT
    bits.write(1 - 1, bits: 5)  // HDIST
    bits.write(18 - 4, bits: 4)  // HCLEN
    // Code length code lengths, in RFC 1951's order 16 17 18 0 8 7 9 6 10 5 11 4 12 3 13 2 14 1:
    // 18 (a run of zeros) is "0", length 1 is "10", length 2 is "11".
    for length in [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 2] { bits.write(length, bits: 3) }
    bits.writeCode(0b11, bits: 2)  // literal 0: length 2
    bits.writeCode(0, bits: 1)
    bits.write(138 - 11, bits: 7)  // literals 1...138: unused
    bits.writeCode(0, bits: 1)
    bits.write(117 - 11, bits: 7)  // literals 139...255: unused
    bits.writeCode(0b11, bits: 2)  // 256, end of block: length 2
    bits.writeCode(0, bits: 1)
    bits.write(28 - 11, bits: 7)  // 257...284: unused
    bits.writeCode(0b10, bits: 2)  // 285, length 258: length 1
    bits.writeCode(0b10, bits: 2)  // distance code 0, distance 1: length 1
    // Codes: length 258 is "0", literal 0 "10", end of block "11"; distance 1 is "0".
    let copies = (count - 1) / 258
    bits.writeCode(0b10, bits: 2)
    bits.writeZeros(2 * copies)
    for _ in 0..<(count - 1 - 258 * copies) { bits.writeCode(0b10, bits: 2) }
    bits.writeCode(0b11, bits: 2)
    // Adler-32 of zero bytes: a stays 1, b adds it once a byte.
    let adler = UInt32(count % 65521) << 16 | 1
    return [0x78, 0x01] + bits.bytes + bigEndian(adler)
}

/// An 8-bit gray PNG of zeros, a few KB however large, its rows unfiltered.
func blackPNG(width: UInt32, height: UInt32, interlaced: Bool = false) -> [UInt8] {
    let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    let header = bigEndian(width) + bigEndian(height) + [8, 0, 0, 0, interlaced ? 1 : 0]
    // Each row is a filter byte and its samples; Adam7 rows of each pass the same, pass by pass.
    var rawBytes = 0
    if interlaced {
        let passes: [(x0: Int, dx: Int, y0: Int, dy: Int)] = [
            (0, 8, 0, 8), (4, 8, 0, 8), (0, 4, 4, 8), (2, 4, 0, 4), (0, 2, 2, 4), (1, 2, 0, 2), (0, 1, 1, 2),
        ]
        for pass in passes {
            let columns = (Int(width) - pass.x0 + pass.dx - 1) / pass.dx
            let rows = (Int(height) - pass.y0 + pass.dy - 1) / pass.dy
            if columns > 0 && rows > 0 { rawBytes += rows * (1 + columns) }
        }
    } else {
        rawBytes = Int(height) * (1 + Int(width))
    }
    return signature + pngChunk("IHDR", header) + pngChunk("IDAT", zlibZeros(count: rawBytes)) + pngChunk("IEND", [])
}
