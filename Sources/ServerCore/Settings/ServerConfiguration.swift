import Foundation
import ImageCodec
import ModelArchive

/// The server's settings, parsed and validated once at start.
public struct ServerConfiguration: Sendable {
    /// Where archives are looked up by name at registration.
    public var modelStore: URL
    /// Where archives are unpacked while registered.
    public var workDirectory: URL
    /// Archives to register at start (`load_models`): `all`, `FILE.mar` or `NAME=FILE.mar`, comma-separated.
    public var loadModels: [String] = []
    /// Requests a model version may hold queued before answering 429.
    public var jobQueueSize = 100
    /// Workers per model when neither registration nor model config says.
    public var defaultWorkersPerModel = 1
    /// Seconds, when the model config does not say.
    public var defaultResponseTimeout = 120
    public var defaultStartupTimeout = 120
    /// Largest request body in bytes.
    public var maxRequestSize = 6_553_500
    /// Largest response body in bytes.
    public var maxResponseSize = 6_553_500
    /// GPUs to use at most (`number_of_gpu`); nil: all visible.
    public var numberOfGPU: Int?
    /// Regular expressions a registration URL, or the URL of an image to fetch, must match
    /// (whole, any case); empty: model store only, and no image is fetched.
    public var allowedURLs: [String] = []
    /// Loopback, private, link-local and other special-use addresses an image URL's host may
    /// resolve to (`allowed_fetch_addresses`); any other address in those ranges is refused.
    public var allowedFetchAddresses: [AddressRange] = []
    /// libtorch intra-op threads per worker when the model config does not say.
    public var intraOpThreads = 1
    /// Largest image, in pixels, accepted before decoding its pixels.
    public var pixelLimit = ImageDecoder.defaultPixelLimit
    public var extractionLimits = ExtractionLimits.default
    /// Whether the management API may register and unregister models (`enable_model_api`).
    public var enableModelAPI = false
    /// Seconds between SIGTERM and closing the listeners, answering while readiness says 503.
    public var drainDelay = 5
    /// Seconds in-flight and queued requests may take to finish once the listeners close.
    public var gracefulShutdownTimeout = 20
    /// Whether `serve` exports traces over OTLP (`enable_tracing`); the core records spans whenever a tracer is bootstrapped.
    public var enableTracing = false
    /// Per-model settings from the `models` key: name → version → settings, applied to that
    /// version at every registration, between its model config and the registration's own.
    public var modelSettings: [String: [String: ConfiguredModel]] = [:]

    public init(modelStore: URL, workDirectory: URL) {
        self.modelStore = modelStore
        self.workDirectory = workDirectory
    }

    /// The keys of `config.properties` the core reads (``keys``, in ConfigurationKey.swift).
    public static var knownKeys: Set<String> { Set(keys.map(\.name)) }

    /// Applies the values of `config.properties` keys that are the core's, in the table's order.
    public mutating func apply(_ values: [String: String], relativeTo base: URL) throws(ConfigurationError) {
        try ConfigurationKey.apply(values, keys: Self.keys, to: &self, relativeTo: base)
    }

    static func bool(_ text: String?, key: String) throws(ConfigurationError) -> Bool? {
        guard let text else { return nil }
        switch text.lowercased() {
        case "true": return true
        case "false": return false
        default: throw ConfigurationError(key: key, message: "'\(text)' is not true or false")
        }
    }
}

/// One model version's entry in the `models` key of `config.properties`, in TorchServe's form:
/// `{"unet": {"1.0": {"marName": "unet.mar", "minWorkers": 2, "batchSize": 4, "defaultVersion": true}}}`.
public struct ConfiguredModel: Sendable, Equatable, Decodable {
    /// The archive, as TorchServe names it; informational here (archives come from `load_models`).
    public var marName: String?
    /// Whether this version becomes the model's default once registered.
    public var defaultVersion: Bool?
    /// `minWorkers`, `maxWorkers`, `batchSize`, `maxBatchDelay`, `responseTimeout`, `startupTimeout`.
    public var settings: ModelSettings.Override

    private enum CodingKeys: String, CodingKey {
        case marName, defaultVersion
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        marName = try container.decodeIfPresent(String.self, forKey: .marName)
        defaultVersion = try container.decodeIfPresent(Bool.self, forKey: .defaultVersion)
        settings = try ModelSettings.Override(from: decoder)
    }
}

/// An invalid configuration value; fatal at start.
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var key: String
    public var message: String

    public init(key: String, message: String) {
        self.key = key
        self.message = message
    }

    public var description: String { "invalid \(key): \(message)" }
}
