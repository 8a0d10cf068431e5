import Foundation

/// Locates the committed test fixtures in `Tests/Fixtures` (made by `scripts/make_fixtures.py`).
public enum Fixtures {
    /// The `Tests/Fixtures` folder of this checkout.
    public static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .appendingPathComponent("Fixtures", isDirectory: true)

    /// The URL of a fixture, given its path relative to `Tests/Fixtures`.
    public static func url(_ relativePath: String) -> URL {
        root.appendingPathComponent(relativePath)
    }

    /// The bytes of a fixture; fails the calling test by throwing if it is missing.
    public static func bytes(_ relativePath: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: url(relativePath)))
    }
}
