#!/usr/bin/python3
"""BLAS x module x intra-op threads x workers, on the raw forward loop (issue 7, part 3).

Measures Debian's reference BLAS (libblas3) against OpenBLAS, pthread build
(libopenblas0-pthread) and OpenMP build (libopenblas0-openmp), each x plain and optimised
(frozen + optimize_for_inference) module x 1 or 2 intra-op threads x 1 or 2 workers, on the
reference-size U-Net (scripts/bench/make_reference_unet.py, random weights, generated into
scripts/.cache, never committed) and the small sample U-Net (unet.pt from model_store/unet.mar).

- The BLAS is switched with Debian's alternatives (libblas.so.3-x86_64-linux-gnu and
  liblapack.so.3-x86_64-linux-gnu), installing the OpenBLAS packages with apt-get when they are
  missing. On exit (normal, error, Ctrl-C, SIGTERM) the original selection is restored, and the
  packages this script installed are removed again unless --keep-packages, so that auto mode
  picks what it picked before. Every process started meanwhile on this machine sees the switched
  BLAS: run it on a quiet machine.
- The loop is the built forward-bench (Sources/forward-bench): one process runs the plain and
  then the optimised module for --seconds each (5 forwards at least). "2 workers" is two
  forward-bench processes started together; forwards/s is then the sum of both.
- The pthread OpenBLAS sizes its own thread pool (all cores) whatever torch.set_num_threads
  says; the row "openblas-pthread, OPENBLAS_NUM_THREADS=threads" shows it pinned to the
  intra-op thread count.
- The warning case of the issue: 2 intra-op threads (libtorch's are OpenMP threads) while
  another process keeps one core busy (a Python busy loop), against 1 thread under the same load.

Prints a table (median ms per forward, forwards/s) and a recommendation line. Needs root
(update-alternatives, apt-get). Not part of the tests.

Usage: /usr/bin/python3 scripts/bench/blas_matrix.py [--seconds 10] [--models small,reference]
           [--backends reference,openblas-pthread,openblas-pthread-env,openblas-openmp]
           [--threads 1,2] [--workers 1,2] [--no-busy] [--skip-build] [--keep-packages]
           [--output FILE.md] [--write-benchmarks]
--write-benchmarks puts the table into BENCHMARKS.md as its "## BLAS matrix" section, after
"## Notes", where scripts/bench/run.py keeps it on its next run.
"""
import argparse
import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402  (paths and the two models)

LIB = "/usr/lib/x86_64-linux-gnu"
ALTERNATIVES = {"blas": "libblas.so.3-x86_64-linux-gnu", "lapack": "liblapack.so.3-x86_64-linux-gnu"}
# backend: (Debian package, directory of its libblas.so.3 / liblapack.so.3, pin OpenBLAS threads)
BACKENDS = {
    "reference": ("libblas3", None, False),
    "openblas-pthread": ("libopenblas0-pthread", "openblas-pthread", False),
    "openblas-pthread-env": ("libopenblas0-pthread", "openblas-pthread", True),
    "openblas-openmp": ("libopenblas0-openmp", "openblas-openmp", False),
}
SCRATCH = os.path.join(bench.ROOT, ".build-bench")
FORWARD_BENCH = os.path.join(SCRATCH, "release", "forward-bench")


def log(*args):
    print(*args, flush=True)


def query(name):
    out = subprocess.run(["update-alternatives", "--query", name], capture_output=True, text=True)
    if out.returncode != 0:
        return None
    fields = dict(re.findall(r"^(Status|Value): (.*)$", out.stdout, re.M))
    alternatives = re.findall(r"^Alternative: (.*)$", out.stdout, re.M)
    return {"status": fields.get("Status"), "value": fields.get("Value"), "alternatives": alternatives}


def installed(package):
    out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return out.returncode == 0 and "install ok installed" in out.stdout


def path_of(backend, kind):
    directory = BACKENDS[backend][1] or kind  # reference: blas/libblas.so.3, lapack/liblapack.so.3
    return os.path.join(LIB, directory, f"lib{kind}.so.3")


class Alternatives:
    """Switches libblas.so.3/liblapack.so.3; restores the original selection (and removes
    packages it installed) at exit, however the script ends."""

    def __init__(self, keep_packages):
        self.original = {kind: query(name) for kind, name in ALTERNATIVES.items()}
        if not self.original["blas"]:
            raise SystemExit(f"no alternative {ALTERNATIVES['blas']} on this machine (apt-get install libblas3)")
        self.keep_packages = keep_packages
        self.installed = []
        self.restored = False
        atexit.register(self.restore)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._signal)
        log("BLAS before:", ", ".join(f"{k} {v['status']} {v['value']}" for k, v in self.original.items() if v))

    def _signal(self, number, frame):
        raise SystemExit(128 + number)

    def install(self, backends):
        missing = sorted({BACKENDS[b][0] for b in backends if not installed(BACKENDS[b][0])})
        if missing:
            log("apt-get install -y", " ".join(missing))
            self.installed += missing  # before the install: a half-done install is undone too
            subprocess.run(["apt-get", "install", "-y", "-q"] + missing, check=True, stdout=subprocess.DEVNULL)

    def select(self, backend):
        for kind, name in ALTERNATIVES.items():
            if self.original[kind] is None and kind == "lapack":
                continue
            subprocess.run(["update-alternatives", "--set", name, path_of(backend, kind)], check=True,
                           capture_output=True)
        return os.path.realpath(os.path.join(LIB, "libblas.so.3"))

    def restore(self):
        if self.restored:
            return
        self.restored = True
        if self.installed and not self.keep_packages:
            subprocess.run(["apt-get", "remove", "-y", "-q"] + self.installed, stdout=subprocess.DEVNULL)
        for kind, name in ALTERNATIVES.items():
            before = self.original[kind]
            if before is None:
                continue
            if before["status"] == "auto":
                subprocess.run(["update-alternatives", "--auto", name], capture_output=True)
                now = query(name)
                if now and now["value"] != before["value"]:
                    # Packages kept: auto mode would pick OpenBLAS now; keep the old choice by hand.
                    subprocess.run(["update-alternatives", "--set", name, before["value"]], capture_output=True)
            else:
                subprocess.run(["update-alternatives", "--set", name, before["value"]], capture_output=True)
        after = {kind: query(name) for kind, name in ALTERNATIVES.items()}
        log("BLAS restored:", ", ".join(f"{k} {v['status']} {v['value']}" for k, v in after.items() if v))


def build():
    """forward-bench in its own scratch folder (.build-bench), seeded from .build."""
    if not os.path.exists(SCRATCH) and os.path.exists(os.path.join(bench.ROOT, ".build")):
        subprocess.run(["cp", "-a", os.path.join(bench.ROOT, ".build"), SCRATCH], check=True)
        # Clang's module cache remembers its absolute path: a copied one fails the build.
        for cache in [os.path.join(SCRATCH, d, "ModuleCache") for d in ["x86_64-unknown-linux-gnu/release",
                                                                        "x86_64-unknown-linux-gnu/debug"]]:
            shutil.rmtree(cache, ignore_errors=True)
    subprocess.run(["swift", "build", "-c", "release", "--product", "forward-bench", "--scratch-path", SCRATCH],
                   cwd=bench.ROOT, check=True)


def forward_bench(binary, model_pt, threads, seconds, workers, pin_openblas):
    """Runs `workers` forward-bench processes together; {module: (mean median ms, sum forwards/s)}."""
    env = dict(os.environ)
    if pin_openblas:
        env["OPENBLAS_NUM_THREADS"] = str(threads)
    processes = [subprocess.Popen([binary, model_pt, "--threads", str(threads), "--seconds", str(seconds)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for _ in range(workers)]
    medians = {}
    for process in processes:
        out, err = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"forward-bench failed ({process.returncode}): {err[-2000:]}")
        for line in out.splitlines():
            if line.startswith("forward "):
                medians.setdefault(line.split()[1], []).append(bench.parse(line)["median_ms"])
    return {module: (sum(ms) / len(ms), sum(1000 / m for m in ms)) for module, ms in medians.items()}


class Busy:
    """One core kept busy by another process (a Python busy loop), for the warning case."""

    def __enter__(self):
        self.process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        self.process.kill()
        self.process.wait()


def label(backend):
    return "openblas-pthread, OPENBLAS_NUM_THREADS=threads" if backend == "openblas-pthread-env" else backend


def recommend(rows, busy_rows, models):
    """Best geometric mean of relative throughput over the models, among setups that stay robust
    with a busy core (a 2-thread setup is dropped when a busy core slows it more than 2x)."""
    quiet = {}
    for r in rows:
        quiet.setdefault((r["backend"], r["module"], r["threads"], r["workers"]), {})[r["model"]] = r["fps"]
    best = {m: max(r["fps"] for r in rows if r["model"] == m) for m in models}
    collapse = {}
    for r in busy_rows:
        if r["threads"] == 2:
            base = next((q for q in rows if (q["backend"], q["module"], q["model"], q["threads"], q["workers"]) ==
                         (r["backend"], r["module"], r["model"], 2, 1)), None)
            if base:
                collapse[(r["backend"], r["module"])] = max(collapse.get((r["backend"], r["module"]), 0), r["ms"] / base["ms"])
    scored = []
    for key, fps in quiet.items():
        if len(fps) != len(models):
            continue
        score = 1.0
        for m in models:
            score *= fps[m] / best[m]
        score **= 1 / len(models)
        robust = key[2] == 1 or collapse.get((key[0], key[1]), 1) <= 2
        scored.append((robust, score, key, fps))
    scored.sort(key=lambda x: (x[0], x[1]), reverse=True)
    if not scored:
        return "Recommendation: nothing measured."
    robust, score, (backend, module, threads, workers), fps = scored[0]
    text = (f"Recommendation: {label(backend)}, {module} module, {threads} intra-op thread(s) x {workers} worker(s) "
            f"({', '.join(f'{m} {fps[m]:.1f} forwards/s' for m in models)}; {score:.2f} of the best per model)")
    unsafe = [f"{label(b)} {mod} {c:.1f}x slower" for (b, mod), c in sorted(collapse.items()) if c > 2]
    if unsafe:
        text += "; 2 threads with a busy core: " + ", ".join(unsafe)
    return text + "."


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="per module and configuration (5 forwards at least)")
    parser.add_argument("--models", default="small,reference")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--no-busy", action="store_true", help="skip the busy-core warning case")
    parser.add_argument("--skip-build", action="store_true", help="use the forward-bench binary as it is")
    parser.add_argument("--forward-bench", default=FORWARD_BENCH)
    parser.add_argument("--keep-packages", action="store_true", help="leave the OpenBLAS packages installed")
    parser.add_argument("--output", help="also write the table as markdown to this file")
    parser.add_argument("--write-benchmarks", action="store_true",
                        help="write the table into BENCHMARKS.md as its '## BLAS matrix' section")
    args = parser.parse_args()
    backends = args.backends.split(",")
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise SystemExit(f"unknown backend(s) {unknown}; known: {', '.join(BACKENDS)}")
    if os.geteuid() != 0:
        raise SystemExit("needs root: update-alternatives and apt-get")
    threads = [int(t) for t in args.threads.split(",")]
    workers = [int(w) for w in args.workers.split(",")]
    if not args.skip_build:
        build()
    models = bench.prepare_models(args.models)
    cpu = subprocess.run(["sh", "-c", "nproc; grep -m1 'model name' /proc/cpuinfo"], capture_output=True,
                         text=True).stdout.split("\n")
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())

    alternatives = Alternatives(args.keep_packages)
    rows, busy_rows = [], []
    try:
        alternatives.install(backends)
        for backend in backends:
            library = alternatives.select(backend)
            log(f"== {label(backend)}: libblas.so.3 -> {library}")
            pin = BACKENDS[backend][2]
            for model, path in models.items():
                for t in threads:
                    for w in workers:
                        for module, (ms, fps) in forward_bench(args.forward_bench, path, t, args.seconds, w, pin).items():
                            row = {"backend": backend, "model": model, "module": module, "threads": t, "workers": w,
                                   "ms": ms, "fps": fps}
                            rows.append(row)
                            log(f" {model} {module} threads={t} workers={w}: {ms:.2f} ms, {fps:.2f} forwards/s")
                if not args.no_busy:
                    with Busy():
                        for t in [1, 2]:
                            for module, (ms, fps) in forward_bench(args.forward_bench, path, t, args.seconds, 1, pin).items():
                                row = {"backend": backend, "model": model, "module": module, "threads": t, "workers": 1,
                                       "ms": ms, "fps": fps}
                                busy_rows.append(row)
                                log(f" {model} {module} threads={t} with a busy core: {ms:.2f} ms, {fps:.2f} forwards/s")
    finally:
        alternatives.restore()

    lines = [f"BLAS matrix, {started}, {cpu[0].strip()} cores ({cpu[1].split(':')[-1].strip()}), Debian's libtorch, "
             f"forward-bench at batch 1, {args.seconds} s per module and configuration.", "",
             "Command:", "", "```sh", " ".join(["/usr/bin/python3 scripts/bench/blas_matrix.py"] +
                                             [a for a in sys.argv[1:] if a != "--skip-build"]), "```", "",
             "| model | BLAS | module | intra-op threads | workers | ms per forward (median) | forwards/s (all workers) |",
             "|---|---|---|---|---|---|---|"]
    order = {m: i for i, m in enumerate(models)}
    for r in sorted(rows, key=lambda r: (order[r["model"]], backends.index(r["backend"]), r["module"], r["threads"], r["workers"])):
        lines.append(f"| {r['model']} | {label(r['backend'])} | {r['module']} | {r['threads']} | {r['workers']} | "
                     f"{r['ms']:.2f} | {r['fps']:.2f} |")
    if busy_rows:
        lines += ["", "With another process keeping one core busy (1 worker):", "",
                  "| model | BLAS | module | intra-op threads | ms per forward (median) | quiet ms | slowdown |",
                  "|---|---|---|---|---|---|---|"]
        for r in sorted(busy_rows, key=lambda r: (order[r["model"]], backends.index(r["backend"]), r["module"], r["threads"])):
            base = next((q for q in rows if (q["backend"], q["model"], q["module"], q["threads"], q["workers"]) ==
                         (r["backend"], r["model"], r["module"], r["threads"], 1)), None)
            quiet = f"{base['ms']:.2f} | {r['ms'] / base['ms']:.1f}x" if base else "— | —"
            lines.append(f"| {r['model']} | {label(r['backend'])} | {r['module']} | {r['threads']} | {r['ms']:.2f} | {quiet} |")
    lines += ["", recommend(rows, busy_rows, list(models))]
    print("\n" + "\n".join(lines))
    if args.output:
        with open(args.output, "w") as f:
            f.write("\n".join(lines) + "\n")
    if args.write_benchmarks:
        write_benchmarks(lines)


def write_benchmarks(lines):
    """Replace (or add) BENCHMARKS.md's "## BLAS matrix" section, kept after "## Notes"."""
    path = os.path.join(bench.ROOT, "BENCHMARKS.md")
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    section = "\n## BLAS matrix\n"
    if section in text:
        start = text.index(section)
        following = text.find("\n## ", start + len(section))
        text = text[:start] + (text[following:] if following >= 0 else "\n")
    with open(path, "w") as f:
        f.write(text.rstrip("\n") + "\n" + section + "\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
