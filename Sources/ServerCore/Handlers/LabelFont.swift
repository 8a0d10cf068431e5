/// A small antialiased monospace font (printable ASCII) for the labels drawn on overlays.
enum LabelFont {
    /// Coverage 0…15 of each pixel of each glyph, decoded once from `coverageHex`.
    static let coverage: [UInt8] = coverageHex.utf8.compactMap { digit in
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return digit - UInt8(ascii: "a") + 10
        default: return nil
        }
    }

    /// Width in pixels of `text` drawn in this font.
    static func width(of text: String) -> Int {
        text.unicodeScalars.count * cellWidth
    }

    /// Draws `text` with its top left corner at (`x`, `y`) in `colour` onto RGB pixels of an image
    /// `width` × `height`, clipped to the image; characters outside printable ASCII show as `?`.
    static func draw(_ text: String, x: Int, y: Int, colour: [UInt8], into pixels: inout [UInt8], width: Int, height: Int) {
        let glyphSize = cellWidth * cellHeight
        for (position, scalar) in text.unicodeScalars.enumerated() {
            let code = (32...126).contains(Int(scalar.value)) ? Int(scalar.value) : Int(UInt8(ascii: "?"))
            let glyph = (code - 32) * glyphSize
            let left = x + position * cellWidth
            for row in 0..<cellHeight where (0..<height).contains(y + row) {
                for column in 0..<cellWidth where (0..<width).contains(left + column) {
                    let ink = glyph + row * cellWidth + column < coverage.count ? Int(coverage[glyph + row * cellWidth + column]) : 0
                    guard ink > 0 else { continue }
                    let pixel = ((y + row) * width + left + column) * 3
                    for channel in 0..<3 {
                        let under = Int(pixels[pixel + channel])
                        pixels[pixel + channel] = UInt8((under * (15 - ink) + Int(colour[channel]) * ink + 7) / 15)
                    }
                }
            }
        }
    }
}
