#!/usr/bin/python3
"""TorchServe 0.12.0 under the same load as our server (issue 7, part 4): same TorchScript file,
same machine, same BLAS, same load generator (wrk + scripts/bench/post.lua POSTing the same PNG).

Setup, as issue 7 gives it, without touching the system's Python: TorchServe 0.12.0 and
torch-model-archiver 0.12.0 from PyPI for Debian's /usr/bin/python3, installed with
  pip install --break-system-packages --no-deps --target scripts/.cache/torchserve-site \
      torchserve==0.12.0 torch-model-archiver==0.12.0 enum-compat
and found through PYTHONPATH (the Java frontend passes its environment on to the Python
workers); Debian's python3-packaging, python3-psutil, python3-pil, python3-torchvision and
python3-torch (apt-get install -y when missing); the machine's Java 17.

The handler (scripts/bench/ts_unet_handler.py) does what our image_segmenter does: PIL decode,
Resize to 96x128, ToTensor, Normalize with the model's mean/std, forward under inference_mode
on the module as loaded, argmax, base64 of the uint8 mask. torch.set_num_threads comes from
the archive (one .mar per thread count). TorchServe starts with --ncs --disable-token-auth and
enable_model_api=true on random free loopback ports, in scripts/.cache/bench/torchserve/run
(its pid file there too, through TMPDIR). For each workers x threads split (default 1x1, 2x1,
1x2) the model is registered with batching off (batch_size=1) and on (batch_size, max_batch_delay),
warmed up, loaded at each concurrency, and the workers' peak RSS read; then unregistered.

Standalone:  /usr/bin/python3 scripts/bench/torchserve.py --models small --seconds 3 --concurrency 1,4
From run.py: /usr/bin/python3 scripts/bench/run.py --torchserve ...   (one run: floor, our server, TorchServe)
With --check-masks the standalone run also starts our server (.build/release/serve) on the same
file and checks that both return the same mask for every sample image.
"""
import argparse
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402  (scripts/bench/run.py: paths, wrk, free ports, our server)

PYTHON = "/usr/bin/python3"
SITE = os.path.join(bench.ROOT, "scripts", ".cache", "torchserve-site")
VERSION = "0.12.0"
PACKAGES = [f"torchserve=={VERSION}", f"torch-model-archiver=={VERSION}", "enum-compat"]
HANDLER = os.path.join(bench.BENCH, "ts_unet_handler.py")
WORK = os.path.join(bench.CACHE, "torchserve")
SAMPLES = os.path.join(bench.ROOT, "model_store", "samples")
# Debian packages the TorchServe worker and the handler import, by module.
DEBIAN = {"packaging": "python3-packaging", "psutil": "python3-psutil", "PIL": "python3-pil",
          "torchvision": "python3-torchvision", "torch": "python3-torch", "numpy": "python3-numpy",
          "yaml": "python3-yaml"}


def log(*args):
    print(*args, flush=True)


def setup():
    """Install TorchServe into scripts/.cache/torchserve-site (once) and what it needs from Debian."""
    version_file = os.path.join(SITE, "ts", "version.txt")
    installed = open(version_file).read().strip() if os.path.exists(version_file) else None
    if installed != VERSION or not os.path.exists(os.path.join(SITE, "model_archiver")):
        log(f"installing TorchServe {VERSION} into {os.path.relpath(SITE, bench.ROOT)}")
        subprocess.run([PYTHON, "-m", "pip", "install", "--quiet", "--break-system-packages", "--no-deps",
                        "--upgrade", "--target", SITE] + PACKAGES, check=True)
    missing = [package for module, package in DEBIAN.items()
               if subprocess.run([PYTHON, "-c", f"import {module}"], capture_output=True).returncode != 0]
    if missing:
        log("apt-get install -y", " ".join(missing))
        subprocess.run(["apt-get", "install", "-y", "-q"] + missing, check=True)
    java = subprocess.run(["java", "-version"], capture_output=True, text=True)
    if java.returncode != 0:
        raise SystemExit("TorchServe needs Java 11+ on PATH (apt-get install -y openjdk-17-jre-headless)")
    return (java.stderr.splitlines() or ["java ?"])[0]


def environment(tmp=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = SITE + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if tmp:
        env["TMPDIR"] = tmp  # TorchServe's pid file (tempfile.gettempdir()) lives here, not in /tmp
        env["TEMP"] = tmp    # java.io.tmpdir: where archives are unpacked
    return env


def archive(model_pt, store, name, threads, mean, std, input_size=(96, 128)):
    """torch-model-archiver on the same TorchScript file, with our handler and its settings."""
    source = os.path.join(WORK, "src", name)
    shutil.rmtree(source, ignore_errors=True)
    os.makedirs(source)
    settings = os.path.join(source, "bench_handler.json")
    with open(settings, "w") as f:
        json.dump({"threads": threads, "inputSize": list(input_size), "mean": mean, "std": std}, f)
    os.makedirs(store, exist_ok=True)
    subprocess.run([PYTHON, os.path.join(SITE, "bin", "torch-model-archiver"), "--model-name", name,
                    "--version", "1.0", "--serialized-file", model_pt, "--handler", HANDLER,
                    "--extra-files", settings, "--export-path", store, "-f"],
                   check=True, env=environment())
    return f"{name}.mar"


def request(url, method="GET", data=None, headers=None, timeout=600):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as response:
        return response.read()


def status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(pid):
    """Child processes, by /proc (no psutil needed here)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class TorchServe:
    """torchserve --start --foreground in a scratch folder with its own ports and pid file."""

    def __init__(self, store):
        self.folder = os.path.join(WORK, "run")
        shutil.rmtree(self.folder, ignore_errors=True)
        self.tmp = os.path.join(self.folder, "tmp")
        os.makedirs(self.tmp)
        self.inference, self.management, self.metrics = bench.free_port(), bench.free_port(), bench.free_port()
        self.config = os.path.join(self.folder, "config.properties")
        with open(self.config, "w") as f:
            f.write(f"inference_address=http://127.0.0.1:{self.inference}\n"
                    f"management_address=http://127.0.0.1:{self.management}\n"
                    f"metrics_address=http://127.0.0.1:{self.metrics}\n"
                    f"model_store={store}\nenable_model_api=true\n")
        self.env = environment(self.tmp)
        self.log = open(os.path.join(self.folder, "torchserve.out"), "w")
        started = time.time()
        self.launcher = subprocess.Popen(
            [PYTHON, os.path.join(SITE, "bin", "torchserve"), "--start", "--foreground", "--ncs",
             "--disable-token-auth", "--model-store", store, "--ts-config", self.config],
            cwd=self.folder, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        while True:
            try:
                request(f"http://127.0.0.1:{self.inference}/ping", timeout=5)
                break
            except Exception:
                if self.launcher.poll() is not None or time.time() - started > 180:
                    self.stop()
                    raise RuntimeError("TorchServe did not start:\n" + self.tail())
                time.sleep(0.25)
        self.start_s = time.time() - started
        with open(os.path.join(self.tmp, ".model_server.pid")) as f:
            self.java_pid = int(f.read().strip())

    def tail(self, lines=40):
        text = ""
        for path in [os.path.join(self.folder, "torchserve.out"), os.path.join(self.folder, "logs", "model_log.log"),
                     os.path.join(self.folder, "logs", "ts_log.log")]:
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    text += f"--- {path}\n" + "".join(f.readlines()[-lines:])
        return text

    def register(self, mar, name, workers, batch_size, delay):
        query = (f"url={mar}&model_name={name}&initial_workers={workers}&batch_size={batch_size}"
                 f"&max_batch_delay={delay}&response_timeout=600&synchronous=true")
        try:
            request(f"http://127.0.0.1:{self.management}/models?{query}", method="POST")
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"register {query}: {error.code} {error.read()[:500]!r}\n" + self.tail())
        # A synchronous registration answers once its own workers are up, but a worker of the model
        # registered under this name just before can still be listed as UNLOADING for a moment
        # (seen in the 1x2 split): wait, up to a minute, until only the asked-for READY workers are left.
        deadline = time.time() + 60
        while True:
            described = json.loads(request(f"http://127.0.0.1:{self.management}/models/{name}"))[0]
            states = [w.get("status") for w in described.get("workers", [])]
            if described.get("batchSize") == batch_size and states == ["READY"] * workers:
                return described
            if time.time() > deadline:
                raise RuntimeError(f"registered {name} is not what was asked after 60 s: {json.dumps(described)[:800]}")
            time.sleep(0.2)

    def unregister(self, name):
        before = set(self.worker_pids())
        url = f"http://127.0.0.1:{self.management}/models/{name}"
        # TorchServe 0.12 can answer 500 here (ConcurrentModificationException in
        # BatchAggregator.sendError when a batch is still in flight); ask again while it is registered.
        for attempt in range(5):
            try:
                request(url, method="DELETE")
                break
            except urllib.error.HTTPError as error:
                if error.code == 404:
                    break
                if error.code != 500 or attempt == 4:
                    raise
                log(f" torchserve: unregister {name} answered 500, asking again")
                time.sleep(1)
        # Unregistering answers before the workers have gone: wait until the name is unknown and
        # its worker processes have exited, so the next registration starts from nothing.
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                request(url)
            except urllib.error.HTTPError as error:
                if error.code == 404 and not set(self.worker_pids()) & before:
                    return
            time.sleep(0.2)
        log(f" torchserve: {name} still listed or its workers still running 60 s after unregistering")

    def worker_pids(self):
        return [pid for pid in descendants(self.java_pid) if "model_service_worker" in cmdline(pid)]

    def rss(self):
        """Peak and current RSS (MiB) of each Python worker, and of the Java frontend."""
        workers = [(status_kib(p, "VmHWM") / 1024, status_kib(p, "VmRSS") / 1024) for p in self.worker_pids()]
        return {"worker_peak_mib": [round(w[0], 1) for w in workers], "worker_rss_mib": [round(w[1], 1) for w in workers],
                "frontend_rss_mib": round(status_kib(self.java_pid, "VmRSS") / 1024, 1)}

    def stop(self):
        if self.launcher.poll() is None:
            subprocess.run([PYTHON, os.path.join(SITE, "bin", "torchserve"), "--stop"], cwd=self.folder, env=self.env,
                           capture_output=True, timeout=120)
            try:
                self.launcher.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        # The launcher started its own session: whatever of it is left (Java, Python workers) goes.
        try:
            os.killpg(self.launcher.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.launcher.wait()
        self.log.close()


def sample_images():
    """The sample scenes (not their ground-truth masks), PNG first, and the JPEG."""
    names = sorted(n for n in os.listdir(SAMPLES) if n.endswith((".png", ".jpg")) and ".mask." not in n)
    return [os.path.join(SAMPLES, n) for n in names]


def fetch_masks(port, model, files):
    """POST each file (raw body) and return {basename: base64 mask, or 'error: ...'}."""
    masks = {}
    for path in files:
        with open(path, "rb") as f:
            body = f.read()
        kind = "image/jpeg" if path.endswith(".jpg") else "image/png"
        try:
            answer = json.loads(request(f"http://127.0.0.1:{port}/predictions/{model}", method="POST", data=body,
                                        headers={"Content-Type": kind}, timeout=120))
            if isinstance(answer, list):
                answer = answer[0]
            masks[os.path.basename(path)] = answer["base64_prediction"]
        except Exception as error:  # noqa: BLE001 - reported, not raised
            masks[os.path.basename(path)] = f"error: {error}"
    return masks


def compare_masks(ours, theirs):
    """{image: number of differing pixels (0 = identical), or None when either side failed}."""
    result = {}
    for name in ours:
        a, b = ours[name], theirs.get(name, "error: missing")
        if a.startswith("error") or b.startswith("error"):
            result[name] = None
            continue
        x, y = base64.b64decode(a), base64.b64decode(b)
        result[name] = sum(p != q for p, q in zip(x, y)) + abs(len(x) - len(y))
    return result


def parse_splits(text):
    return [tuple(int(v) for v in s.split("x")) for s in text.split(",")]


def measure(model_pt, label, concurrencies, seconds, batch, delay, splits, mean, std, warmup=None, mask_files=None):
    """All splits, batching off and on, every concurrency. Returns a JSON-able dict."""
    store = os.path.join(WORK, "store", label)
    shutil.rmtree(store, ignore_errors=True)
    mars = {t: archive(model_pt, store, f"{label}_t{t}", t, mean, std) for t in sorted({t for _, t in splits})}
    server = TorchServe(store)
    report = {"version": VERSION, "start_s": round(server.start_s, 2), "runs": []}
    warmup = warmup if warmup is not None else max(2, seconds // 2)
    try:
        for workers, threads in splits:
            for batch_size, batch_delay in [(1, 0), (batch, delay)]:
                name = f"{label}_t{threads}"
                registered = time.time()
                server.register(mars[threads], name, workers, batch_size, batch_delay)
                load_s = time.time() - registered
                if mask_files and "masks" not in report:
                    report["masks"] = fetch_masks(server.inference, name, mask_files)
                bench.wrk(server.inference, name, max(4, workers * batch_size), warmup)  # JIT profiling runs, caches
                bench.drain(server.inference, name)
                run = {"workers": workers, "threads": threads, "batch_size": batch_size, "delay_ms": batch_delay,
                       "register_s": round(load_s, 2), "points": {}}
                for c in concurrencies:
                    run["points"][str(c)] = bench.wrk(server.inference, name, c, seconds)
                    bench.drain(server.inference, name)
                    log(f" torchserve {workers}x{threads} batch {batch_size} c={c}", run["points"][str(c)])
                run.update(server.rss())
                log(f" torchserve {workers}x{threads} batch {batch_size} RSS", {k: run[k] for k in run if "mib" in k})
                report["runs"].append(run)
                server.unregister(name)
    finally:
        server.stop()
    return report


def best(report):
    """TorchServe's best requests/s (any split, batching, concurrency, no errors) and best c=1 p50."""
    rows = [(r, c, p) for r in report["runs"] for c, p in r["points"].items()
            if p["requests"] > 0 and p["errors"] + p["non2xx"] == 0]
    top = max(rows, key=lambda x: x[2]["rps"]) if rows else None
    ones = [x for x in rows if x[1] == "1"]
    fastest = min(ones, key=lambda x: x[2]["p50_ms"]) if ones else None
    return top, fastest


def describe(run):
    batching = "off" if run["batch_size"] == 1 else f"{run['batch_size']}, {run['delay_ms']} ms"
    return f"{run['workers']}×{run['threads']}", batching


def markdown(report, concurrencies):
    lines = [f"TorchServe {report['version']} (same file, module as loaded, handler `scripts/bench/ts_unet_handler.py`; "
             f"started in {report['start_s']:.1f} s):", "",
             "| workers × threads | batching | concurrency | requests/s | p50 ms | p90 ms | p99 ms | errors | peak RSS per worker MiB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run in report["runs"]:
        split, batching = describe(run)
        peaks = run["worker_peak_mib"]
        rss = f"{sum(peaks) / len(peaks):.0f}" if peaks else "?"
        for c in concurrencies:
            p = run["points"][str(c)]
            if p["requests"] == 0:
                lines.append(f"| {split} | {batching} | {c} | 0 | no answer within the run | | | "
                             f"{int(p['errors'] + p['non2xx'])} | {rss} |")
                continue
            lines.append(f"| {split} | {batching} | {c} | {p['rps']:.1f} | {p['p50_ms']:.2f} | {p['p90_ms']:.2f} | "
                         f"{p['p99_ms']:.2f} | {int(p['errors'] + p['non2xx'])} | {rss} |")
    top, fastest = best(report)
    if top:
        split, batching = describe(top[0])
        lines += ["", f"TorchServe's best: {top[2]['rps']:.1f} requests/s ({split}, batching {batching}, c={top[1]}); "
                      f"best p50 at c=1: {fastest[2]['p50_ms']:.2f} ms ({describe(fastest[0])[0]}, batching {describe(fastest[0])[1]}). "
                      f"Java frontend RSS {report['runs'][-1]['frontend_rss_mib']:.0f} MiB."]
    return lines


def mask_line(comparison):
    same = [n for n, d in comparison.items() if d == 0]
    differ = {n: d for n, d in comparison.items() if d}
    failed = [n for n, d in comparison.items() if d is None]
    text = f"Masks: {len(same)} of {len(comparison)} sample images give the same mask from TorchServe and from our server"
    if differ:
        text += "; differing pixels (of 12288): " + ", ".join(f"{n} {d}" for n, d in differ.items())
    if failed:
        text += "; failed: " + ", ".join(failed)
    return text + "."


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--concurrency", default="1,4,16,64")
    parser.add_argument("--models", default="small,reference")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--delay", type=int, default=5)
    parser.add_argument("--splits", default="1x1,2x1,1x2", help="workers x intra-op threads, comma-separated")
    parser.add_argument("--check-masks", action="store_true", help="also start our server and compare masks")
    parser.add_argument("--skip-build", action="store_true", help="use .build/release/serve as it is")
    args = parser.parse_args()
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    log(setup())
    os.makedirs(bench.CACHE, exist_ok=True)
    if args.check_masks and not args.skip_build:
        subprocess.run(["swift", "build", "-c", "release", "--product", "serve"], cwd=bench.ROOT, check=True)
    out = {}
    for label, model_pt in bench.prepare_models(args.models).items():
        log(f"== {label}: {model_pt}")
        ours = None
        if args.check_masks:
            store = os.path.join(bench.CACHE, "store")
            shutil.rmtree(store, ignore_errors=True)
            bench.write_archive(os.path.join(store, "b1"), model_pt, 1, 0)
            server = bench.Server(store, "b1=b1")
            try:
                ours = fetch_masks(server.inference, "b1", sample_images())
            finally:
                server.stop()
        report = measure(model_pt, label, concurrencies, args.seconds, args.batch, args.delay, parse_splits(args.splits),
                         bench.MEAN, bench.STD, mask_files=sample_images() if ours else None)
        out[label] = report
        print("\n".join([f"## {label} U-Net"] + markdown(report, concurrencies)))
        if ours:
            report["mask_comparison"] = compare_masks(ours, report["masks"])
            print(mask_line(report["mask_comparison"]))
    with open(os.path.join(WORK, "report.json"), "w") as f:
        json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
