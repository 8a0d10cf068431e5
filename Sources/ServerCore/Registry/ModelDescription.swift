import Foundation
import Torch

/// What describe shows of one model version.
public struct ModelDescription: Sendable {
    public var modelName: String
    public var modelVersion: String
    public var modelURL: String
    public var runtime: String
    public var handler: String
    public var isDefault: Bool
    public var settings: ModelSettings
    public var workers: [WorkerInfo]
    public var weightBytes: Int
    public var queueCapacity: Int
    public var pendingRequests: Int
    public var loadedAtStartup: Bool
    /// Load, warm-up and first-request times; nil until a worker has loaded.
    public var loadTimings: LoadTimings?
    /// Class index → name, from the handler's labels file; empty without one.
    public var labels: [Int: String] = [:]
    /// What limits how the version is served, e.g. "batching off: the AOTInductor package was compiled for batch 1".
    public var notes: [String] = []
}
