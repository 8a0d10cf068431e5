#!/usr/bin/python3
"""Eager-mode conversion check: TorchServe-style eager archives become TorchScript archives that
`serve` answers with what the eager model answers.

How to run (from the repository root):

    scripts/check/convert            # builds archiver + serve (release) if needed, runs this
    /usr/bin/python3 scripts/check/convert.py --serve PATH --archiver PATH [--python PATH] [--keep]

This script itself uses the standard library only; the fixtures and the eager reference answers
need a Python with torch, torchvision and PIL (--python, else python3 on PATH or /usr/bin/python3,
the first that has them). Everything happens in a fresh temporary folder; only 127.0.0.1 is used.

  1. scripts/fixtures/make_eager_fixtures.py writes densenet.mar (TorchServe's densenet_161 layout:
     model.py subclassing torchvision's DenseNet, a state_dict, index_to_name.json, handler.py) and
     the fastai-style U-Net's model.py + weights.pth
  2. archiver convert densenet.mar --handler image_classifier (torch.jit.script, handler replaced)
  3. archiver --model-file model.py --serialized-file weights.pth --handler image_segmenter
     (torch.jit.trace, as torch-model-archiver users write the command)
  4. refusals: --python that does not exist, a model file with two candidate classes
  5. serve --start --models densenet=...,fastunet=...; POST /predictions/densenet (JPEG) and
     /predictions/fastunet/ (PNG): labels and probabilities, mask size and pixels, against the eager
     model run in PyTorch with torchvision's transforms; serve --stop

One line per check (PASS/FAIL, with expected vs actual on failure), then a summary.
Exit status 0 only when every check passed; 2 when it cannot run (no binaries, no PyTorch).
"""

import argparse
import base64
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

from checkutil import HOST, alive, free_port, short  # scripts/check/checkutil.py

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLES = os.path.join(REPO, "model_store", "samples")
HEIGHT, WIDTH, CLASSES = 96, 128, 5

# The eager model's answer, computed as a TorchServe handler would: the class built with no
# arguments, the state_dict loaded, eval(); PIL + torchvision preprocessing like the built-in handlers'.
REFERENCE = r"""
import importlib.util, json, os, sys
import torch
from PIL import Image
from torchvision import transforms
model_file, name, weights, image, kind = sys.argv[1:6]
sys.path.insert(0, os.path.dirname(model_file))
spec = importlib.util.spec_from_file_location("eager_model", model_file)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
model = getattr(module, name)()
model.load_state_dict(torch.load(weights, map_location="cpu"))
model.eval()
rgb = Image.open(image).convert("RGB")
normalize = transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
if kind == "classifier":
    x = normalize(transforms.ToTensor()(transforms.CenterCrop(224)(transforms.Resize(256)(rgb))))
else:
    x = normalize(transforms.ToTensor()(transforms.Resize((96, 128))(rgb)))
with torch.no_grad():
    y = model(x.unsqueeze(0))
print(json.dumps(torch.softmax(y, 1)[0].tolist() if kind == "classifier" else y[0].argmax(0).flatten().tolist()))
"""


class Report:
    def __init__(self):
        self.passed, self.failures = 0, []

    def check(self, name, ok, expected="", actual=""):
        if ok:
            self.passed += 1
            print(f"PASS {name}", flush=True)
        else:
            line = f"FAIL {name}: expected {expected}, got {short(actual, 600)}"
            self.failures.append(line)
            print(line, flush=True)
        return ok


R = Report()


def find_python(explicit):
    candidates = [explicit] if explicit else [shutil.which("python3"), "/usr/bin/python3"]
    for candidate in candidates:
        if not candidate or not os.access(candidate, os.X_OK):
            continue
        done = subprocess.run([candidate, "-c", "import torch, torchvision, PIL"], capture_output=True, cwd="/")
        if done.returncode == 0:
            return candidate
    return None


def run(command, cwd, timeout=600):
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout + done.stderr


def post(port, path, body, content_type):
    connection = http.client.HTTPConnection(HOST, port, timeout=120)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": content_type})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def reference(python, model_file, name, weights, image, kind):
    code, out = run([python, "-c", REFERENCE, model_file, name, weights, image, kind], cwd="/")
    if code != 0:
        raise RuntimeError(f"the eager reference failed: {out[-1500:]}")
    return json.loads(out.strip().splitlines()[-1])


def convert_check(work, archiver, python, store):
    eager = os.path.join(work, "eager")
    code, out = run([python, os.path.join(REPO, "scripts", "fixtures", "make_eager_fixtures.py"), eager], cwd=work)
    if not R.check("make_eager_fixtures.py writes densenet.mar and the U-Net's weights", code == 0, "rc 0", f"rc {code}: {out}"):
        return None

    # 2. the whole eager archive, with the built-in handler named as TorchServe's example does
    code, out = run([archiver, "convert", os.path.join(eager, "densenet.mar"), "--handler", "image_classifier",
                     "--export-path", store], cwd=work)
    R.check("archiver convert densenet.mar --handler image_classifier exits 0", code == 0, "rc 0", f"rc {code}: {out}")
    R.check("convert exports the DenseNet with torch.jit.script", "Exported with torch.jit.script" in out,
            "'Exported with torch.jit.script'", out)
    R.check("convert says the Python handler handler.py was replaced by the built-in one",
            "handler.py is not carried over" in out and "built-in image_classifier handler replaces it" in out,
            "the replacement line", out)
    R.check("convert checks TorchScript against eager outputs", "TorchScript and eager outputs agree" in out, "the agreement line", out)
    code, out = run([archiver, "inspect", os.path.join(store, "densenet.mar")], cwd=work)
    files = [line.split()[-1] for line in out.split("Files:")[-1].splitlines() if line.strip()]
    R.check("the converted densenet.mar holds the TorchScript file and index_to_name.json, no Python, no .pth",
            code == 0 and sorted(files) == ["MAR-INF/MANIFEST.json", "densenet_small.pt", "index_to_name.json"],
            "MANIFEST, densenet_small.pt, index_to_name.json", f"rc {code}: {files}")
    R.check("the converted manifest keeps the model name and version and names the built-in handler",
            '"modelName": "densenet"' in out and '"modelVersion": "1.0"' in out and '"handler": "image_classifier"' in out
            and "modelFile" not in out, "densenet 1.0 image_classifier, no modelFile", out)

    # 3. loose files, torch-model-archiver's flags (USE-CASES.md's command with the built-in handler)
    unet = os.path.join(eager, "fastunet")
    with open(os.path.join(unet, "model-config.yaml"), "w") as handle:
        handle.write(f"minWorkers: 1\nhandler:\n  kind: image_segmenter\n  inputSize: [{HEIGHT}, {WIDTH}]\n  numClasses: {CLASSES}\n")
    code, out = run([archiver, "--model-name", "fastunet", "--version", "1.0", "--model-file", "model.py",
                     "--serialized-file", "weights.pth", "--handler", "image_segmenter", "--config-file", "model-config.yaml",
                     "--export-path", store, "-f"], cwd=unet)
    R.check("archiver --model-file model.py --serialized-file weights.pth --handler image_segmenter exits 0",
            code == 0, "rc 0", f"rc {code}: {out}")
    R.check("the U-Net, which torch.jit.script refuses, is traced at the model definition's 96x128",
            "torch.jit.script failed" in out and "exported with torch.jit.trace on a random input of shape [1, 3, 96, 128]" in out,
            "script failure and trace lines", out)

    # 4. refusals name the cause
    code, out = run([archiver, "convert", os.path.join(eager, "densenet.mar"), "--handler", "image_classifier",
                     "--python", "/nonexistent/python3", "--export-path", work], cwd=work)
    R.check("--python /nonexistent/python3 is refused, naming it and --python", code != 0 and "/nonexistent/python3" in out
            and "--python" in out, "rc != 0 and the path", f"rc {code}: {out}")
    two = os.path.join(work, "two")
    os.makedirs(two)
    with open(os.path.join(two, "model.py"), "w") as handle:
        handle.write("import torch.nn as nn\n" + "".join(
            f"class {name}(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(4, 2)\n"
            for name in ("First", "Second")))
    code, out = run([archiver, "--model-name", "two", "--model-file", "model.py", "--serialized-file",
                     os.path.join(unet, "weights.pth"), "--handler", "image_classifier", "--export-path", work], cwd=two)
    R.check("a model file with two candidate classes is refused, naming both and --model-class",
            code != 0 and "First, Second" in out and "--model-class" in out, "rc != 0, both names", f"rc {code}: {out}")
    return eager


def serve_check(work, serve, python, store, eager):
    ports = {"inference": free_port(), "management": free_port(), "metrics": free_port()}
    config = os.path.join(work, "config.properties")
    with open(config, "w") as handle:
        handle.write(f"inference_address=http://{HOST}:{ports['inference']}\n"
                     f"management_address=http://{HOST}:{ports['management']}\n"
                     f"metrics_address=http://{HOST}:{ports['metrics']}\n"
                     f"model_store={store}\ndisable_token_authorization=true\ndefault_workers_per_model=1\nenable_grpc=false\n")
    pid_file = os.path.join(work, "logs", "serve.pid")
    code, out = run([serve, "--start", "--ncs", "--ts-config", config, "--model-store", store,
                     "--models", "densenet=densenet.mar,fastunet=fastunet.mar"], cwd=work)
    if not R.check("serve --start --models densenet=densenet.mar,fastunet=fastunet.mar exits 0", code == 0, "rc 0", f"rc {code}: {out}"):
        return
    try:
        with open(os.path.join(SAMPLES, "scene_0.jpg"), "rb") as handle:
            jpeg = handle.read()
        status, body = post(ports["inference"], "/predictions/densenet", jpeg, "image/jpeg")
        answer = json.loads(body) if status == 200 else None
        with open(os.path.join(eager, "densenet", "index_to_name.json")) as handle:
            names = {int(key): value[-1] for key, value in json.load(handle).items()}
        R.check("POST /predictions/densenet (JPEG) -> 200 with five labels from index_to_name.json",
                status == 200 and isinstance(answer, dict) and set(answer) == set(names.values()),
                f"200 and labels {sorted(names.values())}", f"{status}: {body[:300]!r}")
        probabilities = reference(python, os.path.join(eager, "densenet", "model.py"), "ImageClassifier",
                                  os.path.join(eager, "densenet", "densenet_small.pth"), os.path.join(SAMPLES, "scene_0.jpg"),
                                  "classifier")
        expected = {names[index]: value for index, value in enumerate(probabilities)}
        worst = max(abs(answer.get(name, -1) - value) for name, value in expected.items()) if answer else None
        R.check(f"the served probabilities are the eager DenseNet's (PIL + torchvision preprocessing) within 0.001 "
                f"(max difference {worst:.2g})" if worst is not None else "the served probabilities are the eager DenseNet's",
                worst is not None and worst < 0.001, f"eager {expected}", f"served {answer} (max difference {worst})")

        with open(os.path.join(SAMPLES, "scene_0.png"), "rb") as handle:
            png = handle.read()
        status, body = post(ports["inference"], "/predictions/fastunet/", png, "image/png")
        prediction = json.loads(body).get("base64_prediction", "") if status == 200 else ""
        mask = base64.b64decode(prediction)
        R.check(f"POST /predictions/fastunet/ (PNG) -> 200 with a {HEIGHT}x{WIDTH} mask of class ids < {CLASSES}",
                status == 200 and len(mask) == HEIGHT * WIDTH and max(mask) < CLASSES,
                f"{HEIGHT * WIDTH} bytes", f"{status}: {len(mask)} bytes, {body[:200]!r}")
        eager_mask = reference(python, os.path.join(eager, "fastunet", "model.py"), "FastUnet",
                               os.path.join(eager, "fastunet", "weights.pth"), os.path.join(SAMPLES, "scene_0.png"), "segmenter")
        agreeing = sum(1 for served, wanted in zip(mask, eager_mask) if served == wanted)
        R.check(f"the served mask agrees with the eager U-Net's on >= 99 % of the pixels ({agreeing} of {len(eager_mask)})",
                len(mask) == len(eager_mask) and agreeing >= 0.99 * len(eager_mask),
                ">= 99 %", f"{agreeing} of {len(eager_mask)}")
    finally:
        code, out = run([serve, "--stop"], cwd=work, timeout=120)
        R.check("serve --stop exits 0", code == 0, "rc 0", f"rc {code}: {out}")
        try:
            with open(pid_file) as handle:
                pid = int(handle.read().strip())
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            pass


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", default=os.path.join(REPO, ".build", "release", "serve"))
    parser.add_argument("--archiver", default=os.path.join(REPO, ".build", "release", "archiver"))
    parser.add_argument("--python", help="a Python with torch, torchvision and PIL for the fixtures and the eager reference")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    options = parser.parse_args()
    serve, archiver = os.path.abspath(options.serve), os.path.abspath(options.archiver)
    for binary in (serve, archiver):
        if not os.access(binary, os.X_OK):
            print(f"convert: {binary} is not an executable; build it first (scripts/check/convert does)")
            return 2
    python = find_python(options.python)
    if python is None:
        print("convert: no Python with torch, torchvision and PIL (tried --python, python3 on PATH, /usr/bin/python3); "
              "install them (scripts/setup --fixtures) or pass --python PATH")
        return 2

    work = tempfile.mkdtemp(prefix="convert-check-")
    store = os.path.join(work, "model_store")
    os.makedirs(store)
    print(f"working folder {work}\nserve {serve}\narchiver {archiver}\npython {python}", flush=True)
    try:
        eager = convert_check(work, archiver, python, store)
        if eager:
            serve_check(work, serve, python, store, eager)
    except Exception as error:  # a crash of the script is a failure too, after the cleanup
        import traceback
        traceback.print_exc()
        R.check("the check ran to the end", False, "no exception", f"{type(error).__name__}: {error}")
    finally:
        if options.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\nSUMMARY: {R.passed + len(R.failures)} checks, {R.passed} passed, {len(R.failures)} failed")
    for line in R.failures:
        print(line)
    return 0 if not R.failures else 1


if __name__ == "__main__":
    sys.exit(main())
