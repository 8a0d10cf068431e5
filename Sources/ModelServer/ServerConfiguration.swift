import Foundation
import ImageCodec
import ModelArchive

/// The server's settings, parsed and validated once at start.
public struct ServerConfiguration: Sendable {
    /// Where archives are looked up by name at registration.
    public var modelStore: URL
    /// Where archives are unpacked while registered.
    public var workDirectory: URL
    /// Requests a model version may hold queued before answering 429.
    public var jobQueueSize = 100
    /// Workers per model when neither registration nor model config says.
    public var defaultWorkersPerModel = 1
    /// Seconds, when the model config does not say.
    public var defaultResponseTimeout = 120
    public var defaultStartupTimeout = 120
    /// Largest request body in bytes.
    public var maxRequestSize = 6_553_500
    /// GPUs to use at most (`number_of_gpu`); nil: all visible.
    public var numberOfGPU: Int?
    /// libtorch intra-op threads per worker when the model config does not say.
    public var intraOpThreads = 1
    /// Largest image, in pixels, accepted before decoding its pixels.
    public var pixelLimit = ImageDecoder.defaultPixelLimit
    public var extractionLimits = ExtractionLimits.default
    /// Whether the management API may register and unregister models (`enable_model_api`).
    public var enableModelAPI = false

    public init(modelStore: URL, workDirectory: URL) {
        self.modelStore = modelStore
        self.workDirectory = workDirectory
    }
}
