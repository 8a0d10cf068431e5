#!/usr/bin/python3
"""KServe v1 check: drives `serve` with the KServe Python SDK's v1 REST client.

How to run (from the repository root):

    scripts/check/kserve-v1                                  # .build/release/serve, else .build/debug/serve
    /usr/bin/python3 scripts/check/kserve_v1.py --serve PATH [--keep]

On first use it creates a virtual environment under scripts/.cache/kserve-v1-venv and installs
the `kserve` SDK from PyPI into it, then re-runs itself there. It starts `serve --start` in a
fresh temporary folder (a copy of model_store/, random free loopback ports, token authorization
on, all three sample archives) and, with `kserve.InferenceRESTClient(RESTConfig(protocol="v1"))`:

  1. model readiness of scenes, unet and fortunes; the model list (GET /v1/models);
  2. :predict on the image samples, as {"data": <base64>} and {"b64": <base64>} (unet, scenes),
     and on texts, as strings and {"data": text} (fortunes), each prediction compared with the
     same input's /predictions/<m> answer;
  3. :explain (501), an unknown model (404, readiness and :predict), a request without the
     token (401), each raised by the client with the server's `error` message.

One line per check (PASS/FAIL), then a summary; exit status 0 only when every check passed.
The server started here is always stopped. Only 127.0.0.1 is contacted (and PyPI, once).
"""

import argparse
import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV = os.path.join(REPO, "scripts", ".cache", "kserve-v1-venv")
PYTHON = os.path.join(VENV, "bin", "python")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checkutil import HOST, free_port, short  # noqa: E402  scripts/check/checkutil.py

MODELS = ("scenes", "unet", "fortunes")
TEXTS = ["The compiler crashed and the kernel panicked", "The senator voted against the bill",
         "Add two cups of flour and stir", "The striker scored twice in the final"]


def ensure_venv():
    """Re-runs this script inside the venv, creating it and installing the SDK first if needed."""
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    if not os.path.exists(PYTHON):
        print(f"creating {VENV} and installing kserve from PyPI", file=sys.stderr, flush=True)
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
        subprocess.check_call([PYTHON, "-m", "pip", "install", "-q", "kserve"])
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


def same_prediction(got, want):
    """Equal, except that probabilities may differ by float32 rounding (instances run batched)."""
    if isinstance(want, dict) and isinstance(got, dict) and want and all(isinstance(v, float) for v in want.values()):
        return got.keys() == want.keys() and all(abs(got[k] - v) <= 1e-5 * max(abs(v), 1e-6) for k, v in want.items()) \
            and max(got, key=got.get) == max(want, key=want.get)
    return got == want


def reference(url, key, model, body, content_type):
    """The same input's /predictions/<model> answer, as JSON."""
    request = urllib.request.Request(f"{url}/predictions/{model}", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)


async def drive(R, url, key):
    import httpx
    from kserve import InferenceRESTClient, RESTConfig

    headers = {"Authorization": f"Bearer {key}"}
    samples = os.path.join(REPO, "model_store", "samples")

    def read(name):
        with open(os.path.join(samples, name), "rb") as handle:
            return handle.read()

    async with InferenceRESTClient(RESTConfig(protocol="v1", timeout=120)) as client:
        from importlib.metadata import version
        print(f"kserve {version('kserve')}, server {url}", flush=True)

        # 1. readiness and the model list
        for model in MODELS:
            ready = await client.is_model_ready(url, model, headers=headers)
            R.check(f"is_model_ready({model}) is True", ready is True, repr(ready))
        async with httpx.AsyncClient() as plain:
            listed = (await plain.get(f"{url}/v1/models", headers=headers)).json()
        R.check("GET /v1/models lists the samples", set(MODELS) <= set(listed.get("models", [])), short(listed))

        # 2. predictions against /predictions
        for model, images in (("unet", ["scene_0.png", "scene_1.png", "scene_0.jpg"]),
                              ("scenes", ["dominant_car.png", "dominant_person.png", "dominant_vegetation.png", "scene_2.png"])):
            encoded = [base64.b64encode(read(name)).decode() for name in images]
            wanted = [reference(url, key, model, read(name), "application/octet-stream") for name in images]
            for form in ("data", "b64"):
                result = await client.infer(url, {"instances": [{form: text} for text in encoded]}, model_name=model, headers=headers)
                predictions = result.get("predictions", [])
                R.check(f"{model}:predict, {len(images)} instances as {{\"{form}\": <base64>}}: one prediction each, equal to /predictions",
                        len(predictions) == len(images) and all(same_prediction(g, w) for g, w in zip(predictions, wanted)),
                        f"{short(predictions, 200)} vs {short(wanted, 200)}")
        wanted = [reference(url, key, "fortunes", text.encode(), "text/plain") for text in TEXTS]
        instances = [text if index % 2 == 0 else {"data": text} for index, text in enumerate(TEXTS)]
        result = await client.infer(url, {"instances": instances}, model_name="fortunes", headers=headers)
        predictions = result.get("predictions", [])
        R.check(f"fortunes:predict, {len(TEXTS)} texts as strings and {{\"data\": text}}: equal to /predictions",
                len(predictions) == len(TEXTS) and all(same_prediction(g, w) for g, w in zip(predictions, wanted)),
                f"{short(predictions, 200)} vs {short(wanted, 200)}")
        print(f"  fortunes labels: {[max(p, key=p.get) for p in predictions if isinstance(p, dict)]}", flush=True)

        # 3. errors as the client raises them
        async def raises(name, call, status, fragment):
            try:
                await call
                R.check(name, False, "no error raised")
            except httpx.HTTPStatusError as error:
                R.check(name, error.response.status_code == status and fragment in str(error),
                        f"{error.response.status_code}: {short(str(error), 200)}")
                print(f"  {error.response.status_code}: {short(str(error), 160)}", flush=True)

        image = {"instances": [{"data": base64.b64encode(read("scene_0.png")).decode()}]}
        await raises("unet:explain is 501 naming the model", client.explain(url, "unet", image, headers=headers), 501, "unet")
        await raises("an unknown model's :predict is 404 naming it",
                     client.infer(url, image, model_name="no_such_model", headers=headers), 404, "no_such_model")
        await raises("an unknown model's readiness is 404 naming it",
                     client.is_model_ready(url, "no_such_model", headers=headers), 404, "no_such_model")
        await raises("an instance of an unknown form is 400 naming its index",
                     client.infer(url, {"instances": [image["instances"][0], {"image": "x"}]}, model_name="unet", headers=headers),
                     400, "instances[1]")
        await raises(":predict without the token is 401", client.infer(url, image, model_name="unet"), 401, "")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", required=True, help="the serve binary")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    args.serve = os.path.abspath(args.serve)
    ensure_venv()

    R = Report()
    work = tempfile.mkdtemp(prefix="kserve-v1-")
    store = os.path.join(work, "model_store")
    shutil.copytree(os.path.join(REPO, "model_store"), store)
    ports = [free_port(), free_port(), free_port()]
    while len(set(ports)) < 3:
        ports = [free_port(), free_port(), free_port()]
    config = os.path.join(work, "config.properties")
    with open(config, "w") as handle:
        handle.write(f"# written by scripts/check/kserve_v1.py\ninference_address=http://{HOST}:{ports[0]}\n"
                     f"management_address=http://{HOST}:{ports[1]}\nmetrics_address=http://{HOST}:{ports[2]}\n"
                     f"model_store={store}\ndisable_token_authorization=false\nenable_grpc=false\n")

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
            asyncio.run(drive(R, f"http://{HOST}:{ports[0]}", key))
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

    print(f"\nSUMMARY: {R.passed + len(R.failures)} checks, {R.passed} passed, {len(R.failures)} failed")
    for name in R.failures:
        print(f"FAILED {name}")
    return 0 if not R.failures else 1


if __name__ == "__main__":
    sys.exit(main())
