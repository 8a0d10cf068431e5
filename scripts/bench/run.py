#!/usr/bin/python3
"""Benchmark: the server against the raw libtorch forward floor, in one run on one machine.

For each model (the small sample U-Net and a reference-size ResNet-50 U-Net with random
weights) it measures
  - the floor: a tight loop of forward passes (Swift through CTorch, plain and optimised,
    and Python torch) at batch 1 and at the batched size, one intra-op thread, and (Swift,
    float32) at batch 1 with two intra-op threads;
  - the server: requests/s and p50/p90/p99 latency from wrk (a separate process) POSTing a
    PNG at several concurrencies, with batching off (batchSize 1) and on, 1 and 2 workers, and
    1 worker with 2 intra-op threads (model-config intraOpThreads);
  - RSS with 1 and 4 workers, and the time from `serve --start` to the first prediction.
It prints a table and writes BENCHMARKS.md (ratios from this one run).

With --libtorch pytorch the server and the Swift floor use the PyTorch 2.11.0 build (libtorch from
PyPI's wheel, scripts/setup --libtorch pytorch; release build in .build-pytorch) and the Python
floor that torch (scripts/.cache/pytorch-venv); --libtorch both measures the Debian build and then
that one in the same run and adds a comparison: each raw forward against the other build, and its
share of this CPU's float32 peak (GFLOP per forward counted by torch's FlopCounterMode, peak per
core from the clock and vector width /proc/cpuinfo reports; see cpu_peak()).

With --torchserve the same run also serves the same file with TorchServe 0.12.0 and an equivalent
Python handler (scripts/bench/torchserve.py: installed into scripts/.cache, best of the
workers x threads splits, batching off and on), checks that its masks equal ours, and adds the
issue's ratios against it.

Usage: /usr/bin/python3 scripts/bench/run.py [--seconds 10] [--concurrency 1,4,16] [--models small,reference]
           [--libtorch debian|pytorch|both] [--bfloat16] [--torchserve [--ts-splits 1x1,2x1,1x2]]
           [--skip-build] [--output BENCHMARKS.md]
Not part of the tests; needs wrk (apt-get install wrk) and Debian's python3-torch.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "scripts", "bench")
CACHE = os.path.join(ROOT, "scripts", ".cache", "bench")
# The two builds: where `swift build -c release` puts them, and the Python whose torch is the same
# libtorch version (the Python floor).
BUILDS = {
    "debian": {"title": "Debian's libtorch 1.13.1", "release": os.path.join(ROOT, ".build", "release"),
               "scratch": [], "python": "/usr/bin/python3"},
    "pytorch": {"title": "PyTorch 2.11.0's libtorch (PyPI wheel)", "release": os.path.join(ROOT, ".build-pytorch", "release"),
                "scratch": ["--scratch-path", ".build-pytorch"],
                "python": os.path.join(ROOT, "scripts", ".cache", "pytorch-venv", "bin", "python")},
}
IMAGE = os.path.join(ROOT, "model_store", "samples", "scene_0.png")
# The normalisation of the sample U-Net (model_store/unet.mar) and our image_segmenter's default;
# written into the benchmark archives and given to TorchServe's handler alike.
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def run(command, **kwargs):
    return subprocess.run(command, check=True, text=True, capture_output=True, **kwargs).stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse(line):
    return {k: (float(v) if re.fullmatch(r"[0-9.]+", v) else v) for k, v in re.findall(r"(\w+)=(\S+)", line)}


def write_archive(folder, model_pt, batch_size, delay, workers=1, precision="float32", threads=1):
    os.makedirs(os.path.join(folder, "MAR-INF"), exist_ok=True)
    shutil.copy(model_pt, os.path.join(folder, "model.pt"))
    with open(os.path.join(folder, "model-config.yaml"), "w") as f:
        f.write(f"minWorkers: {workers}\nmaxWorkers: {workers}\nbatchSize: {batch_size}\nmaxBatchDelay: {delay}\n"
                f"precision: {precision}\nintraOpThreads: {threads}\n"
                "handler:\n  kind: image_segmenter\n  inputSize: [96, 128]\n"
                f"  mean: {MEAN}\n  std: {STD}\n")
    manifest = {"createdOn": "01/01/2026 00:00:00", "runtime": "python", "archiverVersion": "0.12.0",
                "model": {"modelName": os.path.basename(folder), "serializedFile": "model.pt",
                          "handler": "image_segmenter", "modelVersion": "1.0", "configFile": "model-config.yaml"}}
    with open(os.path.join(folder, "MAR-INF", "MANIFEST.json"), "w") as f:
        json.dump(manifest, f)


class Server:
    """serve --start in a scratch folder with its own ports; --stop on exit."""

    def __init__(self, store, models, build="debian"):
        self.release = BUILDS[build]["release"]
        self.folder = os.path.join(CACHE, "run")
        shutil.rmtree(self.folder, ignore_errors=True)
        os.makedirs(self.folder)
        self.inference, self.management, self.metrics = free_port(), free_port(), free_port()
        with open(os.path.join(self.folder, "config.properties"), "w") as f:
            f.write(f"inference_address=http://127.0.0.1:{self.inference}\n"
                    f"management_address=http://127.0.0.1:{self.management}\n"
                    f"metrics_address=http://127.0.0.1:{self.metrics}\ndrain_delay=0\nenable_grpc=false\n")
        started = time.time()
        run([os.path.join(self.release, "serve"), "--start", "--ncs", "--disable-token-auth",
             "--model-store", store, "--models", models], cwd=self.folder)
        first = None
        with open(IMAGE, "rb") as f:
            body = f.read()
        name = models.split(",")[0].split("=")[0]
        while first is None and time.time() - started < 120:
            try:
                urllib.request.urlopen(urllib.request.Request(
                    f"http://127.0.0.1:{self.inference}/predictions/{name}", data=body, method="POST"), timeout=30).read()
                first = time.time() - started
            except Exception:
                time.sleep(0.05)
        self.start_to_first_prediction = first
        # Start-up models load one after another; describe's loadTimes says how long each took.
        self.load_and_warm_up_s = 0.0
        for label in [m.split("=")[0] for m in models.split(",")]:
            described = json.load(urllib.request.urlopen(f"http://127.0.0.1:{self.management}/models/{label}", timeout=30))
            times = described[0].get("loadTimes") or {}
            self.load_and_warm_up_s += (times.get("loadMs", 0) + times.get("warmUpMs", 0)) / 1000
        with open(os.path.join(self.folder, "logs", "serve.pid")) as f:
            self.pid = int(f.read().strip())

    def rss_mib(self):
        with open(f"/proc/{self.pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) / 1024

    def scale(self, model, workers):
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.management}/models/{model}?min_worker={workers}&synchronous=true", method="PUT")
        urllib.request.urlopen(request, timeout=300).read()

    def stop(self):
        subprocess.run([os.path.join(self.release, "serve"), "--stop"], cwd=self.folder, capture_output=True)


def wrk(port, model, concurrency, seconds):
    out = run(["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "30s", "-s", os.path.join(BENCH, "post.lua"),
               f"http://127.0.0.1:{port}/predictions/{model}"], env=dict(os.environ, BENCH_IMAGE=IMAGE))
    line = next(l for l in out.splitlines() if l.startswith("RESULT"))
    return parse(line)


def drain(port, model):
    """One request, answered once what an earlier run left queued is done (a server goes on with
    requests wrk has stopped waiting for): the next point starts on an idle server."""
    with open(IMAGE, "rb") as f:
        body = f.read()
    try:
        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/predictions/{model}", data=body,
                                                      method="POST", headers={"Content-Type": "image/png"}),
                               timeout=600).read()
    except Exception as error:  # noqa: BLE001 - the next wrk run reports errors
        print(f" drain {model}: {error}", flush=True)


def floor(model_pt, batch, seconds, threads=1, bfloat16=None, python=True, build="debian"):
    """Median ms of a forward pass: {"swift plain", "swift optimized"[, "swift bfloat16"][, "python plain"]}
    (a Swift variant that fails gives "swift VARIANT failed": its message). bfloat16 defaults to --bfloat16."""
    bfloat16 = BF16 if bfloat16 is None else bfloat16
    results = {}
    for line in run([os.path.join(BUILDS[build]["release"], "forward-bench"), model_pt, "--batch", str(batch), "--threads", str(threads),
                     "--seconds", str(seconds), "--bfloat16", "1" if bfloat16 else "0"]).splitlines():
        values = parse(line)
        if "median_ms" in values:
            results["swift " + line.split()[1]] = values["median_ms"]
        else:
            results["swift " + line.split()[1] + " failed"] = line.split(":", 1)[-1].strip()
    if python:
        python = parse(run([BUILDS[build]["python"], os.path.join(BENCH, "python_forward.py"), model_pt, str(batch),
                            str(threads), str(seconds)]))
        results["python plain"] = python["median_ms"]
    return results


def prepare_models(names):
    """{label: TorchScript path}: the sample U-Net unpacked from model_store/unet.mar, the
    reference-size one generated once (random weights) into scripts/.cache."""
    os.makedirs(CACHE, exist_ok=True)
    models = {}
    if "small" in names:
        small = os.path.join(CACHE, "unet_small.pt")
        run(["unzip", "-o", "-j", "-q", os.path.join(ROOT, "model_store", "unet.mar"), "unet.pt", "-d", CACHE])
        os.replace(os.path.join(CACHE, "unet.pt"), small)
        models["small"] = small
    if "reference" in names:
        reference = os.path.join(CACHE, "unet_r50.pt")
        if not os.path.exists(reference):
            print(run(["/usr/bin/python3", os.path.join(BENCH, "make_reference_unet.py"), reference]), end="")
        models["reference"] = reference
    return models


def measure_server(build, name, model_pt, args, concurrencies, torchserve):
    """One model on one build: the raw forward floors, then the server's points (wrk), RSS."""
    entry = {"floor_b1": floor(model_pt, 1, args.seconds, build=build),
             f"floor_b{args.batch}": floor(model_pt, args.batch, args.seconds, build=build),
             "floor_b1_t2": floor(model_pt, 1, args.seconds, threads=2, bfloat16=False, python=False, build=build)}
    print(" floor", entry, flush=True)
    store = os.path.join(CACHE, "store")
    shutil.rmtree(store, ignore_errors=True)
    write_archive(os.path.join(store, "b1"), model_pt, 1, 0)
    write_archive(os.path.join(store, f"b{args.batch}"), model_pt, args.batch, 5)
    # Our own split across both cores: 2 workers x 1 intra-op thread (BENCHMARKS.md, BLAS matrix).
    write_archive(os.path.join(store, "b1w2"), model_pt, 1, 0, workers=2)
    write_archive(os.path.join(store, f"b{args.batch}w2"), model_pt, args.batch, 5, workers=2)
    # Both cores for one request at a time: 1 worker x 2 intra-op threads.
    write_archive(os.path.join(store, "b1t2"), model_pt, 1, 0, threads=2)
    bf16 = "swift bfloat16" in entry["floor_b1"]
    if bf16:
        write_archive(os.path.join(store, "b1bf"), model_pt, 1, 0, precision="bfloat16")
        write_archive(os.path.join(store, "b1w2bf"), model_pt, 1, 0, workers=2, precision="bfloat16")
        write_archive(os.path.join(store, f"b{args.batch}w2bf"), model_pt, args.batch, 5, workers=2,
                      precision="bfloat16")
    server = Server(store, ",".join(f"{label}={label}" for label in labels(args.batch, bf16)), build=build)
    try:
        entry["start_to_first_prediction_s"] = server.start_to_first_prediction
        entry["load_and_warm_up_s"] = server.load_and_warm_up_s
        if torchserve:
            entry["masks"] = torchserve.fetch_masks(server.inference, "b1", torchserve.sample_images())
        for label in labels(args.batch, bf16):
            for c in concurrencies:
                result = wrk(server.inference, label, c, args.seconds)
                drain(server.inference, label)
                entry[f"{label}_c{c}"] = result
                print(f" {label} c={c}", result, flush=True)
        entry["rss_1_worker_mib"] = server.rss_mib()
        server.scale("b1", 4)
        entry["rss_4_workers_mib"] = server.rss_mib()
    finally:
        server.stop()
    return entry


def cpu_peak():
    """This machine's float32 peak per core, from /proc/cpuinfo: the clock it reports ("cpu MHz",
    the nominal clock in a VM; boost can be higher) x float32 lanes per vector (16 with AVX-512,
    8 with AVX2) x 2 with FMA (a multiply and an add per lane) x 2 vector FMA units per core (AMD
    Zen 2 to 4 and Intel cores since Haswell have two; a CPU with one halves the figure)."""
    with open("/proc/cpuinfo") as f:
        text = f.read()
    mhz = float(re.search(r"cpu MHz\s*:\s*([0-9.]+)", text).group(1))
    flags = set(re.search(r"^flags\s*:(.*)$", text, re.M).group(1).split())
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags or "avx" in flags else 4
    fma = 2 if "fma" in flags else 1
    units = 2
    family = re.search(r"cpu family\s*:\s*(\d+)", text)
    return {"mhz": mhz, "lanes": lanes, "fma": fma, "units": units,
            "gflops_per_core": mhz / 1000 * lanes * fma * units,
            "flags": sorted(f for f in flags if f.startswith("avx512") or f in ("avx2", "fma", "amx_bf16")),
            "vendor_family": (re.search(r"vendor_id\s*:\s*(\S+)", text).group(1), int(family.group(1)) if family else None)}


def forward_gflop(model_pt):
    """GFLOP of one forward at batch 1, 96x128, counted by torch's FlopCounterMode (2 per
    multiply-add of the convolutions and matrix products) in the PyTorch 2 venv; None without it."""
    python = BUILDS["pytorch"]["python"]
    if not os.path.exists(python):
        return None
    code = ("import sys, torch\nfrom torch.utils.flop_counter import FlopCounterMode\n"
            "m = torch.jit.load(sys.argv[1]).eval()\n"
            "with torch.no_grad(), FlopCounterMode(display=False) as c:\n    m(torch.randn(1, 3, 96, 128))\n"
            "print(c.get_total_flops() / 1e9)")
    try:
        return float(run([python, "-c", code, model_pt]).strip().splitlines()[-1])
    except (subprocess.CalledProcessError, ValueError):
        return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--models", default="small,reference")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--torchserve", action="store_true",
                        help="also load TorchServe 0.12.0 on the same file (scripts/bench/torchserve.py)")
    parser.add_argument("--ts-splits", default="1x1,2x1,1x2", help="TorchServe workers x threads splits to try")
    parser.add_argument("--skip-build", action="store_true", help="use the release builds as they are (smoke tests)")
    parser.add_argument("--libtorch", choices=["debian", "pytorch", "both"], default="debian",
                        help="which build: Debian's libtorch 1.13 (.build), PyTorch 2.11.0's (.build-pytorch), or both in one run")
    parser.add_argument("--bfloat16", action="store_true",
                        help="also measure model-config precision: bfloat16 (floor; server with batching off"
                             " on 1 and 2 workers, and batching on with 2 workers)")
    parser.add_argument("--output", default=os.path.join(ROOT, "BENCHMARKS.md"),
                        help="markdown file to write (its '## Notes' section is kept)")
    args = parser.parse_args()
    global BF16
    BF16 = args.bfloat16
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    os.makedirs(CACHE, exist_ok=True)
    torchserve = None
    if args.torchserve:
        import torchserve  # scripts/bench/torchserve.py
        print(torchserve.setup(), flush=True)

    builds = ["debian", "pytorch"] if args.libtorch == "both" else [args.libtorch]
    for build in builds:
        env = dict(os.environ)
        if build == "pytorch":
            env["LIBTORCH_DIR"] = run([os.path.join(ROOT, "scripts", "setup"), "--libtorch", "pytorch"], cwd=ROOT).splitlines()[-1]
        if not args.skip_build:
            for product in ("serve", "forward-bench"):
                subprocess.run(["swift", "build", "-c", "release", *BUILDS[build]["scratch"], "--product", product],
                               cwd=ROOT, check=True, env=env)
    models = prepare_models(args.models)

    report = {"cpu": run(["sh", "-c", "nproc; grep -m1 'model name' /proc/cpuinfo"]).split("\n")[:2],
              "peak": cpu_peak(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "builds": {},
              "gflop": {name: forward_gflop(model_pt) for name, model_pt in models.items()},
              "blas": os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")}
    torchserve_runs = {}
    for build in builds:
        report["builds"][build] = {"models": {}}
        for name, model_pt in models.items():
            print(f"== {name} on the {build} build: {model_pt}", flush=True)
            entry = measure_server(build, name, model_pt, args, concurrencies, torchserve)
            if torchserve:
                # TorchServe (Debian's Python torch 1.13) is measured once per model, against
                # whichever build runs first; every build's ratios are taken against that run.
                if name not in torchserve_runs:
                    ts = torchserve.measure(model_pt, name, concurrencies, args.seconds, args.batch, 5,
                                            torchserve.parse_splits(args.ts_splits), MEAN, STD,
                                            mask_files=torchserve.sample_images())
                    torchserve_runs[name] = ts
                ts = dict(torchserve_runs[name])
                ts["mask_comparison"] = torchserve.compare_masks(entry["masks"], ts["masks"])
                print(" " + torchserve.mask_line(ts["mask_comparison"]), flush=True)
                entry["torchserve"] = ts
            report["builds"][build]["models"][name] = entry
    with open(os.path.join(CACHE, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    write_markdown(report, args, concurrencies)


BF16 = False


def labels(batch, bf16=False):
    """The server configurations measured: batching off / on, with 1 and with 2 workers, batching
    off with 1 worker of 2 intra-op threads, and where the model runs in bfloat16 (--bfloat16 and
    the floor managed it) that model converted (batching off with 1 and 2 workers, batching on
    with 2 workers). Labels ending in "bf" are the bfloat16 ones."""
    return (["b1", f"b{batch}", "b1w2", f"b{batch}w2", "b1t2"]
            + (["b1bf", "b1w2bf", f"b{batch}w2bf"] if bf16 else []))


def describe(label, batch):
    """A table row's name for a configuration label."""
    bf = label.endswith("bf")
    label = label.removesuffix("bf")
    if label == "b1t2":
        return "batch off, 1 worker × 2 threads" + (", bfloat16" if bf else "")
    text = "batch off" if label in ("b1", "b1w2") else f"batch {batch}, 5 ms"
    return text + (", 2 workers" if label.endswith("w2") else "") + (", bfloat16" if bf else "")


def write_markdown(report, args, concurrencies):
    b = args.batch
    shown, skip = [], False  # the command as it is to be repeated: without --skip-build and --output
    for a in sys.argv[1:]:
        if skip or a == "--skip-build" or a.startswith("--output"):
            skip = a == "--output"
            continue
        shown.append(a)
    command = " ".join(["/usr/bin/python3 scripts/bench/run.py"] + shown)
    lines = ["# Benchmarks", "",
             f"Measured {report['date']} on this project's development machine ({report['cpu'][0].strip()} cores, "
             f"{report['cpu'][1].split(':')[-1].strip()}), "
             + " and ".join(BUILDS[build]["title"] for build in report["builds"])
             + f" (CPU); BLAS {report['blas']} for Debian's libtorch and TorchServe, the PyPI libtorch's own statically linked MKL for that build; "
             "one intra-op thread per worker unless a row says 2 threads, "
             "one worker per model unless a row says 2 workers, wrk with one thread on the same machine. Ratios are from this one run; absolute times on "
             "this shared 2-core machine are noisy and only the ratios are meant to be quoted.", "",
             "Command:", "", "```sh", command.strip(), "```", ""]
    several = len(report["builds"]) > 1
    for build, name, e in ((build, name, e) for build, results in report["builds"].items()
                           for name, e in results["models"].items()):
        f1 = e["floor_b1"]
        best1 = min(f1["swift plain"], f1["swift optimized"])
        fb = e[f"floor_b{b}"]
        best_per_item = min(best1, min(fb["swift plain"], fb["swift optimized"]) / b)
        floor_rps = 1000 / best_per_item
        bf_head, bf_rule = (" Swift bfloat16 |", "---|") if "swift bfloat16" in f1 else ("", "")
        bf1 = f" {f1['swift bfloat16']:.2f} |" if bf_head else ""
        bfb = f" {fb['swift bfloat16']:.2f} |" if bf_head else ""
        f1t2 = e["floor_b1_t2"]
        best1t2 = min(f1t2["swift plain"], f1t2["swift optimized"])
        lines += [f"## {name} U-Net" + (f", {BUILDS[build]['title']}" if several else ""), "",
                  f"| raw forward (median ms) | Swift plain | Swift optimised | Python torch |{bf_head}", f"|---|---|---|---|{bf_rule}",
                  f"| batch 1 | {f1['swift plain']:.2f} | {f1['swift optimized']:.2f} | {f1['python plain']:.2f} |{bf1}",
                  f"| batch {b} | {fb['swift plain']:.2f} | {fb['swift optimized']:.2f} | {fb['python plain']:.2f} |{bfb}",
                  f"| batch 1, 2 threads | {f1t2['swift plain']:.2f} | {f1t2['swift optimized']:.2f} | — |{' — |' if bf_head else ''}",
                  "",
                  f"Floor (float32): {best1:.2f} ms per request at batch 1; best per-item throughput {floor_rps:.1f}/s.", "",
                  *([f"bfloat16: not measured, libtorch 1.13 fails on this model in bfloat16 ({f1['swift bfloat16 failed'][:160]}); "
                     "`precision: bfloat16` keeps float32 for it (checked at load).", ""] if "swift bfloat16 failed" in f1 else []),
                  "| server | concurrency | requests/s | p50 ms | p90 ms | p99 ms | errors |", "|---|---|---|---|---|---|---|"]
        for label in labels(b, "b1bf_c1" in e):
            for c in concurrencies:
                r = e[f"{label}_c{c}"]
                lines.append(f"| {describe(label, b)} | {c} | {r['rps']:.1f} | {r['p50_ms']:.2f} | "
                             f"{r['p90_ms']:.2f} | {r['p99_ms']:.2f} | {int(r['errors'] + r['non2xx'])} |")
        c1 = e["b1_c1"]
        top = max(concurrencies)
        lines += ["", "| ratio | value | target |", "|---|---|---|",
                  f"| p50 at c=1 / raw forward at batch 1 | {c1['p50_ms'] / best1:.3f} | ≤ 1.05 |",
                  f"| p50 at c=1, 1 worker × 2 threads / raw forward at batch 1 with 2 threads | "
                  f"{e['b1t2_c1']['p50_ms'] / best1t2:.3f} | ≤ 1.05 |",
                  f"| throughput at c={top}, batching off / best raw throughput | {e[f'b1_c{top}']['rps'] / floor_rps:.3f} | ≥ 0.95 |",
                  f"| throughput at c={top}, batching on / off | {e[f'b{b}_c{top}']['rps'] / e[f'b1_c{top}']['rps']:.3f} | ≥ 1 |",
                  f"| start to first prediction ({len(labels(b, 'b1bf_c1' in e))} archives loaded and warmed up first: "
                  f"{e['load_and_warm_up_s']:.2f} s by describe's loadTimes) | {e['start_to_first_prediction_s']:.2f} s, "
                  f"{e['start_to_first_prediction_s'] - e['load_and_warm_up_s']:.2f} s besides loading | ≤ 1 s + load |",
                  f"| RSS 1 worker / 4 workers | {e['rss_1_worker_mib']:.0f} / {e['rss_4_workers_mib']:.0f} MiB "
                  f"(+{(e['rss_4_workers_mib'] - e['rss_1_worker_mib']) / 3:.1f} MiB per extra worker) | ≤ 50 MiB per worker |", ""]
        if "torchserve" in e:
            lines += torchserve_section(name, e, concurrencies, b)
    lines += builds_section(report, b)
    # Hand-written analysis below "## Notes" survives a new run.
    path = args.output
    notes = ""
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
        if "\n## Notes" in text:
            notes = text[text.index("\n## Notes"):]
    with open(path, "w") as f:
        f.write("\n".join(lines) + notes)
    print("\n".join(lines))


def builds_section(report, b):
    """Each raw forward (median ms) per build, the second build against the first, and each
    forward's share of the CPU's float32 peak; then the server's c=1 p50 and best requests/s."""
    peak = report["peak"]
    lines = ["## Raw forward against the CPU's peak" + (" on both libtorch builds" if len(report["builds"]) > 1 else ""), "",
             f"Peak float32 per core: {peak['gflops_per_core']:.1f} GFLOP/s = {peak['mhz']:.0f} MHz (the clock /proc/cpuinfo "
             f"reports) × {peak['lanes']} float32 lanes ({'AVX-512' if peak['lanes'] == 16 else 'AVX2'}) × {peak['fma']} "
             f"(FMA) × {peak['units']} vector FMA units per core. CPU flags: {', '.join(peak['flags'])}. "
             "GFLOP per forward by torch's FlopCounterMode (2 per multiply-add) at batch 1, 96×128: "
             + ", ".join(f"{name} {g:.2f}" for name, g in report["gflop"].items() if g) + ". "
             "Share of peak = GFLOP per image / seconds per image / (peak per core × threads); above 100 % means the "
             "kernels do fewer multiplications than a direct convolution (Winograd or FFT algorithms), not a faster CPU.", ""]
    builds = list(report["builds"])
    head = "| model | forward | " + " | ".join(f"{BUILDS[x]['title']} ms (share of peak)" for x in builds)
    head += f" | {builds[1]} / {builds[0]} |" if len(builds) == 2 else " |"
    lines += [head, "|" + "---|" * (len(builds) + 2 + (len(builds) == 2))]
    for name in report["builds"][builds[0]]["models"]:
        gflop = report["gflop"].get(name)
        for key, batch, threads in (("floor_b1", 1, 1), (f"floor_b{b}", b, 1), ("floor_b1_t2", 1, 2)):
            for variant in ("swift plain", "swift optimized", "swift bfloat16", "python plain"):
                cells, times = [], []
                for x in builds:
                    value = report["builds"][x]["models"][name][key].get(variant)
                    times.append(value)
                    if value is None:
                        failed = report["builds"][x]["models"][name][key].get(variant + " failed")
                        cells.append("fails" if failed else "—")
                        continue
                    share = (f" ({gflop * batch / (value / 1000) / (peak['gflops_per_core'] * threads) * 100:.0f} %)"
                             if gflop and "bfloat16" not in variant else "")
                    cells.append(f"{value:.2f}{share}")
                if all(t is None for t in times):
                    continue
                ratio = (f" | {times[1] / times[0]:.2f}" if len(builds) == 2 and None not in times else
                         " | —" if len(builds) == 2 else "")
                what = f"{variant.replace('swift ', 'Swift ').replace('python', 'Python')}, batch {batch}" + (", 2 threads" if threads == 2 else "")
                lines.append(f"| {name} | {what} | " + " | ".join(cells) + ratio + " |")
    lines += ["", "| model | server (float32) | " + " | ".join(BUILDS[x]["title"] for x in builds) + " |",
              "|" + "---|" * (len(builds) + 2)]
    for name in report["builds"][builds[0]]["models"]:
        p50s, tops = [], []
        for x in builds:
            e = report["builds"][x]["models"][name]
            points = [(k, v) for k, v in e.items() if isinstance(v, dict) and "rps" in v and not k.split("_c")[0].endswith("bf")
                      and v["errors"] + v["non2xx"] == 0 and v["requests"] > 0]
            c1 = [v["p50_ms"] for k, v in points if k.endswith("_c1")]
            best = max(points, key=lambda kv: kv[1]["rps"], default=None)
            p50s.append(f"{min(c1):.2f} ms" if c1 else "—")
            tops.append(f"{best[1]['rps']:.1f}/s ({describe(best[0].split('_c')[0], b)}, c={best[0].split('_c')[1]})" if best else "—")
        lines.append(f"| {name} | best p50 at c=1 | " + " | ".join(p50s) + " |")
        lines.append(f"| {name} | best requests/s | " + " | ".join(tops) + " |")
    return lines + [""]


def torchserve_section(name, e, concurrencies, b):
    """TorchServe's table and the issue's ratios against it (targets: reference ≥ 3×, small ≥ 2×
    TorchServe's best requests/s; reference c=1 p50 ≤ 0.35× TorchServe's)."""
    import torchserve
    ts = e["torchserve"]
    lines = torchserve.markdown(ts, concurrencies)
    top, fastest = torchserve.best(ts)
    def points(chosen, only=None):
        """(label, c, point) of the chosen labels' points with answers and no errors (c=only if given)."""
        return [(label, c, e[f"{label}_c{c}"]) for label in chosen for c in concurrencies
                if (only is None or c == only) and f"{label}_c{c}" in e and e[f"{label}_c{c}"]["requests"] > 0
                and e[f"{label}_c{c}"]["errors"] + e[f"{label}_c{c}"]["non2xx"] == 0]
    def best_of(chosen):
        return max(points(chosen), key=lambda x: x[2]["rps"], default=None)
    def fastest_of(chosen):
        """The lowest p50 at c=1."""
        return min(points(chosen, only=1), key=lambda x: x[2]["p50_ms"], default=None)
    measured = labels(b, "b1bf_c1" in e)
    float32 = [label for label in measured if not label.endswith("bf")]
    bfloat16 = [label for label in measured if label.endswith("bf")]
    throughput_target = {"reference": "≥ 3", "small": "≥ 2"}.get(name, "—")
    latency_target = "≤ 0.35" if name == "reference" else "— (≤ 0.35 on the reference model)"
    peaks = [p for r in ts["runs"] if r["workers"] > 1 for p in r["worker_peak_mib"]]
    lines += ["", torchserve.mask_line(ts["mask_comparison"]), "",
              "| ratio against TorchServe | value | target |", "|---|---|---|"]
    for prefix, chosen in [("our best", float32),
                           ("with `precision: bfloat16` (other arithmetic than TorchServe's float32): best", bfloat16)]:
        our_top, our_fastest = best_of(chosen), fastest_of(chosen)
        if top and our_top:
            lines.append(f"| {prefix} requests/s ({our_top[2]['rps']:.1f}, {describe(our_top[0], b)}, c={our_top[1]}) / "
                         f"TorchServe's best ({top[2]['rps']:.1f}) | {our_top[2]['rps'] / top[2]['rps']:.2f} | "
                         f"{throughput_target} |")
        if fastest and our_fastest:
            lines.append(f"| {prefix} p50 at c=1 ({our_fastest[2]['p50_ms']:.2f} ms, {describe(our_fastest[0], b)}) / "
                         f"TorchServe's best ({fastest[2]['p50_ms']:.2f} ms) | "
                         f"{our_fastest[2]['p50_ms'] / fastest[2]['p50_ms']:.3f} | {latency_target} |")
    if peaks:
        lines.append(f"| RSS per extra worker: ours / TorchServe's (peak per worker process) | "
                     f"{(e['rss_4_workers_mib'] - e['rss_1_worker_mib']) / 3:.1f} / {sum(peaks) / len(peaks):.0f} MiB | "
                     f"≤ 50 MiB (TorchServe 340–530) |")
    return lines + [""]


if __name__ == "__main__":
    main()
