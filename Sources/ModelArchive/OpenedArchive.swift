import Foundation

/// A model archive ready to load: its files on disk, its manifest and its validated model definition.
public struct OpenedArchive: Sendable {
    /// The folder holding `MAR-INF/` (or, for a SageMaker layout, the model file).
    public var root: URL
    /// The folder ``ArchiveReader/open(_:extractingInto:limits:)`` created; remove it when the
    /// model is unloaded. `nil` when the source was a folder, which is read in place.
    public var extractedFolder: URL?
    public var format: ArchiveFormat
    /// The manifest; synthesised for a folder or `.tar.gz` without `MAR-INF/MANIFEST.json`.
    public var manifest: Manifest
    public var isManifestSynthesized: Bool
    public var name: ModelName
    /// `model.modelVersion`, or `1.0` when the manifest has none.
    public var version: String
    public var handler: HandlerKind
    public var config: ModelConfig
    /// The config's `handler:` section, or the kind's defaults when it has none.
    public var handlerSpec: HandlerSpec
    /// The model file: TorchScript, or an AOTInductor package (see `aotInductor`).
    public var serializedFile: URL
    /// What the serialized file says of itself when it is an AOTInductor package (told by its
    /// content: a zip holding `data/aotinductor/`); nil for TorchScript.
    public var aotInductor: AOTInductorPackageInfo? = nil
    /// The model definition file, when the archive has one.
    public var configFile: URL?

    /// Warnings about the model definition (ignored TorchServe keys, unknown keys), with lines.
    public var warnings: [ConfigIssue] { config.warnings }

    /// The URL of a file the archive holds, such as the spec's `labels`.
    public func url(of file: String) -> URL {
        root.appendingPathComponent(file)
    }
}
