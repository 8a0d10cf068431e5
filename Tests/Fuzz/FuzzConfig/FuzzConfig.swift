import Foundation
import FuzzSupport
import ModelArchive
import ServerCore
import ServerHTTP

/// The configuration files the server reads: `model-config.yaml` (through Yams, with each
/// handler kind the manifest may name), a handler spec file, `config.properties` applied to the
/// server's settings, and the model snapshot JSON (which must also survive encoding and decoding
/// again unchanged). The first byte picks the parser; the rest is the file.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = FuzzDriver.bytes(data, size)
    guard let selector = input.first else { return 0 }
    let file = Array(input.dropFirst())
    let text = String(decoding: file, as: UTF8.self)
    switch selector % 4 {
    case 0:
        let kinds: [HandlerKind?] = [nil, .imageSegmenter, .textClassifier, .imageClassifier, .objectDetector, .questionAnswering]
        _ = try? ModelConfig.parse(yaml: text, handlerKind: kinds[Int(selector / 4) % kinds.count])
    case 1:
        _ = try? HandlerSpec.parse(yaml: text, file: "handler.yaml")
    case 2:
        var settings = ServerSettings(core: ServerConfiguration(modelStore: base, workDirectory: base))
        _ = try? settings.apply(PropertiesFile(parsing: text), relativeTo: base)
    default:
        snapshotRoundTrip(Data(file))
    }
    return 0
}

let base = URL(fileURLWithPath: "/nonexistent-fuzz-config", isDirectory: true)

func snapshotRoundTrip(_ data: Data) {
    guard let snapshot = try? JSONDecoder().decode(Snapshot.self, from: data) else { return }
    do {
        let again = try JSONDecoder().decode(Snapshot.self, from: JSONEncoder().encode(snapshot))
        guard again == snapshot else { FuzzDriver.violated("a snapshot changed when written and read again") }
    } catch {
        FuzzDriver.violated("a snapshot that was read cannot be written and read again: \(error)")
    }
}

#if !FUZZING
@main
enum FuzzConfig {
    static func main() { FuzzDriver.replay(fuzzConfig) }
}
#endif
