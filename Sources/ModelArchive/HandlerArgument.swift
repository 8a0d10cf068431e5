import Foundation

/// What `--handler` names: a built-in handler, or a handler spec file (`handlers/image_segmenter.yaml`).
public struct HandlerArgument: Sendable, Equatable {
    public var kind: HandlerKind
    /// The spec file's parsed contents and text, when `--handler` named a file.
    public var spec: HandlerSpec?
    public var specText: String?
    public var specFile: URL?

    /// Resolves `--handler`: an existing file or a `.yaml`/`.yml` name is a spec file; anything else
    /// must be a built-in handler name.
    /// - Throws: ``ArchiveError/pythonHandler(_:)``, ``ArchiveError/unknownHandler(_:)``,
    ///   ``ArchiveError/notFound(path:role:)``, ``ArchiveError/invalidConfig(file:issues:)``.
    public init(_ argument: String) throws {
        let url = URL(fileURLWithPath: argument)
        let isSpecName = argument.hasSuffix(".yaml") || argument.hasSuffix(".yml")
        if HandlerKind(rawValue: argument) == nil, isSpecName || FileIO.resolvedKind(of: url) == .file {
            guard !HandlerKind.isPythonHandler(argument) else { throw ArchiveError.pythonHandler(argument) }
            let text = try FileIO.readText(url, role: "handler spec file", maxBytes: YAMLDocument.maxBytes)
            let spec = try HandlerSpec.parse(yaml: text, file: argument)
            self.kind = spec.kind
            self.spec = spec
            self.specText = text
            self.specFile = url
        } else {
            self.kind = try HandlerKind(handlerName: argument)
        }
    }

    /// The model definition to store: `configText` (the `--config-file`, or `nil` for none) with
    /// the spec file written in as its `handler:` section.
    ///
    /// A config that already has a `handler:` section is kept as it is when that section equals
    /// the spec, and refused when it differs. Text is spliced, not re-serialised, so the
    /// comments of both files survive.
    /// - Returns: The text and its parsed, validated config; `nil` when there is neither a config nor a spec.
    public func modelDefinition(configText: String?, configName: String) throws -> (text: String, config: ModelConfig)? {
        guard let spec, let specText else {
            guard let configText else { return nil }
            return (configText, try ModelConfig.parse(yaml: configText, file: configName, handlerKind: kind))
        }
        let specName = specFile?.lastPathComponent ?? "handler spec"
        var text = configText ?? "# Model definition written by archiver; the handler section comes from \(specName).\n"
        if configText != nil {
            let existing = try ModelConfig.parse(yaml: text, file: configName, handlerKind: kind)
            if let section = existing.handler {
                guard section == spec else {
                    throw ArchiveError.handlerConflict(
                        detail: "\(configName) already has a handler: section that differs from \(specName). "
                            + "Remove one of them, or make them the same")
                }
                return (text, existing)
            }
        }
        if !text.hasSuffix("\n") { text += "\n" }
        text += "\nhandler:\n" + Self.indented(specText)
        return (text, try ModelConfig.parse(yaml: text, file: configName, handlerKind: kind))
    }

    /// The spec's lines indented by two spaces, without a leading `---` document marker.
    private static func indented(_ text: String) -> String {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        while let first = lines.first, first.hasPrefix("---") || first.hasPrefix("%") { lines.removeFirst() }
        while let last = lines.last, last.trimmingCharacters(in: .whitespaces).isEmpty { lines.removeLast() }
        return lines.map { $0.isEmpty ? "" : "  " + $0 }.joined(separator: "\n") + "\n"
    }
}
