#!/usr/bin/python3
"""TorchServe gRPC check: drives `serve`'s gRPC inference and management APIs with a Python client
generated from the protos, as a TorchServe user generates theirs.

How to run (from the repository root):

    scripts/check/torchserve-grpc                            # .build/release/serve, else .build/debug/serve
    scripts/check/torchserve-grpc --protos DIR               # stubs from other protos (TorchServe's own)
    /usr/bin/python3 scripts/check/torchserve_grpc.py --serve PATH [--protos DIR] [--keep]

On first use it creates a virtual environment under scripts/.cache/torchserve-grpc-venv and
installs grpcio, grpcio-tools and googleapis-common-protos (TorchServe's inference.proto imports
google/rpc/status.proto) from PyPI into it, then re-runs itself there. It generates
inference_pb2(_grpc) and management_pb2(_grpc) into a temporary folder with
`python -m grpc_tools.protoc` from Sources/ServerGRPC/proto (or --protos), starts `serve --start`
in a fresh temporary folder (a copy of model_store/ plus unet 2.0, an unpacked copy of unet.mar
with another version; random free loopback ports; token authorization and the model API on;
all sample archives), and walks:

  1. Ping (no key needed) against GET /ping;
  2. Predictions and StreamPredictions on every sample archive with its sample inputs, each
     answer compared byte for byte with the same input's POST /predictions answer; an entry
     besides "data" as a query parameter (output=overlay);
  3. refusals: an unknown model (NOT_FOUND), no model_name and no payload (INVALID_ARGUMENT),
     StreamPredictions2 (UNIMPLEMENTED), no key or the wrong key (UNAUTHENTICATED);
  4. management: ListModels and DescribeModel against GET /models and GET /models/{m};
     RegisterModel (unet 2.0, and unet.mar again as unet_copy), SetDefault between unet's two
     versions, ScaleWorker, UnregisterModel, each status line compared with the REST answer's
     `status` for the same call, and the REST view of the change; refusals with their codes.

One line per check (PASS/FAIL), then a summary; exit status 0 only when every check passed.
The server started here is always stopped. Only 127.0.0.1 is contacted (and PyPI, once).
"""

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV = os.path.join(REPO, "scripts", ".cache", "torchserve-grpc-venv")
PYTHON = os.path.join(VENV, "bin", "python")
OUR_PROTOS = os.path.join(REPO, "Sources", "ServerGRPC", "proto")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checkutil import HOST, free_port, short  # noqa: E402  scripts/check/checkutil.py

TEXTS = ["The compiler crashed and the kernel panicked", "The senator voted against the bill",
         "Add two cups of flour and stir"]


def ensure_venv():
    """Re-runs this script inside the venv, creating it and installing grpcio first if needed."""
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    if not os.path.exists(PYTHON):
        print(f"creating {VENV} and installing grpcio, grpcio-tools, googleapis-common-protos from PyPI",
              file=sys.stderr, flush=True)
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
        subprocess.check_call([PYTHON, "-m", "pip", "install", "-q", "grpcio", "grpcio-tools", "googleapis-common-protos"])
    os.execv(PYTHON, [PYTHON, os.path.abspath(__file__)] + sys.argv[1:])


class Report:
    def __init__(self):
        self.passed, self.failures = 0, []

    def check(self, name, ok, detail=""):
        print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}", flush=True)
        if ok:
            self.passed += 1
        else:
            self.failures.append(name)
        return ok


def generate_stubs(protos, out):
    """inference_pb2(_grpc).py and management_pb2(_grpc).py from `protos`, as TorchServe's docs do it."""
    from google.rpc import status_pb2  # googleapis-common-protos: its .proto files lie beside the modules
    googleapis = os.path.dirname(os.path.dirname(os.path.dirname(status_pb2.__file__)))
    command = [sys.executable, "-m", "grpc_tools.protoc", f"--proto_path={protos}", f"--proto_path={googleapis}",
               f"--python_out={out}", f"--grpc_python_out={out}",
               os.path.join(protos, "inference.proto"), os.path.join(protos, "management.proto")]
    subprocess.check_call(command)
    sys.path.insert(0, out)
    return tuple(importlib.import_module(name) for name in ("inference_pb2", "inference_pb2_grpc", "management_pb2", "management_pb2_grpc"))


def same_json(text, body):
    """The same JSON value (a server before describe sorted its keys wrote them in any order)."""
    return json.loads(text) == json.loads(body)


def add_second_unet(store):
    """unet_v2/: unet.mar unpacked, its manifest's version 2.0 (registered as unet 2.0)."""
    folder = os.path.join(store, "unet_v2")
    with zipfile.ZipFile(os.path.join(store, "unet.mar")) as archive:
        archive.extractall(folder)
    manifest_path = os.path.join(folder, "MAR-INF", "MANIFEST.json")
    with open(manifest_path) as handle:
        manifest = json.load(handle)
    manifest["model"]["modelVersion"] = "2.0"
    with open(manifest_path, "w") as handle:
        json.dump(manifest, handle)


class REST:
    """The REST ports, with their keys."""

    def __init__(self, inference, management, keys):
        self.inference, self.management, self.keys = inference, management, keys

    def call(self, base, kind, path, method="GET", body=None):
        request = urllib.request.Request(f"{base}{path}", data=body, method=method,
                                         headers={"Authorization": f"Bearer {self.keys[kind]['key']}"})
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def predict(self, path, body):
        return self.call(self.inference, "inference", path, "POST", body)

    def manage(self, path, method="GET"):
        return self.call(self.management, "management", path, method)


def walk(R, stubs, grpc_ports, rest):
    import grpc
    from google.protobuf import empty_pb2

    inference_pb2, inference_pb2_grpc, management_pb2, management_pb2_grpc = stubs
    inference = inference_pb2_grpc.InferenceAPIsServiceStub(grpc.insecure_channel(f"{HOST}:{grpc_ports[0]}"))
    management = management_pb2_grpc.ManagementAPIsServiceStub(grpc.insecure_channel(f"{HOST}:{grpc_ports[1]}"))
    inference_key = (("authorization", f"Bearer {rest.keys['inference']['key']}"),)
    management_key = (("authorization", f"Bearer {rest.keys['management']['key']}"),)
    samples = os.path.join(REPO, "model_store", "samples")

    def read(name):
        with open(os.path.join(samples, name), "rb") as handle:
            return handle.read()

    def refused(name, call, code, fragment=""):
        try:
            call()
            R.check(name, False, "no error raised")
        except grpc.RpcError as error:
            R.check(name, error.code() == code and fragment in error.details(), f"{error.code()}: {short(error.details(), 200)}")
            print(f"  {error.code().name}: {short(error.details(), 160)}", flush=True)

    # 1. health
    health = inference.Ping(empty_pb2.Empty(), timeout=30)
    status, body = rest.call(rest.inference, "inference", "/ping")
    R.check("Ping without a key answers GET /ping's JSON", health.health == body.decode(), f"{short(health.health)} vs {short(body)}")

    # 2. predictions against /predictions
    with open(os.path.join(samples, "qa.json")) as handle:
        questions = json.load(handle)["seed"]
    cases = [("unet", name, read(name), {}) for name in ("scene_0.png", "scene_1.png", "scene_0.jpg")]
    cases += [("unet", "scene_2.png, output=overlay", read("scene_2.png"), {"output": b"overlay"})]
    cases += [("scenes", name, read(name), {}) for name in ("dominant_car.png", "dominant_person.png", "scene_2.png")]
    cases += [("detector", name, read(name), {}) for name in ("street_1.png", "street_2.png")]
    cases += [("fortunes", repr(text[:24]), text.encode(), {}) for text in TEXTS]
    cases += [("fortunes", "inputs list", json.dumps({"inputs": TEXTS}).encode(), {})]
    cases += [("qa", repr(q["question"]), json.dumps({"question": q["question"], "text": q["context"]}).encode(), {}) for q in questions]
    for model, label, payload, extra in cases:
        query = "?" + "&".join(f"{k}={v.decode()}" for k, v in extra.items()) if extra else ""
        status, want = rest.predict(f"/predictions/{model}{query}", payload)
        request = inference_pb2.PredictionsRequest(model_name=model, input={"data": payload, **extra})
        got = inference.Predictions(request, metadata=inference_key, timeout=120).prediction
        R.check(f"Predictions {model} {label}: equal to POST /predictions ({len(want)} bytes)",
                status == 200 and got == want, f"{status}: {short(got, 120)} vs {short(want, 120)}")
    streamed = [m.prediction for m in inference.StreamPredictions(
        inference_pb2.PredictionsRequest(model_name="fortunes", input={"data": TEXTS[0].encode()}), metadata=inference_key, timeout=120)]
    status, want = rest.predict("/predictions/fortunes", TEXTS[0].encode())
    R.check("StreamPredictions fortunes: one message, equal to POST /predictions", streamed == [want], short(streamed))
    versioned = inference.Predictions(inference_pb2.PredictionsRequest(
        model_name="unet", model_version="1.0", input={"data": read("scene_0.png")}), metadata=inference_key, timeout=120).prediction
    status, want = rest.predict("/predictions/unet/1.0", read("scene_0.png"))
    R.check("Predictions unet model_version 1.0: equal to POST /predictions/unet/1.0", versioned == want, short(versioned, 120))

    # 3. refusals on the inference service
    StatusCode = grpc.StatusCode
    image = {"data": read("scene_0.png")}
    refused("an unknown model is NOT_FOUND naming it", lambda: inference.Predictions(
        inference_pb2.PredictionsRequest(model_name="no_such_model", input=image), metadata=inference_key, timeout=30),
        StatusCode.NOT_FOUND, "no_such_model")
    refused("an unknown version is NOT_FOUND naming it", lambda: inference.Predictions(
        inference_pb2.PredictionsRequest(model_name="unet", model_version="9.9", input=image), metadata=inference_key, timeout=30),
        StatusCode.NOT_FOUND, "9.9")
    refused("no model_name is INVALID_ARGUMENT", lambda: inference.Predictions(
        inference_pb2.PredictionsRequest(input=image), metadata=inference_key, timeout=30), StatusCode.INVALID_ARGUMENT, "model_name")
    refused("no data entry is INVALID_ARGUMENT naming it", lambda: inference.Predictions(
        inference_pb2.PredictionsRequest(model_name="unet", input={"image": b"x"}), metadata=inference_key, timeout=30),
        StatusCode.INVALID_ARGUMENT, "'data'")
    refused("bytes that are no image are INVALID_ARGUMENT", lambda: inference.Predictions(
        inference_pb2.PredictionsRequest(model_name="unet", input={"data": b"hello"}), metadata=inference_key, timeout=30),
        StatusCode.INVALID_ARGUMENT)
    refused("StreamPredictions2 is UNIMPLEMENTED", lambda: list(inference.StreamPredictions2(
        iter([inference_pb2.PredictionsRequest(model_name="unet", input=image)]), metadata=inference_key, timeout=30)),
        StatusCode.UNIMPLEMENTED, "StreamPredictions2")
    refused("Predictions without a key is UNAUTHENTICATED", lambda: inference.Predictions(
        inference_pb2.PredictionsRequest(model_name="unet", input=image), timeout=30), StatusCode.UNAUTHENTICATED, "inference key")
    refused("Predictions with the management key is UNAUTHENTICATED", lambda: inference.Predictions(
        inference_pb2.PredictionsRequest(model_name="unet", input=image), metadata=management_key, timeout=30),
        StatusCode.UNAUTHENTICATED)

    # 4. management
    def msg(call, request):
        return call(request, metadata=management_key, timeout=300).msg

    listed = msg(management.ListModels, management_pb2.ListModelsRequest())
    status, body = rest.manage("/models")
    R.check("ListModels: msg equal to GET /models", listed == body.decode(), f"{short(listed)} vs {short(body)}")
    page = msg(management.ListModels, management_pb2.ListModelsRequest(limit=2, next_page_token=1))
    status, body = rest.manage("/models?limit=2&next_page_token=1")
    R.check("ListModels limit 2, next_page_token 1: equal to the same REST page", page == body.decode(), short(page))
    described = msg(management.DescribeModel, management_pb2.DescribeModelRequest(model_name="fortunes"))
    status, body = rest.manage("/models/fortunes")
    R.check("DescribeModel fortunes: msg equal to GET /models/fortunes", same_json(described, body), f"{short(described)} vs {short(body)}")

    registered = msg(management.RegisterModel, management_pb2.RegisterModelRequest(
        url="unet_v2", model_name="unet", initial_workers=1, synchronous=True))
    R.check("RegisterModel unet_v2 as unet: the REST status line",
            registered == 'Model "unet" Version: 2.0 registered with 1 initial workers', registered)
    copy = msg(management.RegisterModel, management_pb2.RegisterModelRequest(
        url="unet.mar", model_name="unet_copy", initial_workers=1, synchronous=True, batch_size=2, max_batch_delay=50))
    R.check("RegisterModel unet.mar as unet_copy, batch_size 2: the REST status line",
            copy == 'Model "unet_copy" Version: 1.0 registered with 1 initial workers', copy)
    status, body = rest.manage("/models/unet_copy")
    described = msg(management.DescribeModel, management_pb2.DescribeModelRequest(model_name="unet_copy"))
    R.check("DescribeModel unet_copy: equal to GET /models/unet_copy, batchSize 2",
            status == 200 and same_json(described, body) and json.loads(described)[0]["batchSize"] == 2, short(described))
    status, body = rest.manage("/models/unet/all")
    everything = msg(management.DescribeModel, management_pb2.DescribeModelRequest(model_name="unet", model_version="all"))
    R.check("DescribeModel unet all: equal to GET /models/unet/all, versions 1.0 and 2.0",
            same_json(everything, body) and sorted(v["modelVersion"] for v in json.loads(everything)) == ["1.0", "2.0"], short(everything))

    defaulted = msg(management.SetDefault, management_pb2.SetDefaultRequest(model_name="unet", model_version="2.0"))
    status, body = rest.manage("/models/unet")
    R.check("SetDefault unet 2.0: the status line, and GET /models/unet describes 2.0",
            defaulted == 'Default version successfully updated for model "unet" to "2.0"'
            and json.loads(body)[0]["modelVersion"] == "2.0", f"{defaulted}; {short(body)}")
    served = inference.Predictions(inference_pb2.PredictionsRequest(model_name="unet", input=image), metadata=inference_key, timeout=120).prediction
    status, want = rest.predict("/predictions/unet/2.0", image["data"])
    R.check("Predictions unet after SetDefault: equal to POST /predictions/unet/2.0", served == want, short(served, 120))
    status, body = rest.manage("/models/unet/1.0/set-default", "PUT")
    back = msg(management.SetDefault, management_pb2.SetDefaultRequest(model_name="unet", model_version="1.0"))
    R.check("SetDefault unet 1.0: the status line REST answers for the same call",
            status == 200 and back == json.loads(body)["status"], f"{back} vs {short(body)}")

    scaled = msg(management.ScaleWorker, management_pb2.ScaleWorkerRequest(model_name="unet_copy", min_worker=2, synchronous=True))
    status, body = rest.manage("/models/unet_copy?min_worker=2&synchronous=true", "PUT")
    R.check("ScaleWorker unet_copy to 2, synchronous: the status line REST answers for the same call",
            status == 200 and scaled == json.loads(body)["status"] == "Workers scaled to 2 for model: unet_copy", f"{scaled} vs {short(body)}")
    status, body = rest.manage("/models/unet_copy")
    workers = json.loads(body)[0]
    R.check("GET /models/unet_copy: minWorkers 2, 2 workers", workers["minWorkers"] == 2 and len(workers["workers"]) == 2, short(body))
    accepted = msg(management.ScaleWorker, management_pb2.ScaleWorkerRequest(model_name="unet_copy", model_version="1.0", min_worker=1))
    R.check("ScaleWorker asynchronous: Processing worker updates...", accepted == "Processing worker updates...", accepted)

    removed = msg(management.UnregisterModel, management_pb2.UnregisterModelRequest(model_name="unet", model_version="2.0"))
    status, body = rest.manage("/models/unet/2.0")
    R.check("UnregisterModel unet 2.0: the status line, and GET /models/unet/2.0 is 404",
            removed == 'Model "unet" unregistered' and status == 404, f"{removed}; {status}")
    removed = msg(management.UnregisterModel, management_pb2.UnregisterModelRequest(model_name="unet_copy"))
    status, body = rest.manage("/models")
    R.check("UnregisterModel unet_copy: gone from GET /models",
            removed == 'Model "unet_copy" unregistered' and "unet_copy" not in body.decode(), f"{removed}; {short(body)}")

    refused("DescribeModel of an unknown model is NOT_FOUND naming it", lambda: msg(
        management.DescribeModel, management_pb2.DescribeModelRequest(model_name="no_such_model")), StatusCode.NOT_FOUND, "no_such_model")
    refused("RegisterModel without url is INVALID_ARGUMENT", lambda: msg(
        management.RegisterModel, management_pb2.RegisterModelRequest(model_name="x")), StatusCode.INVALID_ARGUMENT, "url")
    refused("RegisterModel of an archive not in the store is NOT_FOUND", lambda: msg(
        management.RegisterModel, management_pb2.RegisterModelRequest(url="absent.mar")), StatusCode.NOT_FOUND, "absent.mar")
    refused("RegisterModel of a registered version is FAILED_PRECONDITION (REST 409)", lambda: msg(
        management.RegisterModel, management_pb2.RegisterModelRequest(url="fortunes.mar")), StatusCode.FAILED_PRECONDITION)
    refused("RegisterModel batch_size 5000 is INVALID_ARGUMENT naming the range", lambda: msg(
        management.RegisterModel, management_pb2.RegisterModelRequest(url="unet.mar", batch_size=5000)),
        StatusCode.INVALID_ARGUMENT, "1...1024")
    refused("ScaleWorker of an unknown model is NOT_FOUND", lambda: msg(
        management.ScaleWorker, management_pb2.ScaleWorkerRequest(model_name="no_such_model", min_worker=1)), StatusCode.NOT_FOUND)
    refused("SetDefault to an unknown version is NOT_FOUND", lambda: msg(
        management.SetDefault, management_pb2.SetDefaultRequest(model_name="unet", model_version="7.0")), StatusCode.NOT_FOUND, "7.0")
    refused("UnregisterModel of an unknown model is NOT_FOUND", lambda: msg(
        management.UnregisterModel, management_pb2.UnregisterModelRequest(model_name="no_such_model")), StatusCode.NOT_FOUND)
    refused("ListModels without a key is UNAUTHENTICATED", lambda: management.ListModels(
        management_pb2.ListModelsRequest(), timeout=30), StatusCode.UNAUTHENTICATED, "management key")
    refused("ListModels with the inference key is UNAUTHENTICATED", lambda: management.ListModels(
        management_pb2.ListModelsRequest(), metadata=inference_key, timeout=30), StatusCode.UNAUTHENTICATED)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", required=True, help="the serve binary")
    parser.add_argument("--protos", default=OUR_PROTOS, help="folder with inference.proto and management.proto (default: ours)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    args.serve = os.path.abspath(args.serve)
    args.protos = os.path.abspath(args.protos)
    ensure_venv()

    R = Report()
    work = tempfile.mkdtemp(prefix="torchserve-grpc-")
    stubs_folder = os.path.join(work, "stubs")
    os.makedirs(stubs_folder)
    stubs = generate_stubs(args.protos, stubs_folder)
    import grpc
    print(f"grpcio {grpc.__version__}, stubs from {args.protos}", flush=True)
    store = os.path.join(work, "model_store")
    shutil.copytree(os.path.join(REPO, "model_store"), store)
    add_second_unet(store)
    ports = []
    while len(set(ports)) < 5:
        ports = [free_port() for _ in range(5)]
    config = os.path.join(work, "config.properties")
    with open(config, "w") as handle:
        handle.write(f"# written by scripts/check/torchserve_grpc.py\ninference_address=http://{HOST}:{ports[0]}\n"
                     f"management_address=http://{HOST}:{ports[1]}\nmetrics_address=http://{HOST}:{ports[2]}\n"
                     f"grpc_inference_port={ports[3]}\ngrpc_management_port={ports[4]}\ngrpc_kserve_address=off\n"
                     f"model_store={store}\ndisable_token_authorization=false\nenable_model_api=true\n")
    archives = ",".join(sorted(name for name in os.listdir(store) if name.endswith(".mar")))

    def serve(*flags):
        done = subprocess.run([args.serve, *flags], cwd=work, capture_output=True, text=True, timeout=600)
        return done.returncode, done.stdout + done.stderr

    started = False
    try:
        rc, out = serve("--start", "--ncs", "--ts-config", config, "--model-store", store, "--models", archives)
        started = R.check(f"serve --start --models {archives}", rc == 0, f"rc {rc}: {short(out)}")
        if started:
            with open(os.path.join(work, "key_file.json")) as handle:
                keys = json.load(handle)
            rest = REST(f"http://{HOST}:{ports[0]}", f"http://{HOST}:{ports[1]}", keys)
            walk(R, stubs, (ports[3], ports[4]), rest)
    except Exception as error:  # a crash of the check is a failure, and the server is still stopped
        R.check("the check ran to the end", False, f"{type(error).__name__}: {short(str(error))}")
    finally:
        if started:
            rc, out = serve("--stop")
            R.check("serve --stop", rc == 0, f"rc {rc}: {short(out)}")
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    total = R.passed + len(R.failures)
    print(f"\nSUMMARY: {total} checks, {R.passed} passed, {len(R.failures)} failed ({R.passed}/{total})")
    for name in R.failures:
        print(f"FAILED {name}")
    return 0 if not R.failures else 1


if __name__ == "__main__":
    sys.exit(main())
