/// A height and width in pixels, written `[height, width]` in YAML.
public struct ImageSize: Hashable, Sendable, Codable, CustomStringConvertible {
    public var height: Int
    public var width: Int

    public init(height: Int, width: Int) {
        self.height = height
        self.width = width
    }

    public var description: String { "[\(height), \(width)]" }
}

/// How an image is resized to the size the model expects.
public enum ResizeMode: String, CaseIterable, Sendable, Codable {
    /// Antialiased bilinear, as PIL and torchvision resize (the default).
    case bilinear
    /// Nearest neighbour.
    case nearest
}

/// Normalisation constants of torchvision's ImageNet models.
public enum ImageNetNormalization {
    public static let mean: [Double] = [0.485, 0.456, 0.406]
    public static let std: [Double] = [0.229, 0.224, 0.225]
}

extension YAMLFields {
    static let maxImageSide = 16384

    func imageSize(_ key: String) -> ImageSize? {
        let expected = "[height, width], two integers from 1 to \(Self.maxImageSide)"
        guard let values = ints(key, count: 2...2, each: 1...Self.maxImageSide, expected: expected) else { return nil }
        return ImageSize(height: values[0], width: values[1])
    }

    /// `mean` and `std`: one value (grey) or three (RGB) each, the same count, every `std` above zero.
    func normalization() -> (mean: [Double]?, std: [Double]?) {
        let mean = doubles("mean", count: 1...3, where: { _ in true },
                           expected: "[r, g, b] (or one value), numbers such as [0.485, 0.456, 0.406]")
        let std = doubles("std", count: 1...3, where: { $0 > 0 },
                          expected: "[r, g, b] (or one value), numbers above 0 such as [0.229, 0.224, 0.225]")
        for (key, values) in [("mean", mean), ("std", std)] where values?.count == 2 {
            if let node = node(key) {
                fail(key, node, "has 2 items", expected: "one value or three ([r, g, b])")
            }
            return (nil, nil)
        }
        if let mean, let std, mean.count != std.count, let node = node("std") {
            fail("std", node, "has \(std.count) items but mean has \(mean.count)", expected: "as many items as mean")
            return (nil, nil)
        }
        return (mean, std)
    }
}
