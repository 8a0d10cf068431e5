import Testing
@testable import ServerCore

@Suite struct SegmentationMaskTests {
    @Test func pascalPalette() {
        #expect(SegmentationMask.colour(ofClass: 0) == [0, 0, 0])
        #expect(SegmentationMask.colour(ofClass: 1) == [128, 0, 0])
        #expect(SegmentationMask.colour(ofClass: 2) == [0, 128, 0])
        #expect(SegmentationMask.colour(ofClass: 3) == [128, 128, 0])
        #expect(SegmentationMask.colour(ofClass: 15) == [192, 128, 128])
    }

    @Test func nearestResizeTakesFloorOfScaledCoordinates() {
        let mask = SegmentationMask(width: 2, height: 2, classes: [1, 2, 3, 4])
        let resized = mask.resizedNearest(width: 3, height: 3)
        // x: 0,1,2 → ⌊x·2/3⌋ = 0,0,1; same for y.
        #expect(resized.classes == [1, 1, 2, 1, 1, 2, 3, 3, 4])
        #expect(mask.resizedNearest(width: 1, height: 1).classes == [1])
    }
}
