import Foundation

/// What an AOTInductor package (a `.pt2` from `torch._inductor.aoti_compile_and_package`) says
/// about itself, read from its zip without libtorch: the model's name inside the package, the
/// device it was compiled for, and the batch sizes its first input takes.
public struct AOTInductorPackageInfo: Sendable, Equatable {
    /// The batch sizes (dimension 0 of the first input) the compiled model takes.
    public enum Batch: Sendable, Equatable, CustomStringConvertible {
        /// Any size from 1 up to `max` (nil: no upper bound in the package).
        case dynamic(max: Int?)
        /// Exactly this size.
        case fixed(Int)
        /// The package holds no generated input checks to read it from.
        case unknown

        public var description: String {
            switch self {
            case .dynamic(let max): return max.map { "dynamic (up to \($0))" } ?? "dynamic"
            case .fixed(let size): return "\(size)"
            case .unknown: return "unknown"
            }
        }
    }

    /// The model folder under `data/aotinductor/` ("model" unless the package was made with another name).
    public var modelName: String
    /// `AOTI_DEVICE_KEY` of the package's metadata: "cpu" or "cuda" ("unknown" without metadata).
    public var device: String
    public var batch: Batch

    public init(modelName: String, device: String, batch: Batch) {
        self.modelName = modelName
        self.device = device
        self.batch = batch
    }

    /// The largest generated source read to find the input checks.
    static let sourceLimit = 64 << 20

    /// Reads the package at `url`; nil when the file is not a zip holding `data/aotinductor/`
    /// (a TorchScript file, for instance), so callers tell the two forms apart by content.
    /// - Throws: ``ArchiveError`` for a damaged zip or unsafe entries.
    public static func read(_ url: URL, limits: ExtractionLimits = .default) throws -> AOTInductorPackageInfo? {
        let file = try InputFile(url, role: "serialized file")
        guard file.size >= 4, try file.read(count: 4, at: 0) == [0x50, 0x4B, 0x03, 0x04] else { return nil }
        let scratch = FileManager.default.temporaryDirectory
            .appendingPathComponent("aoti-\(UUID().uuidString.prefix(8).lowercased())")
        try FileIO.makeDirectory(scratch)
        defer { FileIO.remove(scratch) }
        var models: [String: [String]] = [:]
        let sink = ExtractionSink(archivePath: url.path, root: scratch, limits: limits)
        try ZipExtractor.extract(file, into: sink) { name in
            guard let model = modelFolder(of: name) else { return false }
            let file = name.split(separator: "/").last.map(String.init) ?? ""
            let wanted = file.hasSuffix("metadata.json") || file.hasSuffix(".wrapper.cpp") || file.hasSuffix(".cpp")
            if models[model] == nil { models[model] = [] }
            if wanted { models[model]?.append(name) }
            return wanted
        }
        guard let modelName = models.keys.contains("model") ? "model" : models.keys.sorted().first,
              let files = models[modelName] else { return nil }
        var device = "unknown"
        if let metadata = files.first(where: { $0.hasSuffix("metadata.json") && !$0.hasSuffix("kernel_metadata.json") })
            ?? files.first(where: { $0.hasSuffix("metadata.json") }) {
            let data = try FileIO.readData(scratch.appendingPathComponent(metadata), role: "package metadata", maxBytes: 1 << 20)
            if let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
               let key = object["AOTI_DEVICE_KEY"] as? String, !key.isEmpty {
                device = key
            }
        }
        var batch = Batch.unknown
        let sources = files.filter { $0.hasSuffix(".wrapper.cpp") } + files.filter { $0.hasSuffix(".cpp") && !$0.hasSuffix(".wrapper.cpp") }
        for source in sources {
            let path = scratch.appendingPathComponent(source)
            guard let text = try? FileIO.readText(path, role: "generated source", maxBytes: sourceLimit) else { continue }
            batch = Self.batch(inGeneratedSource: text)
            if batch != .unknown { break }
        }
        return AOTInductorPackageInfo(modelName: modelName, device: device, batch: batch)
    }

    /// The model folder an entry lies in: `<anything>/data/aotinductor/<model>/...`.
    static func modelFolder(of entry: String) -> String? {
        let parts = entry.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard let index = parts.firstIndex(of: "aotinductor"), index > 0, parts[index - 1] == "data",
              index + 2 < parts.count, !parts[index + 1].isEmpty else { return nil }
        return parts[index + 1]
    }

    /// The batch of the first input, from the input checks Inductor generates (run when
    /// `AOTI_RUNTIME_CHECK_INPUTS=1`): a fixed size is checked for equality, a dynamic one for a range.
    static func batch(inGeneratedSource text: String) -> Batch {
        if let size = number(after: #"input_handles[0]: unmatched dim value at 0, ""#, prefix: #"<< "expected: "#, in: text) {
            return .fixed(size)
        }
        if let max = number(after: #"input_handles[0]: dim value is too large at 0, ""#, prefix: #"<< "expected to be <= "#, in: text) {
            return .dynamic(max: max)
        }
        if text.contains("input_handles[0]: unmatched dim value at 1") || text.contains("input_handles[0]: dim value is too small at 0") {
            return .dynamic(max: nil)
        }
        return .unknown
    }

    /// The integer after `prefix` on the source line following `marker`.
    private static func number(after marker: String, prefix: String, in text: String) -> Int? {
        guard let found = text.range(of: marker) else { return nil }
        let rest = text[found.upperBound...].drop { $0 == " " || $0 == "\n" }
        guard rest.hasPrefix(prefix) else { return nil }
        return Int(rest.dropFirst(prefix.count).prefix { $0.isNumber })
    }
}
