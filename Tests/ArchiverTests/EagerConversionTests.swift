import Foundation
import ModelArchive
import ServerCore
import ServerTestSupport
import TestFixtures
import Testing

/// Eager-mode TorchServe models (model.py + state_dict) converted to TorchScript at pack time by
/// `archiver convert` and `archiver --model-file`, then served by a real `ModelServer`.
///
/// The refusals that come before Python runs need no PyTorch. The conversions need a Python that
/// imports torch and torchvision, found as `archiver` finds it (`python3` on PATH, then
/// `/usr/bin/python3`); without one they are skipped, not passed.
@Suite struct EagerConversionTests {
    static let executable = BuiltExecutable("archiver")
    /// The Python `archiver` would pick, when it also imports torchvision (the DenseNet fixture needs it).
    static let python: URL? = findPython()
    static let canConvert = executable.isBuilt && python != nil
    static let repository = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent()
    static let labels = ["tench", "goldfish", "great_white_shark", "tiger_shark", "hammerhead"]

    static func findPython() -> URL? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let onPath = path.split(separator: ":").map { URL(fileURLWithPath: "\($0)/python3") }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
        for candidate in [onPath, URL(fileURLWithPath: "/usr/bin/python3")].compactMap({ $0 }) {
            guard let run = try? execute(candidate, ["-c", "import torch"], in: FileManager.default.temporaryDirectory),
                  run.status == 0 else { continue }
            // archiver stops at the first that imports torch; the tests also need torchvision there.
            let vision = try? execute(candidate, ["-c", "import torchvision"], in: FileManager.default.temporaryDirectory)
            return vision?.status == 0 ? candidate : nil
        }
        return nil
    }

    /// How a run of Python ended: exit status, and standard output and error together.
    struct Run {
        var status: Int32
        var output: String
    }

    /// Runs a program and waits for it; standard output and error together.
    static func execute(_ program: URL, _ arguments: [String], in folder: URL) throws -> Run {
        let process = Process()
        process.executableURL = program
        process.arguments = arguments
        process.currentDirectoryURL = folder
        var environment = ProcessInfo.processInfo.environment
        environment["PYTHONDONTWRITEBYTECODE"] = "1"
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, output: String(decoding: output, as: UTF8.self))
    }

    func archiver(_ arguments: [String], in folder: URL) throws -> BuiltExecutable.Run {
        try Self.executable.run(arguments, in: folder)
    }

    func workspace() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("eager-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("out"), withIntermediateDirectories: true)
        return folder
    }

    func write(_ text: String, to path: String, in folder: URL) throws {
        let url = folder.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: url, atomically: true, encoding: .utf8)
    }

    /// An unpacked eager-mode archive (`archiver convert` takes folders): manifest, model.py and
    /// weights that are never read, since every case here fails before Python runs.
    func eagerFolder(in folder: URL, manifest: String? = nil, modelFile: Bool = true) throws -> URL {
        let root = folder.appendingPathComponent("eager")
        try write(manifest ?? """
            {"runtime": "python", "model": {"modelName": "net", "serializedFile": "weights.pth", "handler": "handler.py",
             "modelFile": "model.py", "modelVersion": "2.0"}, "archiverVersion": "0.12.0"}
            """, to: "eager/MAR-INF/MANIFEST.json", in: folder)
        if modelFile { try write("import torch\n", to: "eager/model.py", in: folder) }
        try write("not read\n", to: "eager/weights.pth", in: folder)
        try write("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n", to: "eager/vocab.txt", in: folder)
        return root
    }

    func expectRefused(_ run: BuiltExecutable.Run, mentioning mentions: [String], _ comment: String) {
        #expect(run.status != 0, "\(comment): \(run.output)")
        for mention in mentions {
            #expect(run.output.contains(mention), "\(comment): \(run.output)")
        }
        #expect(!run.output.contains("Fatal error"), "\(comment)")
    }

    // MARK: - Refusals that need no PyTorch

    @Test(.enabled(if: EagerConversionTests.executable.isBuilt))
    func aPythonThatIsMissingOrHasNoTorchIsNamedWithTheFix() throws {
        let folder = try workspace()
        defer { try? FileManager.default.removeItem(at: folder) }
        _ = try eagerFolder(in: folder)
        try write("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'torch'\" >&2\nexit 1\n", to: "notorch", in: folder)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: folder.appendingPathComponent("notorch").path)
        try FileManager.default.copyItem(at: Fixtures.url("models/state_dict.pt"), to: folder.appendingPathComponent("state_dict.pt"))

        let convert = ["convert", "eager", "--handler", "image_classifier", "--export-path", "out"]
        expectRefused(try archiver(convert + ["--python", "/nonexistent/python3"], in: folder),
                      mentioning: ["/nonexistent/python3", "--python", "does not exist"], "convert --python /nonexistent")
        expectRefused(try archiver(convert + ["--python", "./notorch"], in: folder),
                      mentioning: ["./notorch", "cannot import torch", "No module named 'torch'", "pip install torch"],
                      "convert --python without torch")
        // --model-file with a state_dict converts while packing, with the same Python.
        let pack = ["--model-name", "net", "--model-file", "eager/model.py", "--serialized-file", "state_dict.pt",
                    "--handler", "image_segmenter", "--export-path", "out"]
        expectRefused(try archiver(pack + ["--python", "/nonexistent/python3"], in: folder),
                      mentioning: ["/nonexistent/python3", "--python"], "pack --model-file --python /nonexistent")
        // Without --model-file a state_dict is refused, pointing at the conversion.
        let plain = ["--model-name", "net", "--serialized-file", "state_dict.pt", "--handler", "image_segmenter"]
        expectRefused(try archiver(plain, in: folder), mentioning: ["torch.save", "--model-file"], "state_dict without --model-file")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("out").path).isEmpty)
    }

    @Test(.enabled(if: EagerConversionTests.executable.isBuilt))
    func whatIsNotAnEagerArchiveIsRefusedBeforePythonRuns() throws {
        let folder = try workspace()
        defer { try? FileManager.default.removeItem(at: folder) }
        let out = ["--export-path", "out", "--python", "/nonexistent/python3"]

        try write("print('no manifest')\n", to: "loose/model.py", in: folder)
        expectRefused(try archiver(["convert", "loose", "--handler", "image_classifier"] + out, in: folder),
                      mentioning: ["loose", "MAR-INF/MANIFEST.json", "--model-file"], "no manifest")
        expectRefused(try archiver(["convert", "missing.mar"] + out, in: folder),
                      mentioning: ["missing.mar", "does not exist"], "no such archive")

        // A TorchScript archive: its manifest names no model file.
        try FileManager.default.copyItem(at: Fixtures.url("models/unet_tiny.pt"), to: folder.appendingPathComponent("unet_tiny.pt"))
        let packed = try archiver(["--model-name", "unet", "--serialized-file", "unet_tiny.pt", "--handler", "image_segmenter",
                                   "--export-path", "."], in: folder)
        #expect(packed.status == 0, "\(packed.output)")
        expectRefused(try archiver(["convert", "unet.mar"] + out, in: folder),
                      mentioning: ["unet.mar", "model.modelFile", "serve the archive as it is"], "TorchScript archive")

        // The manifest names a model.py the archive lacks.
        _ = try eagerFolder(in: folder, modelFile: false)
        expectRefused(try archiver(["convert", "eager", "--handler", "image_classifier"] + out, in: folder),
                      mentioning: ["\"model.py\"", "model.modelFile"], "missing model.py")
        try FileManager.default.removeItem(at: folder.appendingPathComponent("eager"))

        // A manifest pointing outside the archive.
        _ = try eagerFolder(in: folder, manifest: """
            {"runtime": "python", "model": {"modelName": "net", "serializedFile": "weights.pth", "handler": "image_classifier",
             "modelFile": "../model.py"}}
            """)
        expectRefused(try archiver(["convert", "eager"] + out, in: folder),
                      mentioning: ["../model.py", "outside the archive"], "model file outside")
        try FileManager.default.removeItem(at: folder.appendingPathComponent("eager"))

        _ = try eagerFolder(in: folder)
        // The handler is Python and --handler is not given.
        expectRefused(try archiver(["convert", "eager"] + out, in: folder),
                      mentioning: ["handler.py", "--handler", "image_classifier"], "Python handler, no --handler")
        // Text models have no default input shape; shapes are checked.
        expectRefused(try archiver(["convert", "eager", "--handler", "text_classifier"] + out, in: folder),
                      mentioning: ["--example-input", "text_classifier"], "text model without --example-input")
        expectRefused(try archiver(["convert", "eager", "--handler", "image_classifier", "--example-input", "1,0,224"] + out,
                                   in: folder),
                      mentioning: ["1,0,224", "positive"], "bad --example-input")
        expectRefused(try archiver(["convert", "eager", "--handler", "segmenter"] + out, in: folder),
                      mentioning: ["segmenter", "image_segmenter"], "unknown handler")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("out").path).isEmpty)
    }

    // MARK: - Conversions (need Python with torch)

    /// Writes the eager-mode fixtures (weights, densenet.mar) into `folder/eager` with the fixture script.
    func makeEagerFixtures(in folder: URL) throws -> URL {
        let python = try #require(Self.python)
        let script = Self.repository.appendingPathComponent("scripts/fixtures/make_eager_fixtures.py")
        let out = folder.appendingPathComponent("eager")
        let run = try Self.execute(python, [script.path, out.path], in: folder)
        try #require(run.status == 0, "\(run.output)")
        return out
    }

    /// The eager model's output on a preprocessed fixture tensor (`expected/*.f32`), computed by
    /// Python as TorchServe would: model class built with no arguments, state_dict loaded, eval().
    func eagerOutput(modelFile: URL, modelClass: String, weights: URL, input: String, shape: [Int]) throws -> [Float] {
        let program = """
            import importlib.util, json, os, sys, torch
            path, name, weights, tensor = sys.argv[1:5]
            shape = json.loads(sys.argv[5])
            sys.path.insert(0, os.path.dirname(path))
            spec = importlib.util.spec_from_file_location("eager_model", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            model = getattr(module, name)()
            model.load_state_dict(torch.load(weights, map_location="cpu"))
            model.eval()
            with open(tensor, "rb") as handle:
                x = torch.frombuffer(bytearray(handle.read()), dtype=torch.float32).reshape(shape)
            with torch.no_grad():
                print(json.dumps(model(x).flatten().tolist()))
            """
        let python = try #require(Self.python)
        let run = try Self.execute(python, ["-c", program, modelFile.path, modelClass, weights.path,
                                            Fixtures.url("expected/\(input)").path, "\(shape)"],
                                   in: FileManager.default.temporaryDirectory)
        try #require(run.status == 0, "\(run.output)")
        let line = try #require(run.output.split(separator: "\n").last)
        return try JSONDecoder().decode([Float].self, from: Data(line.utf8))
    }

    func server(store: URL) -> ModelServer {
        ModelServer(configuration: ServerConfiguration(modelStore: store, workDirectory: store.appendingPathComponent(".work")),
                    logger: quietLogger)
    }

    /// TorchServe's densenet_161 example as an eager .mar (model.py subclassing torchvision's
    /// DenseNet, a state_dict with the old key names, index_to_name.json, a Python handler):
    /// converted with torch.jit.script, the handler replaced, the labels kept; served, it answers
    /// what the eager model answers.
    @Test(.enabled(if: EagerConversionTests.canConvert))
    func aDenseNetArchiveConvertsAndServesWhatTheEagerModelAnswers() async throws {
        let folder = try workspace()
        defer { try? FileManager.default.removeItem(at: folder) }
        let eager = try makeEagerFixtures(in: folder)
        // The preprocessing of expected/rgb.cls.f32 (shorter side 64, centre 56); labels named explicitly.
        try write("kind: image_classifier\nresizeShorter: 64\ncropSize: [56, 56]\ntopk: 3\nlabels: index_to_name.json\n",
                  to: "classifier.yaml", in: folder)

        // No --python: archiver finds the same interpreter the tests found.
        let run = try archiver(["convert", "eager/densenet.mar", "--handler", "classifier.yaml", "--export-path", "out"], in: folder)
        try #require(run.status == 0, "\(run.output)")
        #expect(run.output.contains("Model class ImageClassifier from model.py"), "\(run.output)")
        #expect(run.output.contains("Exported with torch.jit.script"), "\(run.output)")
        #expect(run.output.contains("random inputs of shape [1, 3, 56, 56]"), "\(run.output)")
        #expect(run.output.contains("Python handler handler.py is not carried over"), "\(run.output)")
        #expect(run.output.contains("built-in image_classifier handler replaces it"), "\(run.output)")

        let mar = folder.appendingPathComponent("out/densenet.mar")
        let opened = try ArchiveReader.open(mar, extractingInto: folder.appendingPathComponent("opened"))
        #expect(opened.name.rawValue == "densenet")
        #expect(opened.version == "1.0")
        #expect(opened.handler == .imageClassifier)
        #expect(opened.serializedFile.lastPathComponent == "densenet_small.pt")
        #expect(opened.manifest.model.modelFile == nil)
        let files = try Set(FileManager.default.contentsOfDirectory(atPath: opened.root.path))
        #expect(files == ["MAR-INF", "densenet_small.pt", "index_to_name.json", "model-config.yaml"], "\(files)")

        // An existing archive is not overwritten without -f.
        let again = try archiver(["convert", "eager/densenet.mar", "--handler", "classifier.yaml", "--export-path", "out"], in: folder)
        #expect(again.status != 0 && again.output.contains("-f"), "\(again.output)")

        let logits = try eagerOutput(modelFile: eager.appendingPathComponent("densenet/model.py"), modelClass: "ImageClassifier",
                                     weights: eager.appendingPathComponent("densenet/densenet_small.pth"),
                                     input: "rgb.cls.f32", shape: [1, 3, 56, 56])
        try #require(logits.count == Self.labels.count)
        let largest = logits.max() ?? 0
        let exponentials = logits.map { exp(Double($0 - largest)) }
        let expected = exponentials.map { $0 / exponentials.reduce(0, +) }

        let store = folder.appendingPathComponent("out")
        let server = server(store: store)
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "densenet.mar"))
        let response = try await server.predict(model: "densenet", request: InferenceRequest(body: try Fixtures.bytes("images/rgb.png")))
        let answer = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Double])
        #expect(answer.count == 3, "\(answer)")
        let topThree = expected.indices.sorted { expected[$0] > expected[$1] }.prefix(3)
        #expect(Set(answer.keys) == Set(topThree.map { Self.labels[$0] }), "served \(answer), eager \(expected)")
        for index in topThree {
            let served = answer[Self.labels[index]] ?? -1
            #expect(abs(served - expected[index]) < 1e-4, "\(Self.labels[index]): served \(served), eager \(expected[index])")
        }
    }

    /// USE-CASES.md's reference deployment, the fastai U-Net as plain PyTorch (model.py +
    /// weights.pth), packed with torch-model-archiver's flags: torch.jit.script refuses its forward,
    /// so it is traced at the model definition's input size; served, its masks agree with the
    /// eager model's.
    @Test(.enabled(if: EagerConversionTests.canConvert))
    func aFastaiUNetPackedFromItsModelFileServesMasks() async throws {
        let folder = try workspace()
        defer { try? FileManager.default.removeItem(at: folder) }
        let eager = try makeEagerFixtures(in: folder)
        let python = try #require(Self.python)
        try write("minWorkers: 1\nhandler:\n  kind: image_segmenter\n  inputSize: [96, 128]\n  numClasses: 5\n",
                  to: "model-config.yaml", in: folder)

        let run = try archiver(["--model-name", "fastunet", "--version", "1.0", "--model-file", "eager/fastunet/model.py",
                                "--serialized-file", "eager/fastunet/weights.pth", "--handler", "image_segmenter",
                                "--config-file", "model-config.yaml", "--export-path", "out", "--python", python.path],
                               in: folder)
        try #require(run.status == 0, "\(run.output)")
        #expect(run.output.contains("Model class FastUnet from model.py, chosen among FastUnet, UnetBlock"), "\(run.output)")
        #expect(run.output.contains("torch.jit.script failed (getattr"), "\(run.output)")
        #expect(run.output.contains("exported with torch.jit.trace on a random input of shape [1, 3, 96, 128]"), "\(run.output)")
        #expect(run.output.contains("model.py is not stored"), "\(run.output)")

        let opened = try ArchiveReader.open(folder.appendingPathComponent("out/fastunet.mar"),
                                            extractingInto: folder.appendingPathComponent("opened"))
        #expect(opened.manifest.model.modelFile == nil)
        #expect(opened.serializedFile.lastPathComponent == "weights.pt")

        let logits = try eagerOutput(modelFile: eager.appendingPathComponent("fastunet/model.py"), modelClass: "FastUnet",
                                     weights: eager.appendingPathComponent("fastunet/weights.pth"),
                                     input: "rgb.input.f32", shape: [1, 3, 96, 128])
        let pixels = 96 * 128
        try #require(logits.count == 5 * pixels)
        var expected = [Int](repeating: 0, count: pixels)
        for pixel in 0..<pixels {
            for channel in 1..<5 where logits[channel * pixels + pixel] > logits[expected[pixel] * pixels + pixel] {
                expected[pixel] = channel
            }
        }

        let server = server(store: folder.appendingPathComponent("out"))
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "fastunet.mar"))
        let response = try await server.predict(model: "fastunet", request: InferenceRequest(body: try Fixtures.bytes("images/rgb.png")))
        let served = try mask(response)
        try #require(served.count == pixels, "a 96x128 mask, got \(served.count) bytes")
        #expect(served.allSatisfy { $0 < 5 })
        let agreeing = zip(served, expected).filter { Int($0) == $1 }.count
        #expect(Double(agreeing) / Double(pixels) >= 0.99, "\(agreeing) of \(pixels) pixels agree with the eager model")
    }

    /// TorchServe's examples/object_detector/fast-rcnn as an eager .mar (a FasterRCNN subclass,
    /// handler "object_detector"): converted with torch.jit.script on a list of two images of
    /// different sizes; served by the built-in object_detector, it answers the eager model's boxes.
    @Test(.enabled(if: EagerConversionTests.canConvert))
    func aFasterRCNNArchiveConvertsAndServesTheEagerModelsBoxes() async throws {
        let folder = try workspace()
        defer { try? FileManager.default.removeItem(at: folder) }
        let eager = try makeEagerFixtures(in: folder)
        let python = try #require(Self.python)
        try write("minWorkers: 1\nhandler:\n  kind: object_detector\n  threshold: 0.05\n  maxDetections: 10\n",
                  to: "model-config.yaml", in: folder)
        let run = try archiver(["convert", "eager/fastrcnn.mar", "--config-file", "model-config.yaml",
                                "--export-path", "out", "--python", python.path], in: folder)
        try #require(run.status == 0, "\(run.output)")
        #expect(run.output.contains("Model class FRCNNObjectDetector from model.py"), "\(run.output)")
        #expect(run.output.contains("Exported with torch.jit.script"), "\(run.output)")

        // The eager model in Python on the decoded sample scene (uint8 → 0…1), as TorchServe's handler feeds it.
        let scene = Self.repository.appendingPathComponent("model_store/samples/scene_0.png")
        let program = """
            import importlib.util, json, os, sys, torch
            import numpy as np
            from PIL import Image
            path, weights, image = sys.argv[1:4]
            spec = importlib.util.spec_from_file_location("eager_model", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            model = module.FRCNNObjectDetector()
            model.load_state_dict(torch.load(weights, map_location="cpu"))
            model.eval()
            x = torch.from_numpy(np.asarray(Image.open(image).convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)
            with torch.no_grad():
                found = model([x])[0]
            keep = [i for i in range(len(found["scores"])) if float(found["scores"][i]) >= 0.05][:10]
            print(json.dumps([[int(found["labels"][i])] + found["boxes"][i].tolist() + [float(found["scores"][i])] for i in keep]))
            """
        let eagerRun = try Self.execute(python, ["-c", program, eager.appendingPathComponent("fastrcnn/model.py").path,
                                                 eager.appendingPathComponent("fastrcnn/model.pth").path, scene.path],
                                        in: FileManager.default.temporaryDirectory)
        try #require(eagerRun.status == 0, "\(eagerRun.output)")
        let line = try #require(eagerRun.output.split(separator: "\n").last)
        let expected = try JSONDecoder().decode([[Double]].self, from: Data(line.utf8))
        try #require(!expected.isEmpty, "the random detector finds something at threshold 0.05")

        let server = server(store: folder.appendingPathComponent("out"))
        defer { server.shutdown() }
        try await server.register(RegistrationOptions(url: "fastrcnn.mar"))
        let response = try await server.predict(model: "fastrcnn", request: InferenceRequest(body: [UInt8](try Data(contentsOf: scene))))
        let served = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [[String: Any]])
        try #require(served.count == expected.count, "\(served) vs \(expected)")
        let names = ["__background__", "car", "person"]
        for (answer, want) in zip(served, expected) {
            let name = names[Int(want[0])]
            let box = try #require(answer[name] as? [Double], "\(answer) should be a \(name)")
            #expect(zip(box, want[1...4]).allSatisfy { abs($0 - $1) <= 1e-3 }, "\(box) vs \(want)")
            #expect(abs((answer["score"] as? Double ?? -1) - want[5]) <= 1e-5)
        }
    }

    /// Each way a conversion fails in Python comes back as its own message, naming the cause.
    @Test(.enabled(if: EagerConversionTests.canConvert))
    func conversionFailuresNameTheirCause() throws {
        let folder = try workspace()
        defer { try? FileManager.default.removeItem(at: folder) }
        let python = try #require(Self.python)
        let linear = "    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(4, 2)\n"
        let forward = "    def forward(self, x):\n        return self.fc(x.flatten(1)[:, :4])\n"
        let models: [String: String] = [
            "ambiguous": "import torch.nn as nn\nclass Small(nn.Module):\n\(linear)\(forward)class Other(nn.Module):\n\(linear)\(forward)",
            "arguments": "import torch.nn as nn\nclass Net(nn.Module):\n    def __init__(self, classes):\n"
                + "        super().__init__()\n        self.fc = nn.Linear(4, classes)\n\(forward)",
            "keys": "import torch.nn as nn\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                + "        self.head = nn.Linear(4, 2)\n    def forward(self, x):\n        return self.head(x.flatten(1)[:, :4])\n",
            "numpy": "import torch, torch.nn as nn\nclass Net(nn.Module):\n\(linear)    def forward(self, x):\n"
                + "        y = torch.from_numpy(x.numpy() * 2)\n        return self.fc(y.flatten(1)[:, :4])\n",
            "untraceable": "import torch.nn as nn\nclass Net(nn.Module):\n\(linear)    def forward(self, x):\n"
                + "        layer = getattr(self, 'f' + 'c' * (x.dim() // 4))\n        return layer(x.flatten(1)[:, :4]), 'label'\n",
            "broken": "import torch.nn as nn\nimport no_such_module\n",
        ]
        for (name, source) in models { try write(source, to: "\(name)/model.py", in: folder) }
        let weights = try Self.execute(python, ["-c", """
            import torch
            torch.manual_seed(0)
            torch.save(torch.nn.Sequential(torch.nn.Linear(4, 2)).state_dict(), "sequential.pth")
            torch.save({"fc.weight": torch.randn(2, 4), "fc.bias": torch.randn(2)}, "linear.pth")
            """], in: folder)
        try #require(weights.status == 0, "\(weights.output)")

        let cases: [(model: String, weights: String, extra: [String], mentions: [String])] = [
            ("ambiguous", "linear.pth", [], ["Other, Small", "--model-class"]),
            ("ambiguous", "linear.pth", ["--model-class", "Missing"], ["\"Missing\"", "Other, Small"]),
            ("arguments", "linear.pth", [], ["cannot be built with no arguments", "classes"]),
            ("keys", "linear.pth", [], ["state_dict keys in linear.pth do not match Net", "Missing key(s): head.weight",
                                        "Unexpected key(s): fc.weight"]),
            ("ambiguous", "sequential.pth", ["--model-class", "Small"], ["Unexpected key(s): 0.weight"]),
            ("numpy", "linear.pth", [], ["torch.jit.trace", "does not compute what Net computes", "differ by up to",
                                         "torch.jit.script failed first", "numpy"]),
            ("untraceable", "linear.pth", [], ["Neither torch.jit.script nor torch.jit.trace", "string literal",
                                               "Only tensors"]),
            ("broken", "linear.pth", [], ["Importing model.py failed", "no_such_module"]),
            ("ambiguous", "linear.pth", ["--model-class", "Small", "--example-input", "1,3"], ["Small fails on a random input of shape [1, 3]", "--example-input"]),
        ]
        for (model, weightsFile, extra, mentions) in cases {
            let run = try archiver(["--model-name", "m", "--model-file", "\(model)/model.py", "--serialized-file", weightsFile,
                                    "--handler", "image_classifier", "--export-path", "out", "--python", python.path] + extra,
                                   in: folder)
            expectRefused(run, mentioning: mentions, "\(model) \(extra)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("out").path).isEmpty)
    }
}
