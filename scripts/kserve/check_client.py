#!/usr/bin/env python3
"""Checks a running server's KServe v2 endpoints with a real Open Inference Protocol client.

Installs `tritonclient[http]` (and Pillow, for the reference pre-processing) from PyPI into a
virtual environment under scripts/.cache/ on first use, then, against the server at --url:

1. health, server and model metadata through the client;
2. the image as a BYTES input, JSON and binary tensor data, each compared with the mask
   /predictions returns for the same image;
3. the image pre-processed here (PIL bilinear resize, ToTensor, Normalize) as an FP32 input
   straight to the model's forward pass, JSON and binary, its argmax compared with that mask.

Usage (the server running, e.g. `.build/release/serve --start --models unet=unet.mar`):
    scripts/kserve/check_client.py --url 127.0.0.1:8080 --model unet --image model_store/samples/scene_0.png
The inference key is read from key_file.json when it exists (--key-file), else no token is sent.
Exit status 0 when every check passes.
"""
import argparse
import base64
import json
import os
import subprocess
import sys
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV = os.path.join(ROOT, "scripts", ".cache", "kserve-venv")
PYTHON = os.path.join(VENV, "bin", "python")


def ensure_venv():
    """Re-runs this script inside the venv, creating it and installing the client first if needed."""
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    if not os.path.exists(PYTHON):
        print(f"creating {VENV} and installing tritonclient[http] from PyPI", file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
        subprocess.check_call([PYTHON, "-m", "pip", "install", "-q", "tritonclient[http]", "pillow"])
    os.execv(PYTHON, [PYTHON, os.path.abspath(__file__)] + sys.argv[1:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="127.0.0.1:8080", help="host:port of the inference listener")
    parser.add_argument("--model", default="unet")
    parser.add_argument("--image", default=os.path.join(ROOT, "model_store", "samples", "scene_0.png"))
    parser.add_argument("--key-file", default="key_file.json")
    parser.add_argument("--size", default="96x128", help="HxW the model takes (its handler's inputSize)")
    parser.add_argument("--mean", default="0.485,0.456,0.406")
    parser.add_argument("--std", default="0.229,0.224,0.225")
    args = parser.parse_args()
    ensure_venv()

    import numpy as np
    import tritonclient.http as httpclient
    from PIL import Image

    # tritonclient adds Inference-Header-Content-Length to the dict it is given, so every call gets a copy.
    headers = {}
    if os.path.exists(args.key_file):
        with open(args.key_file) as f:
            headers["Authorization"] = "Bearer " + json.load(f)["inference"]["key"]
    height, width = (int(v) for v in args.size.split("x"))
    with open(args.image, "rb") as f:
        image = f.read()

    failures = []

    def check(name, ok, detail=""):
        print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")
        if not ok:
            failures.append(name)

    # The reference: /predictions.
    request = urllib.request.Request(f"http://{args.url}/predictions/{args.model}", data=image, headers=dict(headers), method="POST")
    with urllib.request.urlopen(request) as response:
        reference = np.frombuffer(base64.b64decode(json.load(response)["base64_prediction"]), np.uint8).reshape(height, width)
    print(f"/predictions/{args.model}: mask {reference.shape}, classes {sorted(set(reference.flatten().tolist()))}")

    client = httpclient.InferenceServerClient(url=args.url)
    check("server live", client.is_server_live(headers=dict(headers)))
    check("server ready", client.is_server_ready(headers=dict(headers)))
    check("model ready", client.is_model_ready(args.model, headers=dict(headers)))
    server = client.get_server_metadata(headers=dict(headers))
    check("server metadata", "binary_tensor_data" in server.get("extensions", []), json.dumps(server))
    metadata = client.get_model_metadata(args.model, headers=dict(headers))
    check("model metadata", metadata["name"] == args.model and metadata["inputs"], json.dumps(metadata))

    # BYTES input: the server's handler pre-processes; JSON (base64 text) and binary (raw bytes).
    for binary in (False, True):
        item = image if binary else base64.b64encode(image)
        tensor = httpclient.InferInput("image", [1], "BYTES")
        tensor.set_data_from_numpy(np.array([item], dtype=np.object_), binary_data=binary)
        output = httpclient.InferRequestedOutput("mask", binary_data=binary)
        result = client.infer(args.model, [tensor], outputs=[output], headers=dict(headers), request_id="check-bytes")
        mask = result.as_numpy("mask")
        same = mask is not None and mask.shape == (1, height, width) and np.array_equal(mask[0], reference)
        check(f"BYTES input, {'binary' if binary else 'JSON'}: mask equals /predictions", same,
              f"shape {None if mask is None else mask.shape}, id {result.get_response().get('id')}")

    # FP32 input straight to forward: the reference pipeline here, argmax of the logits there.
    mean = np.array([float(v) for v in args.mean.split(",")], np.float32).reshape(3, 1, 1)
    std = np.array([float(v) for v in args.std.split(",")], np.float32).reshape(3, 1, 1)
    pixels = np.asarray(Image.open(args.image).convert("RGB").resize((width, height), Image.BILINEAR), np.float32) / 255.0
    batch = ((pixels.transpose(2, 0, 1) - mean) / std)[None].astype(np.float32)
    for binary in (False, True):
        tensor = httpclient.InferInput("input__0", list(batch.shape), "FP32")
        tensor.set_data_from_numpy(batch, binary_data=binary)
        output = httpclient.InferRequestedOutput("output__0", binary_data=binary)
        result = client.infer(args.model, [tensor], outputs=[output], headers=dict(headers))
        logits = result.as_numpy("output__0")
        agreement = float((logits[0].argmax(axis=0) == reference).mean()) if logits is not None else 0.0
        check(f"FP32 input, {'binary' if binary else 'JSON'}: argmax agrees with /predictions", agreement >= 0.999,
              f"logits {None if logits is None else logits.shape}, {agreement:.2%} of pixels agree")

    # An error as OIP clients see it.
    try:
        client.infer("no_such_model", [tensor], headers=dict(headers))
        check("unknown model raises", False)
    except Exception as error:  # tritonclient raises InferenceServerException with the server's `error`
        check("unknown model raises with the server's message", "no_such_model" in str(error), str(error))

    print("all checks passed" if not failures else f"{len(failures)} failed: {failures}")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
