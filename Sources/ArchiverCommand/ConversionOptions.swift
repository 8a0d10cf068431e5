import ArgumentParser
import Foundation

/// How an eager-mode model (a Python model file and a `state_dict`) is turned into TorchScript at
/// pack time; shared by `archiver --model-file` and `archiver convert`.
struct ConversionOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "The model class in the model file, when it holds several torch.nn.Module classes (e.g. --model-class DenseNet).",
        valueName: "name"))
    var modelClass: String?

    @Option(help: ArgumentHelp(
        "The shape of a random input for tracing and for comparing TorchScript with the eager model "
            + "(e.g. --example-input 1,3,224,224). Default: the image handlers' input size; text models need it.",
        valueName: "shape"))
    var exampleInput: String?

    @Option(help: ArgumentHelp(
        "The Python that runs the model file at pack time; it must import torch "
            + "(e.g. --python .venv/bin/python). Default: python3 on PATH, then /usr/bin/python3.",
        valueName: "path"))
    var python: String?

    /// The most dimensions `--example-input` may have.
    static let maxDimensions = 8
    /// The most elements one example input may have (1 GiB of float32).
    static let maxElements = 1 << 28

    /// `--example-input` as sizes, checked: 1 to 8 positive sizes whose product stays in bounds.
    /// - Throws: ``ConversionError/invalidExampleInput(_:reason:)``.
    func exampleShape() throws -> [Int]? {
        guard let exampleInput else { return nil }
        let parts = exampleInput.split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        guard (1...Self.maxDimensions).contains(parts.count) else {
            throw ConversionError.invalidExampleInput(exampleInput, reason: "has \(parts.count) sizes, not 1 to \(Self.maxDimensions)")
        }
        var shape: [Int] = []
        var elements = 1
        for part in parts {
            guard let size = Int(part), size > 0 else {
                throw ConversionError.invalidExampleInput(exampleInput, reason: "has \"\(part)\", not a positive whole number")
            }
            let (product, overflow) = elements.multipliedReportingOverflow(by: size)
            guard !overflow, product <= Self.maxElements else {
                throw ConversionError.invalidExampleInput(exampleInput, reason: "has more than \(Self.maxElements) elements")
            }
            elements = product
            shape.append(size)
        }
        return shape
    }
}
