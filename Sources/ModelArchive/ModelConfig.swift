import Foundation
import Yams

/// The model definition: `model-config.yaml`, parsed and validated once.
///
/// TorchServe's keys keep their names and meaning; a key that is absent stays `nil` so the
/// server can apply its own default (or a registration parameter).
public struct ModelConfig: Equatable, Sendable, Codable {
    /// Where a worker runs.
    public enum DeviceType: String, CaseIterable, Sendable, Codable {
        case cpu
        case gpu
    }

    /// The floating-point type the model's weights and inputs are converted to at load.
    public enum Precision: String, CaseIterable, Sendable, Codable {
        /// As the TorchScript file has them (normally float32).
        case float32
        /// bfloat16: float32's range with 8 bits of mantissa; fast on CPUs with AVX512-BF16/AMX
        /// and on recent GPUs.
        case bfloat16
        /// IEEE half precision, for GPUs (most CPU kernels lack it).
        case float16
    }

    /// Workers, batching and timeouts (`minWorkers`, `batchSize`, `responseTimeout`…): the
    /// archive's layer of the version's settings.
    public var settings: ServingSettings
    public var deviceType: DeviceType?
    public var deviceIds: [Int]?
    /// Freeze and `optimize_for_inference` the module at load; ``optimizesAtLoad`` applies the default.
    public var optimize: Bool?
    /// Converts weights and inputs to a lower precision at load (checked against the model as loaded).
    public var precision: Precision?
    /// Workers of one version on one device share one module; ``sharesModule`` applies the default.
    public var shareModule: Bool?
    /// libtorch intra-op threads per worker.
    public var intraOpThreads: Int?
    /// The `handler:` section, when present.
    public var handler: HandlerSpec?
    /// Keys that were read but have no effect here (TorchServe-only or unknown), with their lines.
    public var warnings: [ConfigIssue]

    public init(
        minWorkers: Int? = nil, maxWorkers: Int? = nil, batchSize: Int? = nil, maxBatchDelay: Int? = nil,
        responseTimeout: Int? = nil, startupTimeout: Int? = nil, deviceType: DeviceType? = nil,
        deviceIds: [Int]? = nil, optimize: Bool? = nil, shareModule: Bool? = nil, intraOpThreads: Int? = nil,
        precision: Precision? = nil, handler: HandlerSpec? = nil, warnings: [ConfigIssue] = []
    ) {
        self.precision = precision
        self.settings = ServingSettings(minWorkers: minWorkers, maxWorkers: maxWorkers, batchSize: batchSize, maxBatchDelay: maxBatchDelay,
                                        responseTimeout: responseTimeout, startupTimeout: startupTimeout)
        self.deviceType = deviceType
        self.deviceIds = deviceIds
        self.optimize = optimize
        self.shareModule = shareModule
        self.intraOpThreads = intraOpThreads
        self.handler = handler
        self.warnings = warnings
    }

    /// `optimize`, default `true`.
    public var optimizesAtLoad: Bool { optimize ?? true }
    /// `shareModule`, default `true`.
    public var sharesModule: Bool { shareModule ?? true }

    /// The name TorchServe and this server look for at an archive's root.
    public static let defaultFileName = "model-config.yaml"

    /// Top-level keys this server reads.
    static let knownKeys: Set<String> = [
        "minWorkers", "maxWorkers", "batchSize", "maxBatchDelay", "responseTimeout", "startupTimeout",
        "deviceType", "deviceIds", "optimize", "shareModule", "intraOpThreads", "precision", "handler",
    ]

    /// TorchServe's other keys: accepted, with a warning that they have no effect here.
    static let torchServeOnlyKeys: Set<String> = [
        "parallelType", "parallelLevel", "parallelLinks", "torchrun", "pippy", "deepspeed", "pt2",
        "jobQueueSize", "useJobTicket", "maxRetryTimeoutInSec", "clientTimeoutInMills", "continuousBatching",
        "useVenv", "asyncCommunication", "sequenceMaxIdleMSec", "sequenceTimeoutMSec", "maxNumSequence",
        "maxSequenceJobQueueSize", "stateful", "micro_batching", "tensor_parallel", "compile",
    ]

    /// Parses `model-config.yaml`.
    ///
    /// - Parameters:
    ///   - yaml: The file's text; an empty document is an empty config.
    ///   - file: The file name used in messages.
    ///   - handlerKind: The manifest's handler, used when the `handler:` section has no `kind:`;
    ///     a `kind:` that differs from it is an error.
    /// - Throws: ``ArchiveError/invalidConfig(file:issues:)`` listing every error with key and line.
    public static func parse(yaml: String, file: String = defaultFileName, handlerKind: HandlerKind? = nil) throws -> ModelConfig {
        let diagnostics = ConfigDiagnostics()
        var config = ModelConfig()
        if let root = YAMLDocument.root(of: yaml, diagnostics: diagnostics) {
            if case .mapping(let mapping) = root {
                config.read(YAMLFields(mapping, prefix: "", diagnostics: diagnostics), handlerKind: handlerKind)
            } else if root.tagName != .null {
                diagnostics.error("(document)", line: root.mark?.line, "is \(YAMLFields.render(root))",
                                  expected: "a mapping of keys such as `batchSize: 4`")
            }
        }
        guard diagnostics.errors.isEmpty else {
            throw ArchiveError.invalidConfig(file: file, issues: diagnostics.sortedErrors)
        }
        config.warnings = diagnostics.sortedWarnings
        return config
    }

    /// Reads and parses a `model-config.yaml` file.
    public static func load(contentsOf url: URL, handlerKind: HandlerKind? = nil) throws -> ModelConfig {
        let text = try FileIO.readText(url, role: "model config", maxBytes: YAMLDocument.maxBytes)
        return try parse(yaml: text, file: url.lastPathComponent, handlerKind: handlerKind)
    }

    private mutating func read(_ fields: YAMLFields, handlerKind: HandlerKind?) {
        let ranges = ServingSettings.Range.self
        settings.minWorkers = fields.int("minWorkers", in: ranges.workers)
        settings.maxWorkers = fields.int("maxWorkers", in: ranges.workers)
        if let minWorkers = settings.minWorkers, let maxWorkers = settings.maxWorkers, maxWorkers < minWorkers, let node = fields.node("maxWorkers") {
            fields.fail("maxWorkers", node, "is \(maxWorkers), below minWorkers (\(minWorkers))",
                        expected: "an integer from minWorkers to 256")
        }
        settings.batchSize = fields.int("batchSize", in: ranges.batchSize)
        settings.maxBatchDelay = fields.int("maxBatchDelay", in: ranges.maxBatchDelay)
        settings.responseTimeout = fields.int("responseTimeout", in: ranges.responseTimeout)
        settings.startupTimeout = fields.int("startupTimeout", in: ranges.startupTimeout)
        deviceType = fields.choice("deviceType", as: DeviceType.self)
        deviceIds = fields.ints("deviceIds", count: 0...1024, each: 0...1023,
                                expected: "a list of GPU indices such as [0, 1]")
        if let ids = deviceIds, Set(ids).count != ids.count, let node = fields.node("deviceIds") {
            fields.fail("deviceIds", node, "lists a device twice", expected: "each GPU index once")
        }
        optimize = fields.bool("optimize")
        shareModule = fields.bool("shareModule")
        precision = fields.choice("precision", as: Precision.self)
        intraOpThreads = fields.int("intraOpThreads", in: 1...1024)
        if let node = fields.node("handler") {
            if case .mapping(let mapping) = node {
                handler = HandlerSpec.parse(YAMLFields(mapping, prefix: "handler.", diagnostics: fields.diagnostics),
                                            defaultKind: handlerKind)
            } else {
                fields.fail("handler", node, "is \(YAMLFields.render(node))",
                            expected: "a mapping such as `kind: image_segmenter` with the handler's keys below it")
            }
        }
        for key in fields.keys where Self.torchServeOnlyKeys.contains(key) {
            fields.diagnostics.warning(key, line: fields.line(of: key), "is a TorchServe setting this server ignores")
        }
        fields.reportUnknownKeys(
            known: Self.knownKeys.union(Self.torchServeOnlyKeys), asErrors: false,
            expected: "one of " + Self.knownKeys.sorted().joined(separator: ", ")
        )
    }
}
