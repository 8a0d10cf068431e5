#!/usr/bin/python3
"""Soak check: one `serve` under steady mixed load with model churn, watched for leaks and drift.

How to run (from the repository root):

    scripts/check/soak 30                       # builds serve (release) if needed, 30 minutes
    NO_BUILD=1 scripts/check/soak 3             # the binary in .build/release as it is, 3 minutes
    /usr/bin/python3 scripts/check/soak.py --serve PATH --minutes 3 [--keep]

Standard library only (Debian's /usr/bin/python3); helpers from chaos.py and checkutil.py. One
`serve --foreground` in a temporary folder serves unet.mar (segmenter), scenes.mar (classifier)
and fortunes.mar (texts), one worker each. A second process runs 32 threads, each with its own
keep-alive connection, sending without pause a random mix: PNG and JPEG to unet and scenes,
texts to fortunes, and about 1 % malformed requests (a truncated PNG, a JPEG with its data cut,
bad JSON to /v2) whose expected answer is 400. A churn client in this process repeats, every few
seconds: register fortunes version 2.0 (fortunes-v2.mar), scale it to 2 workers, make it the
default, make 1.0 the default again, unregister 2.0; a thread of the load also asks
/predictions/fortunes/2.0, which is 200 while 2.0 is registered and 404 (or 503 while it
drains) otherwise. Every status is counted: anything outside what its stream allows fails.

Every 10 s the server's RSS (VmRSS) and open descriptors (/proc/PID/fd) are sampled; the
descriptor count is taken between churn cycles, when the churn client holds no connection and
loads nothing, as the smallest of five readings 50 ms apart (a load thread reconnecting holds
two sockets for an instant; a leaked descriptor is in every reading). Verdicts, after a warm-up of 5 minutes (runs shorter than 15 minutes: a third of
the run, said so):

  - RSS: the median of the last minute's samples is at most 2 % above the median of the first
    minute after the warm-up;
  - descriptors: no sample after the warm-up is above the first one after it;
  - p99 drift: the p99 latency of the good requests in the last 5 minutes is at most 1.5 times
    that of minutes 5-10 (short runs: the last third against the middle third).

p50/p99 per minute are printed. Exit status 0 only when every check passed.
"""

import argparse
import collections
import http.client
import json
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import threading
import time

import chaos  # scripts/check/chaos.py: Server, Report, http_request, make_version
from checkutil import alive, short

HOST = "127.0.0.1"
MIB = 1024 * 1024
REPO = chaos.REPO


def load_process(port, kinds, stop, started, results, seed):
    """32 threads with keep-alive connections; each request a random kind (weights in `kinds`).
    Returns per kind: outcome counts, and the (t_end, latency) of each 200 of the good kinds."""
    lock = threading.Lock()
    counts = collections.defaultdict(collections.Counter)
    latencies = []
    names = [k["name"] for k in kinds]
    weights = [k["weight"] for k in kinds]
    by_name = {k["name"]: k for k in kinds}

    def one_thread(index):
        rng = random.Random(seed * 1000 + index)
        conn = None
        while not stop.is_set():
            kind = by_name[rng.choices(names, weights)[0]] if index else by_name["churned"]
            if conn is None:
                conn = http.client.HTTPConnection(HOST, port, timeout=60)
            t_start = time.monotonic()
            try:
                conn.request("POST", kind["path"], body=kind["body"], headers=kind.get("headers") or {})
                response = conn.getresponse()
                data = response.read()
                outcome = str(response.status)
                if response.status == 200 and kind.get("expect") and kind["expect"] not in data:
                    outcome = "200-malformed-answer"
                if response.will_close:
                    conn.close()
                    conn = None
            except Exception as failure:
                outcome = type(failure).__name__
                try:
                    conn.close()
                except Exception:
                    pass
                conn = None
            t_end = time.monotonic()
            with lock:
                counts[kind["name"]][outcome] += 1
                if outcome == "200" and kind["good"]:
                    latencies.append((t_end, t_end - t_start))
            if index == 0:
                stop.wait(0.2)  # the churned version's stream: a light trickle
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=one_thread, args=(i,), daemon=True) for i in range(32)]
    for thread in threads:
        thread.start()
    started.set()
    for thread in threads:
        thread.join()
    results.put({"counts": {k: dict(v) for k, v in counts.items()}, "latencies": latencies})


def descriptors(pid, readings=5):
    """(open descriptors, of them sockets) of `pid`: the smallest count of `readings` 50 ms apart.
    A load thread that reconnects (after an answer with `Connection: close`) holds two sockets for
    an instant; a leak stays in every reading."""
    best = None
    for index in range(readings):
        if index:
            time.sleep(0.05)
        links = []
        for name in os.listdir(f"/proc/{pid}/fd"):
            try:
                links.append(os.readlink(f"/proc/{pid}/fd/{name}"))
            except OSError:
                continue
        counted = (len(links), sum(1 for link in links if link.startswith("socket:")))
        best = counted if best is None or counted[0] < best[0] else best
    return best


def percentile(values, fraction):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * fraction))] if values else float("nan")


def median(values):
    return percentile(values, 0.5)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", default=os.path.join(REPO, ".build", "release", "serve"))
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    parser.add_argument("--seed", type=int, default=19)
    options = parser.parse_args()
    serve = os.path.abspath(options.serve)
    if not os.access(serve, os.X_OK):
        print(f"soak: {serve} is not an executable; build it first (scripts/check/soak does)")
        return 2
    R = chaos.R
    root = tempfile.mkdtemp(prefix="soak-")
    print(f"working folder {root}\nserve {serve}\n{options.minutes:g} minutes, concurrency 32", flush=True)
    ctx = chaos.Context(serve, root)
    chaos.make_version(os.path.join(ctx.store, "fortunes.mar"), os.path.join(ctx.store, "fortunes-v2.mar"), "2.0")
    try:
        return soak(ctx, R, options)
    finally:
        for server in ctx.servers:
            server.cleanup()
        leftover = [pid for s in ctx.servers for pid in s.pids if alive(pid)]
        R.check("cleanup: no server started here is left running", not leftover, "none", f"pids {leftover}")
        if options.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
        print(f"\nSUMMARY: {R.passed + len(R.failures)} checks, {R.passed} passed, {len(R.failures)} failed")
        for line in R.failures:
            print(line)


def soak(ctx, R, options):
    R.phase(1, "soak", f"soak: {options.minutes:g} minutes of mixed load and churn")
    srv = chaos.Server(ctx, "soak", load_models="unet.mar,scenes.mar,fortunes.mar", job_queue_size="200",
                       enable_grpc="false")
    if not srv.start_foreground("unet + scenes + fortunes, 1 worker each"):
        return 1
    samples = os.path.join(REPO, "model_store", "samples")
    png = open(os.path.join(samples, "scene_0.png"), "rb").read()
    jpeg = open(os.path.join(samples, "scene_0.jpg"), "rb").read()
    v2_body = json.dumps({"inputs": [{"name": "input", "shape": [1], "datatype": "BYTES", "data": ["x"]}]})
    kinds = [
        {"name": "unet png", "path": "/predictions/unet", "body": png, "weight": 22, "good": True, "allowed": {"200"},
         "expect": b'"base64_prediction"'},
        {"name": "unet jpeg", "path": "/predictions/unet", "body": jpeg, "weight": 22, "good": True, "allowed": {"200"},
         "expect": b'"base64_prediction"'},
        {"name": "scenes png", "path": "/predictions/scenes", "body": png, "weight": 22, "good": True, "allowed": {"200"}, "expect": b"{"},
        {"name": "scenes jpeg", "path": "/predictions/scenes", "body": jpeg, "weight": 22, "good": True, "allowed": {"200"}, "expect": b"{"},
        {"name": "fortunes text", "path": "/predictions/fortunes", "body": b"The compiler crashed and the kernel panicked",
         "weight": 11, "good": True, "allowed": {"200"}, "expect": b"{"},
        {"name": "bad: truncated png", "path": "/predictions/unet", "body": png[: len(png) // 3], "weight": 0.34, "good": False,
         "allowed": {"400"}},
        {"name": "bad: jpeg cut", "path": "/predictions/scenes", "body": jpeg[:600], "weight": 0.33, "good": False, "allowed": {"400"}},
        {"name": "bad: /v2 json", "path": "/v2/models/fortunes/infer", "body": v2_body[:-7].encode(), "weight": 0.33, "good": False,
         "allowed": {"400"}, "headers": {"Content-Type": "application/json"}},
        {"name": "churned", "path": "/predictions/fortunes/2.0", "body": b"A churned version", "weight": 0, "good": False,
         "allowed": {"200", "404", "503"}},
    ]
    seconds = options.minutes * 60
    warmup = 300 if options.minutes >= 15 else seconds / 3
    if options.minutes < 15:
        R.info(f"short run: the warm-up is a third of the run ({warmup:.0f} s) instead of 5 minutes; p99 drift compares the "
               "last third with the middle third")

    context = multiprocessing.get_context("spawn")
    stop, started, results = context.Event(), context.Event(), context.Queue()
    process = context.Process(target=load_process, daemon=True,
                              args=(srv.ports["inference"], kinds, stop, started, results, options.seed))
    process.start()
    if not started.wait(60):
        R.check("the load process starts", False, "started", "not started")
        return 1
    t0 = time.monotonic()
    churn_lock = threading.Lock()
    churn_counts = collections.Counter()
    churn_cycles = [0]
    done = threading.Event()

    def churn():
        steps = [("POST", "/models?url=fortunes-v2.mar&model_name=fortunes&initial_workers=1&synchronous=true", "register 2.0"),
                 ("PUT", "/models/fortunes/2.0?min_worker=2&max_worker=2&synchronous=true", "scale 2.0 to 2"),
                 ("PUT", "/models/fortunes/2.0/set-default", "default 2.0"),
                 ("PUT", "/models/fortunes/1.0/set-default", "default 1.0"),
                 ("DELETE", "/models/fortunes/2.0", "unregister 2.0")]
        while not done.is_set():
            with churn_lock:
                for method, path, label in steps:
                    resp = srv.mgmt(method, path, timeout=300)
                    churn_counts[f"{label} {resp.status or resp.error}"] += 1
                churn_cycles[0] += 1
            done.wait(3)

    churner = threading.Thread(target=churn, daemon=True)
    churner.start()
    resources = []  # (t, rss, fds)
    pid = srv.pid
    next_sample = t0
    while time.monotonic() - t0 < seconds:
        if srv.proc.poll() is not None:
            break
        if time.monotonic() >= next_sample:
            with churn_lock:  # between churn cycles
                try:
                    fds, sockets = descriptors(pid)
                    rss = srv.rss_bytes()
                except FileNotFoundError:
                    break
            resources.append((time.monotonic() - t0, rss, fds))
            print(f"   t={resources[-1][0]:6.0f} s  RSS {rss / MIB:7.1f} MiB  fds {fds} ({sockets} sockets)", flush=True)
            next_sample += 10
        time.sleep(0.2)
    elapsed = time.monotonic() - t0
    done.set()
    stop.set()
    churner.join(300)
    data = results.get(timeout=300)
    process.join(30)
    R.check(f"the server ran the whole {elapsed:.0f} s", srv.proc.poll() is None, "running", f"exited {srv.proc.returncode}")

    counts = data["counts"]
    by_name = {k["name"]: k for k in kinds}
    total = sum(sum(c.values()) for c in counts.values())
    bad = sum(sum(counts.get(k["name"], {}).values()) for k in kinds if not k["good"] and k["name"] != "churned")
    print(f"\n{'stream':<20} {'sent':>8}  outcomes", flush=True)
    for name, outcome in sorted(counts.items()):
        print(f"{name:<20} {sum(outcome.values()):>8}  {dict(sorted(outcome.items()))}")
    R.info(f"{total} requests in {elapsed:.0f} s ({total / max(elapsed, 1):.1f}/s), {bad} malformed ({100 * bad / max(total, 1):.2f} %)")
    for name, outcome in sorted(counts.items()):
        unexplained = {k: v for k, v in outcome.items() if k not in by_name[name]["allowed"]}
        R.check(f"{name}: only {sorted(by_name[name]['allowed'])} ({sum(outcome.values())} sent)", not unexplained,
                sorted(by_name[name]["allowed"]), unexplained)
    R.info(f"churn: {churn_cycles[0]} cycles; {dict(sorted(churn_counts.items()))}")
    R.check("churn: every management call 200 or 202", churn_counts and all(k.rsplit(" ", 1)[1] in ("200", "202") for k in churn_counts),
            "200/202", {k: v for k, v in churn_counts.items() if k.rsplit(" ", 1)[1] not in ("200", "202")})

    latencies = data["latencies"]
    print(f"\n{'minute':>6} {'requests':>9} {'p50 ms':>8} {'p99 ms':>8}")
    minutes = int(elapsed // 60) + 1
    for minute in range(minutes):
        chunk = [lat for t, lat in latencies if minute * 60 <= t - t0 < (minute + 1) * 60]
        if chunk:
            print(f"{minute + 1:>6} {len(chunk):>9} {median(chunk) * 1000:>8.1f} {percentile(chunk, 0.99) * 1000:>8.1f}")

    after = [r for r in resources if r[0] >= warmup]
    if len(after) < 3:
        R.check("enough resource samples after the warm-up", False, ">= 3", len(after))
        return 1
    window = 60 if elapsed - warmup >= 180 else (elapsed - warmup) / 3
    first = [r[1] for r in after if r[0] < warmup + window]
    last = [r[1] for r in after if r[0] >= elapsed - window]
    growth = median(last) / median(first) - 1
    R.check(f"RSS after the warm-up: {median(first) / MIB:.1f} MiB -> {median(last) / MIB:.1f} MiB ({growth * 100:+.2f} %), "
            "at most +2 %", growth <= 0.02, "<= +2 %", f"{growth * 100:+.2f} %")
    fds = [r[2] for r in after]
    R.check(f"open descriptors after the warm-up: {fds[0]} first, {min(fds)}..{max(fds)} (no growth)", max(fds) <= fds[0],
            f"<= {fds[0]}", max(fds))
    if options.minutes >= 15:
        reference = [lat for t, lat in latencies if 300 <= t - t0 < 600]
        final = [lat for t, lat in latencies if t - t0 >= elapsed - 300]
        labels = ("minutes 5-10", "the last 5 minutes")
    else:
        reference = [lat for t, lat in latencies if seconds / 3 <= t - t0 < 2 * seconds / 3]
        final = [lat for t, lat in latencies if t - t0 >= 2 * seconds / 3]
        labels = ("the middle third", "the last third")
    p99_ref, p99_end = percentile(reference, 0.99), percentile(final, 0.99)
    R.check(f"p99 drift: {labels[1]} {p99_end * 1000:.1f} ms vs {labels[0]} {p99_ref * 1000:.1f} ms, at most 1.5x",
            reference and final and p99_end <= 1.5 * p99_ref, f"<= {1.5 * p99_ref * 1000:.1f} ms", f"{p99_end * 1000:.1f} ms")
    srv.stop_checked()
    return 0 if not R.failures else 1


if __name__ == "__main__":
    sys.exit(main())
