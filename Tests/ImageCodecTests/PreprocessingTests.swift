import ImageCodec
import TestFixtures
import Testing

@Suite struct PreprocessingTests {
    /// The issue's bound; a resize that is off by one level anywhere already differs by
    /// 1 / 255 / 0.229 = 0.0171, so `exactBound` is what shows the resize is Pillow's.
    static let issueBound: Float = 0.02
    static let exactBound: Float = 1e-6

    /// decode -> Resize((96, 128)) -> ToTensor -> Normalize, against torchvision.
    @Test(arguments: goodImages)
    func resizeAndNormalizeMatchTorchvision(_ fixture: GoodImage) throws {
        let image = try decodeFixture(fixture.file)
        let resized = try image.resized(width: 128, height: 96)
        #expect(resized.width == 128 && resized.height == 96)
        let tensor = try resized.normalizedCHW(mean: imagenetMean, std: imagenetStd)
        let expected = try floatFixture("expected/\(fixture.stem).input.f32")
        #expect(expected.count == 3 * 96 * 128)
        let diff = maxAbsDifference(tensor, expected)
        #expect(diff.value <= Self.issueBound, "\(fixture.file): max diff \(diff.value) at \(diff.index)")
        #expect(diff.value <= Self.exactBound, "\(fixture.file): max diff \(diff.value) at \(diff.index)")
    }

    /// decode -> Resize(64) -> CenterCrop(56) -> ToTensor -> Normalize, against torchvision.
    @Test(arguments: classifierImages)
    func shorterSideResizeAndCenterCropMatchTorchvision(_ fixture: GoodImage) throws {
        let image = try decodeFixture(fixture.file)
        let cropped = try image.resized(shorterSide: 64).centerCropped(size: 56)
        let tensor = try cropped.normalizedCHW(mean: imagenetMean, std: imagenetStd)
        let expected = try floatFixture("expected/\(fixture.stem).cls.f32")
        #expect(expected.count == 3 * 56 * 56)
        let diff = maxAbsDifference(tensor, expected)
        #expect(diff.value <= Self.issueBound, "\(fixture.file): max diff \(diff.value) at \(diff.index)")
        #expect(diff.value <= Self.exactBound, "\(fixture.file): max diff \(diff.value) at \(diff.index)")
    }

    /// torchvision 0.14's `_compute_resized_output_size`: int(size * long / short).
    @Test func shorterSideSizes() throws {
        #expect(try Image.shorterSideSize(width: 160, height: 120, shorterSide: 64) == (85, 64))
        #expect(try Image.shorterSideSize(width: 150, height: 200, shorterSide: 64) == (64, 85))
        #expect(try Image.shorterSideSize(width: 131, height: 97, shorterSide: 64) == (86, 64))
        #expect(try Image.shorterSideSize(width: 100, height: 100, shorterSide: 256) == (256, 256))
        #expect(try Image.shorterSideSize(width: 640, height: 480, shorterSide: 256) == (341, 256))
        #expect(try Image.shorterSideSize(width: 500, height: 375, shorterSide: 256) == (341, 256))
        #expect(throws: ImageError.invalidArgument("shorter side 0 of a 10x10 image must be positive")) {
            try Image.shorterSideSize(width: 10, height: 10, shorterSide: 0)
        }
    }

    /// Python's round() is half-to-even: (85 - 56) / 2 = 14.5 -> 14, (87 - 56) / 2 = 15.5 -> 16.
    @Test func centerCropRoundsHalfToEven() throws {
        let width = 87, height = 60
        let pixels = (0..<width * height).map { UInt8($0 % width) }
        let image = try Image(width: width, height: height, format: .gray8, pixels: pixels)
        #expect(try image.centerCropped(width: 56, height: 60).pixels.first == 16)
        let narrower = try Image(
            width: 85, height: 60, format: .gray8, pixels: (0..<85 * 60).map { UInt8($0 % 85) })
        #expect(try narrower.centerCropped(width: 56, height: 60).pixels.first == 14)
    }

    /// A crop larger than the image pads with zeros, (crop - size) // 2 before.
    @Test func centerCropPadsSmallImages() throws {
        let image = try Image(width: 2, height: 1, format: .gray8, pixels: [7, 9])
        let cropped = try image.centerCropped(width: 5, height: 3)
        #expect(cropped.pixels == [0, 0, 0, 0, 0, 0, 7, 9, 0, 0, 0, 0, 0, 0, 0])
    }

    @Test func resizeToSameSizeIsIdentity() throws {
        let image = try decodeFixture("rgb.png")
        #expect(try image.resized(width: 160, height: 120) == image)
    }

    /// Only one axis changes: the other pass is skipped, as Pillow skips it.
    @Test func resizeOneAxisKeepsTheOther() throws {
        let rows = try Image(width: 4, height: 2, format: .gray8, pixels: [0, 100, 200, 255, 0, 100, 200, 255])
        let narrower = try rows.resized(width: 2, height: 2)
        #expect(narrower.pixels[0] == narrower.pixels[2] && narrower.pixels[1] == narrower.pixels[3])
        let flat = try Image(width: 3, height: 3, format: .gray8, pixels: [UInt8](repeating: 77, count: 9))
        #expect(try flat.resized(width: 7, height: 5).pixels.allSatisfy { $0 == 77 })
    }

    @Test func normalizeWritesIntoCallerMemory() throws {
        let image = try Image(width: 2, height: 1, format: .rgb8, pixels: [0, 128, 255, 10, 20, 30])
        var storage = [Float](repeating: .nan, count: 6)
        try storage.withUnsafeMutableBufferPointer { buffer in
            try image.writeNormalizedCHW(into: buffer, mean: [0.5, 0.5, 0.5], std: [0.5, 0.25, 1])
        }
        let expected: [Float] = [
            (0 / 255 - 0.5) / 0.5, (10 / 255 - 0.5) / 0.5,
            (128 / 255 - 0.5) / 0.25, (20 / 255 - 0.5) / 0.25,
            (255 / 255 - 0.5) / 1, (30 / 255 - 0.5) / 1,
        ]
        #expect(storage == expected)
        var tooSmall = [Float](repeating: 0, count: 5)
        #expect(throws: ImageError.invalidArgument("destination holds 5 floats, 3x1x2 needs 6")) {
            try tooSmall.withUnsafeMutableBufferPointer {
                try image.writeNormalizedCHW(into: $0, mean: imagenetMean, std: imagenetStd)
            }
        }
        #expect(throws: ImageError.invalidArgument("mean and std need 3 values each, got 1 and 1")) { try image.normalizedCHW(mean: [0], std: [1]) }
        #expect(throws: ImageError.invalidArgument("std must not contain 0")) { try image.normalizedCHW(mean: imagenetMean, std: [1, 0, 1]) }
    }
}
