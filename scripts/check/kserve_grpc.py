#!/usr/bin/python3
"""KServe v2 gRPC check: drives `serve` with tritonclient's gRPC client and compares every answer
with the same request's HTTP KServe v2 answer.

How to run (from the repository root):

    scripts/check/kserve-grpc                                  # .build/release/serve, else .build/debug/serve
    /usr/bin/python3 scripts/check/kserve_grpc.py --serve PATH [--keep]

On first use it creates a virtual environment under scripts/.cache/tritonclient-venv and installs
`tritonclient[grpc]` and numpy from PyPI into it, then re-runs itself there. It starts
`serve --start` in a fresh temporary folder (a copy of model_store/, random free loopback ports
for the three HTTP and three gRPC listeners, token authorization on, every sample archive) and,
with `tritonclient.grpc.InferenceServerClient` on `grpc_kserve_address`:

  1. server liveness, readiness and metadata; each model's readiness and metadata, compared
     with GET /v2/models/<m>;
  2. inference on every sample model: unet (an image as BYTES, and a numeric FP32 tensor that
     goes straight to forward), scenes (images as BYTES), fortunes (texts as BYTES), detector and
     qa (their BYTES inputs; where HTTP refuses one, gRPC must refuse it alike, same message),
     each sent as raw contents (tritonclient's InferInput) and as typed
     contents (the JSON-equivalent form, through the generated stub), with raw and typed outputs;
     every output compared with POST /v2/models/<m>/infer's JSON answer to the same input;
  3. errors: an unknown model (NOT_FOUND), a shape that does not match the data
     (INVALID_ARGUMENT with the HTTP message), a call without the token (UNAUTHENTICATED), a
     deadline shorter than the work (DEADLINE_EXCEEDED).

One line per check (PASS/FAIL), then N/M passed; exit status 0 only when every check passed.
The server started here is always stopped. Only 127.0.0.1 is contacted (and PyPI, once).
"""

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV = os.path.join(REPO, "scripts", ".cache", "tritonclient-venv")
PYTHON = os.path.join(VENV, "bin", "python")
INSTALLED = os.path.join(VENV, ".installed")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checkutil import HOST, free_port, short  # noqa: E402  scripts/check/checkutil.py

TEXTS = ["The compiler crashed and the kernel panicked", "The senator voted against the bill",
         "Add two cups of flour and stir"]


def ensure_venv():
    """Re-runs this script inside the venv, creating it and installing the client first if needed."""
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    if not os.path.exists(INSTALLED):
        print(f"creating {VENV} and installing tritonclient[grpc] from PyPI", file=sys.stderr, flush=True)
        if not os.path.exists(PYTHON):
            subprocess.check_call([sys.executable, "-m", "venv", VENV])
        subprocess.check_call([PYTHON, "-m", "pip", "install", "-q", "tritonclient[grpc]", "numpy"])
        open(INSTALLED, "w").close()
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


class HTTP:
    """The HTTP KServe v2 routes of the same server, for the reference answers."""

    def __init__(self, url, key):
        self.url, self.key = url, key

    def call(self, path, body=None):
        request = urllib.request.Request(f"{self.url}{path}", data=None if body is None else json.dumps(body).encode(),
                                         method="GET" if body is None else "POST",
                                         headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)


def same_values(got, want, datatype):
    """Equal elements; floats to float32 rounding (a request may be batched with another)."""
    import numpy as np
    got = np.asarray(got).reshape(-1)
    want = np.asarray(want).reshape(-1)
    if got.shape != want.shape:
        return False
    if datatype == "BYTES":
        return [g.decode() if isinstance(g, bytes) else str(g) for g in got] == [str(w) for w in want]
    if datatype in ("FP16", "FP32", "FP64"):
        return bool(np.all(np.abs(got.astype(np.float64) - want.astype(np.float64))
                           <= 1e-5 * np.maximum(np.abs(want.astype(np.float64)), 1e-6) + 1e-6))
    return bool(np.array_equal(got.astype(np.float64), want.astype(np.float64)))


def drive(R, grpc_url, http, key):
    import grpc
    import numpy as np
    import tritonclient.grpc as grpcclient
    from tritonclient.grpc import service_pb2, service_pb2_grpc
    from tritonclient.utils import InferenceServerException
    from importlib.metadata import version

    print(f"tritonclient {version('tritonclient')}, grpc {version('grpcio')}, server {grpc_url}", flush=True)
    headers = {"authorization": f"Bearer {key}"}
    samples = os.path.join(REPO, "model_store", "samples")
    client = grpcclient.InferenceServerClient(url=grpc_url)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(grpc_url))
    metadata = tuple(headers.items())

    def read(name):
        with open(os.path.join(samples, name), "rb") as handle:
            return handle.read()

    # 1. health and metadata
    R.check("is_server_live", client.is_server_live() is True)
    R.check("is_server_ready (no token: health is exempt)", client.is_server_ready() is True)
    meta = client.get_server_metadata(headers=headers, as_json=True)
    _, http_meta = http.call("/v2")
    R.check("get_server_metadata: name and version as GET /v2", meta.get("name") == http_meta.get("name")
            and meta.get("version") == http_meta.get("version"), f"{meta} vs {http_meta}")
    _, listed = http.call("/v1/models")
    models = sorted(listed.get("models", []))
    R.check("the samples are registered", {"unet", "scenes", "fortunes"} <= set(models), short(listed))
    for model in models:
        R.check(f"is_model_ready({model})", client.is_model_ready(model, headers=headers) is True)
        got = client.get_model_metadata(model, headers=headers, as_json=True)
        _, want = http.call(f"/v2/models/{model}")
        same = got.get("name") == want.get("name") and got.get("versions") == want.get("versions") \
            and got.get("platform") == want.get("platform") \
            and [(t["name"], t["datatype"], [int(s) for s in t.get("shape", [])]) for t in got.get("inputs", [])] \
            == [(t["name"], t["datatype"], t["shape"]) for t in want.get("inputs", [])] \
            and [(t["name"], t["datatype"], [int(s) for s in t.get("shape", [])]) for t in got.get("outputs", [])] \
            == [(t["name"], t["datatype"], t["shape"]) for t in want.get("outputs", [])]
        R.check(f"get_model_metadata({model}) as GET /v2/models/{model}", same, f"{short(got)} vs {short(want)}")

    def raises(name, call, code, fragment=""):
        try:
            call()
            R.check(name, False, "no error raised")
        except InferenceServerException as error:
            R.check(name, error.status() == f"StatusCode.{code}" and fragment in error.message(),
                    f"{error.status()}: {short(error.message(), 200)}")
            print(f"  {error.status()}: {short(error.message(), 160)}", flush=True)

    # 2. inference, raw and typed, against the HTTP answer
    def compare(name, model, http_inputs, raw_inputs, typed_inputs):
        status, want = http.call(f"/v2/models/{model}/infer", {"inputs": http_inputs})
        if status != 200:
            # The HTTP route refuses it: gRPC must refuse it alike, with the same message.
            code = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 415: "INVALID_ARGUMENT"}.get(status, "?")
            raises(f"{name}: HTTP answers {status}, tritonclient gets {code} with the same message",
                   lambda: client.infer(model, raw_inputs, headers=headers), code, want.get("error", "?"))
            return
        wanted = {o["name"]: o for o in want["outputs"]}
        result = client.infer(model, raw_inputs, headers=headers)
        response = result.get_response()
        ok = response.model_name == model and response.model_version == want["model_version"] \
            and [o.name for o in response.outputs] == list(wanted) \
            and len(response.raw_output_contents) == len(wanted)
        for output in response.outputs:
            w = wanted.get(output.name, {})
            ok = ok and output.datatype == w.get("datatype") and list(output.shape) == w.get("shape") \
                and same_values(result.as_numpy(output.name), w.get("data", []), output.datatype)
        R.check(f"{name}: tritonclient infer (raw contents in, raw out) equals HTTP", ok,
                f"{short(str(response), 300)} vs {short(want, 300)}")

        request = service_pb2.ModelInferRequest(model_name=model, inputs=typed_inputs)
        typed = stub.ModelInfer(request, metadata=metadata, timeout=120)
        raw_ok = [o.name for o in typed.outputs] == list(wanted) and all(
            same_values(np.frombuffer(raw, dtype=np.dtype(numpy_type(o.datatype))) if o.datatype != "BYTES"
                        else deserialize(raw), wanted[o.name]["data"], o.datatype)
            for o, raw in zip(typed.outputs, typed.raw_output_contents))
        R.check(f"{name}: typed contents in (the JSON-equivalent form), raw out, equals HTTP", raw_ok, short(str(typed), 300))

        request.parameters["binary_data_output"].bool_param = False
        typed = stub.ModelInfer(request, metadata=metadata, timeout=120)
        typed_ok = not typed.raw_output_contents and [o.name for o in typed.outputs] == list(wanted) and all(
            same_values(typed_values(o), wanted[o.name]["data"], o.datatype) for o in typed.outputs)
        R.check(f"{name}: typed contents in and out equals HTTP", typed_ok, short(str(typed), 300))

    def numpy_type(datatype):
        return {"BOOL": "bool", "UINT8": "uint8", "INT32": "<i4", "INT64": "<i8", "FP16": "<f2", "FP32": "<f4",
                "FP64": "<f8"}[datatype]

    def deserialize(raw):
        items, offset = [], 0
        while offset < len(raw):
            length = int.from_bytes(raw[offset:offset + 4], "little")
            items.append(raw[offset + 4:offset + 4 + length])
            offset += 4 + length
        return items

    def typed_values(output):
        field = {"BOOL": "bool_contents", "UINT8": "uint_contents", "INT32": "int_contents", "INT64": "int64_contents",
                 "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents"}[output.datatype]
        return list(getattr(output.contents, field))

    def bytes_case(name, model, elements):
        raw = grpcclient.InferInput("input", [len(elements)], "BYTES")
        raw.set_data_from_numpy(np.array(elements, dtype=np.object_))
        typed = service_pb2.ModelInferRequest().InferInputTensor(
            name="input", datatype="BYTES", shape=[len(elements)])
        typed.contents.bytes_contents.extend(elements)
        http_data = [e.decode() if model in ("fortunes", "qa") else base64.b64encode(e).decode() for e in elements]
        compare(name, model, [{"name": "input", "shape": [len(elements)], "datatype": "BYTES", "data": http_data}],
                [raw], [typed])

    images = [read("scene_0.png"), read("scene_1.png")]
    if "unet" in models:
        bytes_case("unet, 2 images as BYTES", "unet", images)
        rng = np.random.default_rng(7)
        tensor = rng.standard_normal((1, 3, 96, 128)).astype(np.float32)
        raw = grpcclient.InferInput("x", list(tensor.shape), "FP32")
        raw.set_data_from_numpy(tensor)
        typed = service_pb2.ModelInferRequest().InferInputTensor(name="x", datatype="FP32", shape=list(tensor.shape))
        typed.contents.fp32_contents.extend(tensor.reshape(-1).tolist())
        compare("unet, an FP32 tensor straight to forward", "unet",
                [{"name": "x", "shape": list(tensor.shape), "datatype": "FP32", "data": tensor.reshape(-1).tolist()}],
                [raw], [typed])
    if "scenes" in models:
        bytes_case("scenes, 3 images as BYTES", "scenes", [read("dominant_car.png"), read("dominant_person.png"),
                                                            read("scene_2.png")])
    if "fortunes" in models:
        bytes_case(f"fortunes, {len(TEXTS)} texts as BYTES", "fortunes", [t.encode() for t in TEXTS])
    if "detector" in models:
        bytes_case("detector, 1 image as BYTES", "detector", [read("street_1.png")])
    if "qa" in models:
        with open(os.path.join(samples, "qa.json")) as handle:
            cases = json.load(handle)
        first = cases[0] if isinstance(cases, list) else cases
        bytes_case("qa, 1 question as BYTES", "qa", [json.dumps(first).encode()])

    # 3. errors
    one = grpcclient.InferInput("input", [1], "BYTES")
    one.set_data_from_numpy(np.array([images[0]], dtype=np.object_))
    raises("an unknown model is NOT_FOUND naming it", lambda: client.infer("no_such_model", [one], headers=headers),
           "NOT_FOUND", "no_such_model")
    # tritonclient checks shapes itself, so the mismatched request goes through the generated stub.
    bad = service_pb2.ModelInferRequest(model_name="unet", inputs=[service_pb2.ModelInferRequest().InferInputTensor(
        name="x", datatype="FP32", shape=[1, 3, 96, 128])], raw_input_contents=[bytes(4 * 3 * 96 * 127)])
    status, want = http.call("/v2/models/unet/infer", {"inputs": [{"name": "x", "shape": [1, 3, 96, 128], "datatype": "FP32",
                                                                   "data": [0.0] * (3 * 96 * 127)}]})
    try:
        stub.ModelInfer(bad, metadata=metadata, timeout=60)
        R.check("a shape that does not match the data is INVALID_ARGUMENT with the HTTP message", False, "no error raised")
    except grpc.RpcError as error:
        R.check("a shape that does not match the data is INVALID_ARGUMENT with the HTTP message",
                status == 400 and error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details() == want.get("error"),
                f"{error.code()}: {short(error.details(), 200)} vs HTTP {status}: {short(want, 200)}")
        print(f"  {error.code()}: {short(error.details(), 160)}", flush=True)
    raises("a call without the token is UNAUTHENTICATED", lambda: client.infer("unet", [one]), "UNAUTHENTICATED", "Bearer")
    many = grpcclient.InferInput("input", [8], "BYTES")
    many.set_data_from_numpy(np.array([images[0]] * 8, dtype=np.object_))
    raises("a deadline shorter than the work is DEADLINE_EXCEEDED",
           lambda: client.infer("unet", [many], headers=headers, client_timeout=0.005), "DEADLINE_EXCEEDED")
    R.check("the server still answers after the errors", client.is_model_ready("unet", headers=headers) is True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", required=True, help="the serve binary")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    args.serve = os.path.abspath(args.serve)
    ensure_venv()

    R = Report()
    work = tempfile.mkdtemp(prefix="kserve-grpc-")
    store = os.path.join(work, "model_store")
    shutil.copytree(os.path.join(REPO, "model_store"), store)
    ports = set()
    while len(ports) < 6:
        ports.add(free_port())
    http_port, management, metrics, grpc_port, ts_inference, ts_management = sorted(ports)
    config = os.path.join(work, "config.properties")
    with open(config, "w") as handle:
        handle.write(f"# written by scripts/check/kserve_grpc.py\ninference_address=http://{HOST}:{http_port}\n"
                     f"management_address=http://{HOST}:{management}\nmetrics_address=http://{HOST}:{metrics}\n"
                     f"grpc_kserve_address={HOST}:{grpc_port}\ngrpc_inference_port={ts_inference}\n"
                     f"grpc_management_port={ts_management}\n"
                     f"model_store={store}\ndisable_token_authorization=false\n")

    def serve(*flags):
        done = subprocess.run([args.serve, *flags], cwd=work, capture_output=True, text=True, timeout=600)
        return done.returncode, done.stdout + done.stderr

    started = False
    try:
        rc, out = serve("--start", "--ts-config", config, "--model-store", store, "--models", "all")
        started = R.check("serve --start --models all", rc == 0, f"rc {rc}: {short(out)}")
        if started:
            with open(os.path.join(work, "key_file.json")) as handle:
                key = json.load(handle)["inference"]["key"]
            drive(R, f"{HOST}:{grpc_port}", HTTP(f"http://{HOST}:{http_port}", key), key)
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
    print(f"\n{R.passed}/{total} checks passed")
    for name in R.failures:
        print(f"FAILED {name}")
    return 0 if not R.failures else 1


if __name__ == "__main__":
    sys.exit(main())
