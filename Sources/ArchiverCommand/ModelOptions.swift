import ArgumentParser

/// What the archive is: model name, version, handler and model definition. Shared by `archiver`
/// and `archiver convert` (which takes each from the old archive when it is not given); one group
/// for both, because ArgumentParser gives a subcommand the options its parent command parsed.
struct ModelOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Model name; the archive is <name>.mar. Letters, digits, _ - . (e.g. --model-name unet). "
                                   + "convert: default the old archive's.",
                               valueName: "name"))
    var modelName: String?

    @Option(name: [.customShort("v"), .long],
            help: ArgumentHelp("Model version (e.g. --version 2.0). Default 1.0; convert: the old archive's.", valueName: "version"))
    var version: String?

    @Option(help: ArgumentHelp(
        "A built-in handler (image_segmenter, text_classifier, image_classifier) or a handler spec file "
            + "(e.g. --handler handlers/image_segmenter.yaml), written into model-config.yaml's handler: section. "
            + "convert: default the old archive's, when it is a built-in name.",
        valueName: "handler"))
    var handler: String?

    @Option(name: [.customShort("c"), .long],
            help: ArgumentHelp("The model definition (e.g. --config-file model-config.yaml): workers, batching, "
                                   + "device and the handler: section. convert: default the old archive's, if any.",
                               valueName: "file"))
    var configFile: String?
}
