#!/usr/bin/env python3
"""The CUDA bundle's checks: `serve` from the bundle with the sample model store, one line per check.

Run by scripts/cuda/check-server (which unpacks the bundle and puts the installed PyTorch's
torch/lib on LD_LIBRARY_PATH); needs only Python with torch, no Swift and no repository.

  check_server.py run BUNDLE_DIR          the checks (exit 1 if one fails)
  check_server.py record SERVE STORE OUT  the CPU build's answers for the sample inputs, as JSON
                                           (scripts/cuda/bundle runs it with Debian's build)

Checks (GPU ones print SKIP with the reason where torch sees no GPU):
  device       workers report cuda:0 in describe with a GPU visible, cpu otherwise
  answers      masks and labels for the committed sample inputs equal the CPU build's answers
               (detector boxes within a pixel);
               mask pixels that differ only where the CPU logits tie (top two within 1e-4 of the
               logit range) are counted and printed, any other difference fails
  throughput   requests/s at concurrency 64 (batchSize 8 and 32) against the raw batched forward
               of the same module on the same GPU, in one run: target >= 0.8
  latency      c=1 p50 against the raw forward at batch 1 (printed, no target)
  precision    float16 and bfloat16 on the GPU: what the load-time check chose, mask agreement
  memory       device memory with 1 and 4 workers: one copy of the weights per device
"""
import base64
import http.client
import io
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import warnings
import zipfile
import zlib

# A pip torch without numpy warns on import; nothing here uses numpy.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

SAMPLES = "samples"
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
TEXTS = ["The compiler crashed and the kernel panicked", "The senator voted against the bill",
         "Add two cups of flour and bake for an hour", "The striker scored twice in the final minutes",
         "The telescope found a new comet near Jupiter"]
TIE = 1e-4
BOX_PIXELS = 1.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`serve --start` in a scratch folder with its own ports and no token auth; --stop on close."""

    def __init__(self, serve, store, models, extra_env=None):
        self.serve = serve
        self.folder = tempfile.mkdtemp(prefix="check-server-")
        self.inference, self.management, self.metrics = free_port(), free_port(), free_port()
        with open(os.path.join(self.folder, "config.properties"), "w") as f:
            f.write(f"inference_address=http://127.0.0.1:{self.inference}\n"
                    f"management_address=http://127.0.0.1:{self.management}\n"
                    f"metrics_address=http://127.0.0.1:{self.metrics}\ndrain_delay=0\n")
        env = dict(os.environ, **(extra_env or {}))
        self.env = env
        subprocess.run([serve, "--start", "--ncs", "--disable-token-auth", "--model-store", store,
                        "--models", models], cwd=self.folder, env=env, check=True,
                       stdout=subprocess.DEVNULL)

    def log(self):
        try:
            with open(os.path.join(self.folder, "logs", "serve.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def close(self):
        subprocess.run([self.serve, "--stop"], cwd=self.folder, env=self.env, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.folder, ignore_errors=True)

    def request(self, method, port, path, body=None, headers=None, timeout=300):
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method,
                                         headers=headers or {})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()

    def predict(self, model, body, headers=None):
        return json.loads(self.request("POST", self.inference, f"/predictions/{model}", body, headers))

    def describe(self, model):
        return json.loads(self.request("GET", self.management, f"/models/{model}"))

    def register(self, url, name, **params):
        query = "&".join(f"{k}={v}" for k, v in dict(url=url, model_name=name, synchronous="true", **params).items())
        self.request("POST", self.management, f"/models?{query}")

    def unregister(self, name):
        self.request("DELETE", self.management, f"/models/{name}")

    def scale(self, name, workers):
        self.request("PUT", self.management, f"/models/{name}?min_worker={workers}&max_worker={workers}&synchronous=true")

    def metric(self, name):
        text = self.request("GET", self.metrics, "/metrics").decode()
        return {labels: float(value) for labels, value in re.findall(rf"^{name}\{{([^}}]*)\}} (\S+)$", text, re.M)}


def read(path):
    with open(path, "rb") as f:
        return f.read()


def answers(server, store):
    """The answers to every committed sample input, in a JSON-able form."""
    samples = os.path.join(store, SAMPLES)
    result = {"masks": {}, "scenes": {}, "detector": {}, "fortunes": {}, "qa": {}}
    for name in sorted(os.listdir(samples)):
        path = os.path.join(samples, name)
        if name.startswith("scene_") and ".mask." not in name:
            result["masks"][name] = server.predict("unet", read(path))["base64_prediction"]
        elif name.startswith("dominant_"):
            scores = server.predict("scenes", read(path))
            result["scenes"][name] = max(scores, key=scores.get)
        elif name.startswith("street_"):
            detections = server.predict("detector", read(path))
            result["detector"][name] = sorted([label, box] for d in detections for label, box in d.items() if label != "score")
    for text in TEXTS:
        scores = server.predict("fortunes", text.encode())
        result["fortunes"][text] = max(scores, key=scores.get) if isinstance(scores, dict) else scores
    with open(os.path.join(samples, "qa.json")) as f:
        qa = json.load(f)
    for item in qa["seed"] + qa["heldOut"]:
        body = json.dumps({"question": item["question"], "text": item["context"]}).encode()
        answer = server.predict("qa", body, {"Content-Type": "application/json"})
        result["qa"][item["question"] + " | " + item["context"][:40]] = answer
    return result


# ---- the CPU logits of the sample U-Net, for telling argmax ties from real differences ----

def decode_png(data):
    """8-bit RGB/RGBA non-interlaced PNG -> (height, width, rows of RGB bytes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, chunks, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, "only 8-bit RGB(A) PNGs"
    channels = 3 if color == 2 else 4
    raw, stride = zlib.decompress(b"".join(chunks)), width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = previous[i]
            c = previous[i - channels] if i >= channels else 0
            if kind == 1: line[i] = (line[i] + a) & 255
            elif kind == 2: line[i] = (line[i] + b) & 255
            elif kind == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line if channels == 3 else bytes(v for j, v in enumerate(line) if j % 4 != 3)))
        previous = line
    return height, width, rows


def unet_margins(store, name):
    """Top-two margin per pixel of the U-Net's CPU logits for a 96x128 sample PNG (None if not one)."""
    import torch
    path = os.path.join(store, SAMPLES, name)
    if not name.endswith(".png"):
        return None
    height, width, rows = decode_png(read(path))
    if (height, width) != (96, 128):
        return None
    with zipfile.ZipFile(os.path.join(store, "unet.mar")) as archive:
        module = torch.jit.load(io.BytesIO(archive.read("unet.pt")), map_location="cpu").eval()
    pixels = torch.tensor(list(b"".join(rows)), dtype=torch.float32).reshape(height, width, 3).permute(2, 0, 1) / 255
    x = ((pixels - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None])[None]
    with torch.inference_mode():
        logits = module(x)[0]
    top = logits.topk(2, dim=0).values
    return ((top[0] - top[1]) / (logits.max() - logits.min())).flatten().tolist()


# ---- load generation: processes of threads, keep-alive connections ----

def _client(args):
    port, path, body, seconds, threads, start_at = args
    counts, latencies, errors = [0] * threads, [[] for _ in range(threads)], [0] * threads

    def loop(i):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.time() < start_at:
            time.sleep(0.001)
        while time.time() < start_at + seconds:
            t0 = time.perf_counter()
            try:
                connection.request("POST", path, body)
                response = connection.getresponse()
                response.read()
                if response.status == 200:
                    counts[i] += 1
                    latencies[i].append((time.perf_counter() - t0) * 1000)
                else:
                    errors[i] += 1
            except (OSError, http.client.HTTPException):
                errors[i] += 1
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.close()

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for w in workers: w.start()
    for w in workers: w.join()
    return sum(counts), [l for ls in latencies for l in ls], sum(errors)


def load(port, path, body, concurrency, seconds):
    """(requests/s, sorted latencies ms, errors) with `concurrency` connections over up to 8 processes."""
    processes = min(8, concurrency, max(1, (os.cpu_count() or 2) // 2))
    per = [concurrency // processes + (1 if i < concurrency % processes else 0) for i in range(processes)]
    start_at = time.time() + 1.0
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = pool.map(_client, [(port, path, body, seconds, n, start_at) for n in per])
    total = sum(r[0] for r in results)
    latencies = sorted(l for r in results for l in r[1])
    return total / seconds, latencies, sum(r[2] for r in results)


def raw_forward_ms(store, batch, device, seconds, dtype=None):
    """Median ms of module(x) at `batch` on `device` (synchronised), the input already there."""
    import torch
    if device == "cpu":
        torch.set_num_threads(1)  # as the server's worker (intraOpThreads 1)
    with zipfile.ZipFile(os.path.join(store, "unet.mar")) as archive:
        module = torch.jit.load(io.BytesIO(archive.read("unet.pt")), map_location=device).eval()
    x = torch.sin(torch.arange(batch * 3 * 96 * 128, dtype=torch.float32) * 0.001).reshape(batch, 3, 96, 128).to(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    times = []
    with torch.inference_mode():
        for _ in range(5):
            module(x)
        sync()
        start = time.time()
        while time.time() - start < seconds or len(times) < 5:
            t0 = time.perf_counter()
            module(x)
            sync()
            times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return times[len(times) // 2]


def write_variant(store, folder, batch_size, delay=5, workers=1, precision="float32"):
    """An unpacked archive of the sample U-Net with its own model-config."""
    os.makedirs(os.path.join(folder, "MAR-INF"), exist_ok=True)
    with zipfile.ZipFile(os.path.join(store, "unet.mar")) as archive:
        for name in ("unet.pt", "index_to_name.json", "MAR-INF/MANIFEST.json"):
            with open(os.path.join(folder, name), "wb") as f:
                f.write(archive.read(name))
    with open(os.path.join(folder, "model-config.yaml"), "w") as f:
        f.write(f"minWorkers: {workers}\nmaxWorkers: {workers}\nbatchSize: {batch_size}\nmaxBatchDelay: {delay}\n"
                f"precision: {precision}\nresponseTimeout: 120\nhandler:\n  kind: image_segmenter\n"
                f"  inputSize: [96, 128]\n  resize: bilinear\n  mean: {MEAN}\n  std: {STD}\n  numClasses: 8\n"
                "  labels: index_to_name.json\n  output: base64\n")


# ---- the run ----

class Report:
    def __init__(self):
        self.failed = 0

    def line(self, status, name, text):
        print(f"{status:<4} {name:<11} {text}", flush=True)
        self.failed += status == "FAIL"


def compare_answers(report, store, expected, got):
    def same(key, a, b):
        if key != "detector" or a is None or b is None:
            return a == b
        # Boxes are floats from the model's own regression: equal labels, corners within a pixel.
        return [l for l, _ in a] == [l for l, _ in b] and all(
            abs(x - y) <= BOX_PIXELS for (_, p), (_, q) in zip(a, b) for x, y in zip(p, q))

    for key in ("scenes", "detector", "fortunes", "qa"):
        bad = [k for k in expected[key] if not same(key, got[key].get(k), expected[key][k])]
        report.line("FAIL" if bad else "PASS", "answers",
                    f"{key}: {len(expected[key]) - len(bad)}/{len(expected[key])} equal the CPU build's"
                    + (f"; differ: {', '.join(bad[:3])} (got {[got[key].get(k) for k in bad[:3]]}, "
                       f"CPU {[expected[key][k] for k in bad[:3]]})" if bad else ""))
    ties = others = pixels = 0
    for name, mask in expected["masks"].items():
        a, b = base64.b64decode(mask), base64.b64decode(got["masks"].get(name, ""))
        if len(a) != len(b):
            others += len(a)
            continue
        pixels += len(a)
        differing = [i for i in range(len(a)) if a[i] != b[i]]
        if not differing:
            continue
        margins = unet_margins(store, name)
        for i in differing:
            if margins is not None and margins[i] < TIE:
                ties += 1
            else:
                others += 1
    report.line("FAIL" if others else "PASS", "answers",
                f"masks: {len(expected['masks'])} samples, {pixels} pixels; {others} differ, "
                f"{ties} more differ at argmax ties (top two CPU logits within {TIE:g} of their range)")


def run(bundle):
    import torch
    report = Report()
    store = os.path.join(bundle, "model_store")
    serve = os.path.join(bundle, "bin", "serve")
    gpu = torch.cuda.is_available()
    device = "cuda:0" if gpu else "cpu"
    no_gpu = "no GPU visible to torch " + torch.__version__
    with open(os.path.join(bundle, "expected.json")) as f:
        expected = json.load(f)
    print(f"bundle {bundle}; torch {torch.__version__} (CUDA {torch.version.cuda}) at "
          f"{os.path.dirname(torch.__file__)}; {torch.cuda.get_device_name(0) if gpu else no_gpu}", flush=True)

    archiver = os.path.join(bundle, "bin", "archiver")
    inspected = subprocess.run([archiver, "inspect", os.path.join(store, "unet.mar")], capture_output=True, text=True)
    said = (inspected.stdout or inspected.stderr).strip().splitlines()
    report.line("PASS" if inspected.returncode == 0 and "unet" in inspected.stdout else "FAIL", "archiver",
                f"bin/archiver inspect unet.mar: exit {inspected.returncode}, {said[0] if said else 'no output'}")

    server = Server(serve, store, "unet=unet.mar,scenes=scenes.mar,detector=detector.mar,fortunes=fortunes.mar,qa=qa.mar")
    try:
        for model in ("unet", "scenes", "detector", "fortunes", "qa"):
            devices = [w.get("device") for w in server.describe(model)[0]["workers"]]
            report.line("PASS" if devices and all(d == device for d in devices) else "FAIL", "device",
                        f"{model}: workers on {devices} (expected {device})")
        compare_answers(report, store, expected, answers(server, store))
    finally:
        server.close()

    variants = tempfile.mkdtemp(prefix="check-server-store-")
    try:
        for name in os.listdir(store):
            os.symlink(os.path.join(store, name), os.path.join(variants, name))
        for batch in (8, 32):
            write_variant(store, os.path.join(variants, f"unet_b{batch}"), batch)
        write_variant(store, os.path.join(variants, "unet_b1"), 1, delay=0)
        for precision in ("float16", "bfloat16"):
            write_variant(store, os.path.join(variants, f"unet_{precision}"), 1, precision=precision)
        throughput_and_latency(report, store, variants, serve, device, gpu)
        if gpu:
            precision_checks(report, store, variants, serve, expected)
            memory_checks(report, variants, serve)
        else:
            report.line("SKIP", "precision", f"float16 and bfloat16 on the GPU: {no_gpu}")
            report.line("SKIP", "memory", f"GPU memory with 1 and 4 workers: {no_gpu}")
    finally:
        shutil.rmtree(variants, ignore_errors=True)
    print(f"{'FAILED' if report.failed else 'passed'}: {report.failed} check(s) failed", flush=True)
    return 1 if report.failed else 0


def throughput_and_latency(report, store, variants, serve, device, gpu):
    seconds = 10 if gpu else 4
    body = read(os.path.join(store, SAMPLES, "scene_0.png"))
    server = Server(serve, variants, "unet_b8=unet_b8,unet_b32=unet_b32,unet_b1=unet_b1")
    try:
        for batch in (8, 32):
            served, latencies, errors = load(server.inference, f"/predictions/unet_b{batch}", body, 64, seconds)
            raw = batch / raw_forward_ms(store, batch, device, 3) * 1000
            ratio = served / raw
            text = (f"c=64 batchSize {batch}: {served:.0f} req/s, raw batched forward {raw:.0f} images/s "
                    f"on {device}: {ratio:.2f} (target >= 0.8), {errors} errors")
            if gpu:
                report.line("PASS" if ratio >= 0.8 and errors == 0 else "FAIL", "throughput", text)
            else:
                report.line("SKIP" if errors == 0 else "FAIL", "throughput", f"the target is for a GPU; measured anyway: {text}")
        _, latencies, errors = load(server.inference, "/predictions/unet_b1", body, 1, seconds)
        p50 = latencies[len(latencies) // 2] if latencies else float("nan")
        raw1 = raw_forward_ms(store, 1, device, 3)
        text = f"c=1 p50 {p50:.2f} ms, raw forward at batch 1 {raw1:.2f} ms on {device}: {raw1 / p50:.2f}, {errors} errors"
        report.line("PASS" if errors == 0 and latencies else "FAIL", "latency", text)
    finally:
        server.close()


def precision_checks(report, store, variants, serve, expected):
    server = Server(serve, variants, "unet_float16=unet_float16,unet_bfloat16=unet_bfloat16")
    try:
        log = server.log()
        for precision in ("float16", "bfloat16"):
            kept = re.search(rf"keeping float32: [^\n]*{precision}[^\n]*", log)
            chosen = re.search(rf"{precision}: differs by [^\n]*", log)
            samples = {n: m for n, m in expected["masks"].items()}
            same = total = 0
            for name, mask in samples.items():
                got = base64.b64decode(server.predict(f"unet_{precision}", read(os.path.join(store, SAMPLES, name)))["base64_prediction"])
                want = base64.b64decode(mask)
                total += len(want)
                same += sum(1 for a, b in zip(got, want) if a == b)
            agreement = same / total if total else 0
            decided = chosen.group(0) if chosen else kept.group(0) if kept else "no load-time decision in the log"
            report.line("PASS" if (chosen or kept) and agreement >= 0.95 else "FAIL", "precision",
                        f"{precision}: {decided}; masks agree with the CPU build's on {agreement * 100:.2f} % of pixels")
    finally:
        server.close()


def memory_checks(report, variants, serve):
    import torch
    server = Server(serve, variants, "unet_b8=unet_b8")
    try:
        readings = {}
        for workers in (1, 4):
            server.scale("unet_b8", workers)
            device_bytes = server.metric("ts_device_memory_bytes")
            free, total = torch.cuda.mem_get_info(0)
            readings[workers] = (sum(v for k, v in device_bytes.items() if "cuda:0" in k), (total - free) / 2**20)
        one, four = readings[1][0], readings[4][0]
        report.line("PASS" if one > 0 and one == four else "FAIL", "memory",
                    f"ts_device_memory_bytes cuda:0: {one / 2**20:.1f} MiB with 1 worker, {four / 2**20:.1f} MiB with 4 "
                    f"(one copy of the weights per device); device memory in use (all processes): "
                    f"{readings[1][1]:.0f} MiB, {readings[4][1]:.0f} MiB")
    finally:
        server.close()


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "run":
        sys.exit(run(os.path.abspath(sys.argv[2])))
    if len(sys.argv) == 5 and sys.argv[1] == "record":
        serve, store, out = (os.path.abspath(a) for a in sys.argv[2:])
        server = Server(serve, store, "unet=unet.mar,scenes=scenes.mar,detector=detector.mar,fortunes=fortunes.mar,qa=qa.mar")
        try:
            result = answers(server, store)
        finally:
            server.close()
        with open(out, "w") as f:
            json.dump(result, f, indent=1)
        return
    sys.exit(__doc__)


if __name__ == "__main__":
    main()
