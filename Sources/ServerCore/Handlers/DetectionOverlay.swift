import ImageCodec

/// The input image with each detection's box and label drawn on it, for a person to look at:
/// a two-pixel frame in the class's colour (the segmenter's palette) and the label with its score
/// on a filled tab above the box (inside it when the box touches the top).
struct DetectionOverlay {
    var detections: [Detection]
    var labels: ClassLabels

    func drawn(on image: Image) throws -> Image {
        let (width, height) = (image.width, image.height)
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        let channels = image.channels
        for index in 0..<(width * height) {
            for c in 0..<3 { pixels[index * 3 + c] = image.pixels[index * channels + min(c, channels - 1)] }
        }
        // Lowest score first, so the most confident boxes end up on top.
        for detection in detections.reversed() {
            let colour = Self.colour(ofClass: detection.label)
            let x1 = Self.clamp(detection.box[0], to: width), y1 = Self.clamp(detection.box[1], to: height)
            let x2 = Self.clamp(detection.box[2], to: width), y2 = Self.clamp(detection.box[3], to: height)
            guard x1 <= x2, y1 <= y2 else { continue }
            for thickness in 0..<2 {
                fill(&pixels, width: width, height: height, x: x1, y: y1 + thickness, w: x2 - x1 + 1, h: 1, colour: colour)
                fill(&pixels, width: width, height: height, x: x1, y: y2 - thickness, w: x2 - x1 + 1, h: 1, colour: colour)
                fill(&pixels, width: width, height: height, x: x1 + thickness, y: y1, w: 1, h: y2 - y1 + 1, colour: colour)
                fill(&pixels, width: width, height: height, x: x2 - thickness, y: y1, w: 1, h: y2 - y1 + 1, colour: colour)
            }
            let text = "\(labels.name(ofClass: detection.label)) \(Int((detection.score * 100).rounded()))%"
            let (tabWidth, tabHeight) = (LabelFont.width(of: text) + 2, LabelFont.cellHeight)
            let tabTop = y1 >= tabHeight ? y1 - tabHeight : y1
            // Moved left as far as needed to stay inside the image (as far as the image is wide).
            let tabLeft = max(0, min(x1, width - tabWidth))
            fill(&pixels, width: width, height: height, x: tabLeft, y: tabTop, w: tabWidth, h: tabHeight, colour: colour)
            LabelFont.draw(text, x: tabLeft + 1, y: tabTop, colour: Self.textColour(on: colour), into: &pixels, width: width, height: height)
        }
        return try Image(width: width, height: height, format: .rgb8, pixels: pixels)
    }

    /// The segmenter's palette colour of a class; class 0 (black there, the background) takes class 1's instead.
    static func colour(ofClass label: Int) -> [UInt8] {
        let colour = SegmentationMask.colour(ofClass: label & 0xFF)
        return colour == [0, 0, 0] ? SegmentationMask.colour(ofClass: 1) : colour
    }

    /// Black on light colours, white on dark ones.
    static func textColour(on colour: [UInt8]) -> [UInt8] {
        let luma = 299 * Int(colour[0]) + 587 * Int(colour[1]) + 114 * Int(colour[2])
        return luma > 128_000 ? [0, 0, 0] : [255, 255, 255]
    }

    /// A coordinate as a pixel index inside `0..<size`.
    static func clamp(_ value: Float, to size: Int) -> Int {
        guard value.isFinite else { return 0 }
        return min(max(Int(value.rounded(.down)), 0), size - 1)
    }

    private func fill(_ pixels: inout [UInt8], width: Int, height: Int, x: Int, y: Int, w: Int, h: Int, colour: [UInt8]) {
        let top = max(y, 0), left = max(x, 0)
        for row in top..<max(top, min(y + h, height)) {
            for column in left..<max(left, min(x + w, width)) {
                let pixel = (row * width + column) * 3
                pixels[pixel] = colour[0]
                pixels[pixel + 1] = colour[1]
                pixels[pixel + 2] = colour[2]
            }
        }
    }
}
