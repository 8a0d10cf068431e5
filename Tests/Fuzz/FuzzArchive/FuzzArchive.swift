import Foundation
import FuzzSupport
import ModelArchive

/// Model archives as the server opens them: zip (`.mar`), tar, gzip, then the unpacked folder's
/// layout, `MAR-INF/MANIFEST.json` and `model-config.yaml`, through `ArchiveReader.open` into a
/// temporary store. After every input the sandbox must hold nothing but the input file and
/// what was unpacked inside the store: no entry may escape it. An input starting with `{` is a
/// manifest given to `Manifest.decode` directly.
#if !FUZZING
@main
enum FuzzArchive {
    static func main() { FuzzDriver.replay(fuzzArchive) }
}
#endif

/// A few levels deep, so that an entry climbing out of the store with `../` lands inside the
/// sandbox where the check sees it.
let sandbox = FileManager.default.temporaryDirectory
    .appendingPathComponent("fuzz-archive-\(ProcessInfo.processInfo.processIdentifier)")
let nest = sandbox.appendingPathComponent("a/b/c")
let store = nest.appendingPathComponent("store")
let input = nest.appendingPathComponent("input.mar")

/// The server's bounds, with total size cut so that one input cannot spend seconds writing.
let limits = ExtractionLimits(maxTotalBytes: 16 << 20)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzArchive(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Data(FuzzDriver.bytes(data, size))
    if bytes.first == UInt8(ascii: "{") {
        _ = try? Manifest.decode(bytes, path: "MANIFEST.json")
        return 0
    }
    let files = FileManager.default
    do {
        try files.createDirectory(at: store, withIntermediateDirectories: true)
        try bytes.write(to: input)
    } catch {
        FuzzDriver.violated("cannot prepare the sandbox \(sandbox.path): \(error)")
    }
    do {
        let opened = try ArchiveReader.open(input, extractingInto: store, limits: limits)
        guard let extracted = opened.extractedFolder, isInside(extracted, store),
            isInside(opened.root, extracted), isInside(opened.serializedFile, opened.root)
        else {
            FuzzDriver.violated("opened archive points outside the store: root \(opened.root.path)")
        }
        FuzzDriver.note("opened \(opened.format) archive of model \(opened.name)")
    } catch {
        FuzzDriver.note("refused: \(error)")
    }
    checkNothingEscaped()
    try? files.removeItem(at: store)
    try? files.removeItem(at: input)
    return 0
}

/// Everything under the sandbox is the input, the store, or the folders leading to them; and
/// nothing in the store is a symbolic link.
func checkNothingEscaped() {
    let allowed: Set<String> = ["a", "a/b", "a/b/c", "a/b/c/store", "a/b/c/input.mar"]
    guard let walker = FileManager.default.enumerator(atPath: sandbox.path) else { return }
    while let path = walker.nextObject() as? String {
        if path.hasPrefix("a/b/c/store/") {
            if walker.fileAttributes?[.type] as? FileAttributeType == .typeSymbolicLink {
                FuzzDriver.violated("the store holds a symbolic link: \(path)")
            }
            continue
        }
        guard allowed.contains(path) else { FuzzDriver.violated("an entry escaped the store: \(path)") }
    }
}

func isInside(_ url: URL, _ folder: URL) -> Bool {
    let path = url.standardizedFileURL.path
    let base = folder.standardizedFileURL.path
    return path == base || path.hasPrefix(base + "/")
}
