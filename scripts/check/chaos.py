#!/usr/bin/python3
"""Chaos check: production behaviour of `serve` under load, with every response counted.

How to run (from the repository root):

    scripts/check/chaos                  # builds serve (release) if needed, runs this
    NO_BUILD=1 scripts/check/chaos       # the binary in .build/release as it is
    /usr/bin/python3 scripts/check/chaos.py --serve PATH [--keep] [--only 1,5]

Standard library only (Debian's /usr/bin/python3). Each phase starts its own server in its own
temporary folder (config.properties with random free loopback ports, token authorization off,
enable_model_api=true, a copy of the sample archives plus unet-v2.mar, which is unet.mar with
modelVersion 2.0 in its manifest). Load comes from a second process (multiprocessing, spawn):
threads there, each with its own http.client connection, record every request they send with
its outcome (a status code, or a connection error's exception class) and its start and end
times on the shared monotonic clock; the checker compares `sent` with the sum of the outcomes
and times errors against the signal it sent. Only 127.0.0.1 is contacted.

  1. loading: `serve --foreground` with three start-up models; /ping and /v2/health/ready are
     polled from the first moment the port answers: 503 "loading" before 200, /v2/health/live 200
  2. overload: job_queue_size=2, one worker, a burst of 40: only 200s and 429s (Retry-After: 1),
     ts_requests_dropped_total{reason="queue_full"} = the 429s
  3. deadlines: one busy worker; X-Request-Timeout-Ms: 1 -> 504 DeadlineExceededException, answered
     at once, ts_requests_dropped_total{reason="deadline"} = the 504s; the others all 200
  4. swap: 4 load threads while PUT /models/unet?url=unet-v2.mar&swap=true; 2.0 becomes default,
     zero non-200 and zero connection errors; latency p50/max before, across and after the swap
  5. drain: drain_delay=3, graceful_shutdown_timeout=10; SIGTERM under load: /ping 503 within
     0.5 s, no connection error before signal + drain_delay, only 200/503 answers, exit 0 in time,
     logs/config/snapshot.json holds the registry
  6. kill -9: two versions, set-default, 2 workers; kill -9 under load (connection errors only
     after the kill); `serve --start` again restores models, versions, default and workers
  7. shared weights: RSS with 1 worker and with 4 (after concurrent predictions), for fortunes
     (7.7 MiB of weights, tiny activations: the telling figure) and unet (3.2 MiB of weights)
  8. client disconnect: ~30 requests queued on one worker, a raw socket sends a whole POST and
     closes at once: ts_requests_dropped_total{reason="disconnected"} >= 1
  9. kill -9 during management calls, 20 rounds: one client sends random register / scale /
     set-default / unregister calls for versions 1.0, 2.0, 3.0 of unet (also refused ones) and
     the server is killed at a random moment of the burst; after each `serve --start` every
     change that got a 2xx is there and nothing a non-2xx answered is; the one call in flight at
     the kill may be either (CHAOS_SEED picks the sequence)

One line per check (PASS/FAIL/SKIP), then a table per phase (requests the load process sent,
their outcomes, checks) and a summary. Exit status 0 only when every check passed (SKIPs, which
say why, do not fail). Servers started here are always stopped, also on failure.
"""

import argparse
import collections
import http.client
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zipfile

from checkutil import alive, free_port, short, wait_for  # scripts/check/checkutil.py

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOST = "127.0.0.1"
ARCHIVES = ("unet.mar", "scenes.mar", "fortunes.mar")
MIB = 1024 * 1024


# ============================================================================= the load process
# Runs in a child process (multiprocessing, spawn). A stream is a group of threads sending the
# same request; each thread keeps one keep-alive connection and opens a new one after an error
# or a `Connection: close`. A record is (stream, thread, t_start, t_end, status, error, info):
# status 0 and error = the exception's class name when no answer came; info holds, for answers
# other than a 200 prediction, the Retry-After header, the error type and the health reason, and
# for a 200 prediction without the stream's `expect` bytes (a malformed answer), `bad_body`.

def load_process(port, streams, stop, started, finite_done, results):
    lock = threading.Lock()
    sent = collections.Counter()
    records = []
    finite_left = [sum(s["threads"] for s in streams if s.get("count") is not None)]
    barriers = {s["name"]: threading.Barrier(s["threads"]) for s in streams if s.get("burst")}

    def one_thread(stream, index):
        conn = None
        done = 0
        count = stream.get("count")
        if stream.get("delay"):
            stop.wait(stream["delay"])
        if stream["name"] in barriers:
            try:
                barriers[stream["name"]].wait(30)
            except threading.BrokenBarrierError:
                pass
        while True:
            if count is not None and done >= count:
                break
            if count is None and stop.is_set():
                break
            if conn is None:
                conn = http.client.HTTPConnection(HOST, port, timeout=stream.get("timeout", 60))
            with lock:
                sent[stream["name"]] += 1
            t_start = time.monotonic()
            status, error, info = 0, "", None
            try:
                conn.request(stream["method"], stream["path"], body=stream.get("body"), headers=stream.get("headers") or {})
                response = conn.getresponse()
                data = response.read()
                status = response.status
                if status != 200 or not stream["path"].startswith("/predictions"):
                    info = {"retry_after": response.getheader("Retry-After"), "body": data[:300].decode("utf-8", "replace")}
                    try:
                        parsed = json.loads(data)
                        if isinstance(parsed, dict):
                            info["type"] = parsed.get("type")
                            info["reason"] = parsed.get("reason")
                    except ValueError:
                        pass
                elif stream.get("expect") and stream["expect"] not in data:
                    info = {"bad_body": data[:200].decode("utf-8", "replace")}
                if response.will_close:
                    conn.close()
                    conn = None
            except Exception as failure:  # every failure is an outcome, never a lost request
                error = type(failure).__name__
                info = {"message": str(failure)[:200]}
                try:
                    conn.close()
                except Exception:
                    pass
                conn = None
            t_end = time.monotonic()
            with lock:
                records.append((stream["name"], index, t_start, t_end, status, error, info))
            done += 1
            if error:
                stop.wait(stream.get("error_pause", 0.05))
            elif stream.get("interval"):
                stop.wait(stream["interval"])
        if conn is not None:
            conn.close()
        if count is not None:
            with lock:
                finite_left[0] -= 1
                if finite_left[0] == 0:
                    finite_done.set()

    threads = [threading.Thread(target=one_thread, args=(stream, i), daemon=True)
               for stream in streams for i in range(stream["threads"])]
    for thread in threads:
        thread.start()
    if finite_left[0] == 0:
        finite_done.set()
    started.set()
    for thread in threads:
        thread.join()
    counts = collections.Counter(str(r[4]) if r[4] else r[5] for r in records)
    results.put({"sent": dict(sent), "counts": dict(counts), "records": records})


class Load:
    """The checker's handle on one load process."""
    every = []  # every load process started, so that a failed phase leaves none running

    def __init__(self, port, streams):
        Load.every.append(self)
        context = multiprocessing.get_context("spawn")
        self.stop_event = context.Event()
        self.started = context.Event()
        self.finite_done = context.Event()
        self.results = context.Queue()
        self.process = context.Process(target=load_process, daemon=True,
                                       args=(port, streams, self.stop_event, self.started, self.finite_done, self.results))
        self.process.start()
        if not self.started.wait(60):
            raise RuntimeError("the load process did not start")

    def wait_finite(self, timeout=120):
        return self.finite_done.wait(timeout)

    def finish(self, timeout=180):
        """Stops continuous streams, waits for every thread, returns the LoadResult."""
        self.stop_event.set()
        try:
            data = self.results.get(timeout=timeout)
        except Exception:
            self.process.kill()
            raise RuntimeError("the load process sent no results")
        self.process.join(30)
        return LoadResult(data)

    def kill(self):
        if self.process.is_alive():
            self.stop_event.set()
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()


class LoadResult:
    def __init__(self, data):
        self.sent_by_stream = data["sent"]
        self.own_counts = data["counts"]  # the load process's own tally by outcome
        self.records = [Rec(*r) for r in data["records"]]

    @property
    def sent(self):
        return sum(self.sent_by_stream.values())

    def of(self, *streams):
        return [r for r in self.records if r.stream in streams]

    def counts(self, *streams):
        return outcome_counts(self.of(*streams) if streams else self.records)


Rec = collections.namedtuple("Rec", "stream thread t_start t_end status error info")


def outcome(rec):
    return str(rec.status) if rec.status else rec.error


def outcome_counts(records):
    return dict(sorted(collections.Counter(outcome(r) for r in records).items()))


def latency_summary(records):
    values = sorted(r.t_end - r.t_start for r in records)
    if not values:
        return "no requests"
    p50 = values[len(values) // 2]
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return f"n={len(values)} p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {values[-1] * 1000:.0f} ms"


def stream(name, threads, path, method="POST", body=None, count=None, **extra):
    spec = {"name": name, "threads": threads, "path": path, "method": method, "body": body, "count": count}
    if path.startswith("/predictions/unet"):
        spec["expect"] = b'"base64_prediction"'
    elif path.startswith("/predictions/"):
        spec["expect"] = b"{"
    spec.update(extra)
    return spec


# ============================================================================= reporting

class Report:
    def __init__(self):
        self.passed = 0
        self.failures = []
        self.skipped = []
        self.phases = []

    def phase(self, number, name, title):
        self.phases.append({"number": number, "name": name, "title": title, "sent": 0, "outcomes": collections.Counter(),
                            "passed": 0, "failed": 0, "skipped": 0})
        print(f"\n== {number}. {title}", flush=True)

    def _count(self, key):
        if self.phases and not self.phases[-1].get("closed"):
            self.phases[-1][key] += 1

    def add_load(self, result):
        if self.phases:
            self.phases[-1]["sent"] += result.sent
            self.phases[-1]["outcomes"].update(result.counts())

    def check(self, name, ok, expected="", actual=""):
        if ok:
            self.passed += 1
            self._count("passed")
            print(f"PASS {name}", flush=True)
        else:
            line = f"FAIL {name}: expected {expected}; got {actual}"
            self.failures.append(line)
            self._count("failed")
            print(line, flush=True)
        return bool(ok)

    def skip(self, name, reason):
        line = f"SKIP {name} ({reason})"
        self.skipped.append(line)
        self._count("skipped")
        print(line, flush=True)

    def info(self, text):
        print(f"   {text}", flush=True)

    def accounted(self, result, label="load"):
        """The load's bookkeeping: every request sent has exactly one outcome."""
        total = sum(result.own_counts.values())
        self.add_load(result)
        malformed = [r.info["bad_body"] for r in result.records if r.status == 200 and r.info and "bad_body" in r.info]
        if malformed:
            self.check(f"{label}: every 200 prediction is a well-formed answer", False, "a JSON answer (unet: base64_prediction)",
                       f"{len(malformed)} malformed, e.g. {short(malformed[0], 200)}")
        return self.check(f"{label}: every request accounted for (sent {result.sent} = sum of outcomes {total}: {result.own_counts})",
                          result.sent == total == len(result.records) and result.own_counts == result.counts(),
                          f"sent = {result.sent} = outcomes = records", f"{total} outcomes, {len(result.records)} records")


R = Report()


# ============================================================================= servers

class Resp:
    def __init__(self, status, headers, body, error=None):
        self.status, self.headers, self.body, self.error = status, headers, body, error

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except Exception:
            return None

    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return f"{self.status} {short(self.text(), 300)}" + (f" ({self.error})" if self.error else "")


def http_request(port, method, path, body=None, headers=None, timeout=60):
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return Resp(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    except Exception as error:
        return Resp(0, {}, b"", error=f"{type(error).__name__}: {error}")
    finally:
        conn.close()


class Server:
    """One `serve` in its own folder: config.properties, a model store, free loopback ports."""

    def __init__(self, ctx, name, **config):
        self.ctx = ctx
        self.work = os.path.join(ctx.root, name)
        self.store = os.path.join(self.work, "model_store")
        os.makedirs(self.work)
        shutil.copytree(ctx.store, self.store)
        ports = set()
        while len(ports) < 3:
            ports.add(free_port())
        self.ports = dict(zip(("inference", "management", "metrics"), sorted(ports)))
        self.config_path = os.path.join(self.work, "config.properties")
        settings = {"inference_address": f"http://{HOST}:{self.ports['inference']}",
                    "management_address": f"http://{HOST}:{self.ports['management']}",
                    "metrics_address": f"http://{HOST}:{self.ports['metrics']}",
                    "model_store": self.store, "enable_model_api": "true", "disable_token_authorization": "true",
                    "default_workers_per_model": "1", "drain_delay": "0", "graceful_shutdown_timeout": "10",
                    # gRPC's fixed default ports would clash with another server running here.
                    "enable_grpc": "false"}
        settings.update({k: str(v) for k, v in config.items()})
        with open(self.config_path, "w") as handle:
            handle.write("# written by scripts/check/chaos.py\n" + "".join(f"{k}={v}\n" for k, v in settings.items()))
        self.args = ["--ts-config", self.config_path, "--model-store", self.store]
        self.proc = None
        self.log = None
        ctx.servers.append(self)
        self.pids = set()

    # --- processes
    def spawn(self):
        """`serve --foreground` as a child of this script (its pid is the server's)."""
        self.log = open(os.path.join(self.work, "serve-foreground.log"), "wb")
        self.proc = subprocess.Popen([self.ctx.serve, "--foreground"] + self.args, cwd=self.work,
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.pids.add(self.proc.pid)
        return self.proc.pid

    @property
    def pid(self):
        return self.proc.pid if self.proc else self.pid_from_file()

    def pid_from_file(self):
        try:
            with open(os.path.join(self.work, "logs", "serve.pid")) as handle:
                pid = int(handle.read().strip())
            self.pids.add(pid)
            return pid
        except (FileNotFoundError, ValueError):
            return None

    def wait_ready(self, timeout=120):
        """Polls /ping until 200; False if the process exits or the time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                return False
            if http_request(self.ports["inference"], "GET", "/ping", timeout=2).status == 200:
                return True
            time.sleep(0.05)
        return False

    def start_foreground(self, label):
        self.spawn()
        started = time.monotonic()
        ok = self.wait_ready()
        return R.check(f"{label}: serve --foreground answers /ping 200 (after {time.monotonic() - started:.1f} s)", ok,
                       "ready within 120 s", f"not ready; log: {self.log_tail()}")

    def stop(self, timeout=60):
        """SIGTERM to the foreground child; its exit status (None if it had to be killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return None

    def stop_checked(self, label="SIGTERM"):
        """Stops the server and checks that it exited 0."""
        rc = self.stop()
        R.check(f"{label}: exit status 0", rc == 0, 0, rc)

    def daemon(self, action, timeout=300):
        """`serve --start` / `serve --stop` in the server's folder: (rc, output)."""
        try:
            done = subprocess.run([self.ctx.serve, action] + (self.args if action == "--start" else []), cwd=self.work,
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
            return done.returncode, done.stdout + done.stderr
        except subprocess.TimeoutExpired as error:
            return 124, f"timed out after {timeout}s: {error.stdout or ''}{error.stderr or ''}"
        finally:
            self.pid_from_file()

    def log_tail(self, lines=12):
        for name in ("serve-foreground.log", os.path.join("logs", "serve.log")):
            try:
                with open(os.path.join(self.work, name), errors="replace") as handle:
                    return "".join(handle.readlines()[-lines:])
            except FileNotFoundError:
                continue
        return "(no log)"

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.stop(timeout=30)
        self.pid_from_file()
        if any(alive(pid) for pid in self.pids) and os.path.exists(os.path.join(self.work, "logs", "serve.pid")):
            self.daemon("--stop", timeout=60)
        for pid in self.pids:
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        if self.log:
            self.log.close()

    # --- HTTP
    def inf(self, method, path, **kw):
        return http_request(self.ports["inference"], method, path, **kw)

    def mgmt(self, method, path, **kw):
        return http_request(self.ports["management"], method, path, **kw)

    def metrics(self):
        return metric_samples(http_request(self.ports["metrics"], "GET", "/metrics").text())

    def describe(self, model, version=None):
        resp = self.mgmt("GET", f"/models/{model}" + (f"/{version}" if version else ""))
        parsed = resp.json()
        return resp, parsed if isinstance(parsed, list) else None

    def state(self, names):
        """{model: [(version, isDefault, minWorkers, maxWorkers, #READY workers, batchSize, modelUrl)]}"""
        state = {}
        for name in names:
            _, entries = self.describe(name, "all")
            if entries is not None:
                state[name] = [(e.get("modelVersion"), e.get("isDefault"), e.get("minWorkers"), e.get("maxWorkers"),
                                len([w for w in e.get("workers", []) if w.get("status") == "READY"]), e.get("batchSize"),
                                e.get("modelUrl")) for e in entries]
        return state

    def rss_bytes(self):
        with open(f"/proc/{self.pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return None


def metric_samples(text):
    """[(name, {label: value}, float)] of a Prometheus text page."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.match(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s+(\S+)", line)
        if match:
            labels = dict(re.findall(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
            try:
                out.append((match.group(1), labels, float(match.group(4))))
            except ValueError:
                pass
    return out


def metric_sum(samples, name, **labels):
    """(sum, number of series) of `name` samples whose labels include `labels`."""
    chosen = [v for n, l, v in samples if n == name and all(l.get(k) == w for k, w in labels.items())]
    return sum(chosen), len(chosen)


# ============================================================================= phases

def phase_loading(ctx):
    R.phase(1, "loading", "readiness while start-up models load (serve --foreground, three models)")
    srv = Server(ctx, "1-loading", load_models=",".join(ARCHIVES))
    t0 = time.monotonic()
    srv.spawn()
    port = srv.ports["inference"]
    probes = []  # (t since spawn, path, Resp)
    refused = 0
    order = ["/ping", "/v2/health/ready", "/v2/health/live"]
    first_ok = {}
    i, after = 0, 0
    while time.monotonic() - t0 < 120 and srv.proc.poll() is None:
        path = order[i % len(order)]
        i += 1
        resp = http_request(port, "GET", path, timeout=5)
        now = time.monotonic() - t0
        if resp.status == 0:
            refused += 1
            time.sleep(0.003)
            continue
        probes.append((now, path, resp))
        if resp.status == 200 and path not in first_ok:
            first_ok[path] = now
        if "/ping" in first_ok and "/v2/health/ready" in first_ok:
            after += 1
            if after >= 30:
                break
    answered = [p for p in probes]
    if not R.check("the inference port answers and /ping turns 200 within 120 s", "/ping" in first_ok,
                   "/ping 200", f"{len(answered)} answers, none 200; log: {srv.log_tail()}"):
        return
    first_answer = answered[0][0]
    R.info(f"port answered {first_answer:.2f} s after spawn ({refused} refused connects before), /ping 200 at "
           f"{first_ok['/ping']:.2f} s, /v2/health/ready 200 at {first_ok.get('/v2/health/ready', float('nan')):.2f} s; "
           f"{len(answered)} probes answered")
    lives = [r for _, p, r in answered if p == "/v2/health/live"]
    R.check(f"/v2/health/live 200 {{\"live\": true}} on every probe from the first answer on ({len(lives)} probes)",
            lives and all(r.status == 200 and r.json() == {"live": True} for r in lives),
            "all 200", collections.Counter(r.status for r in lives))
    for path, unready_body, ready_body in (("/ping", "Unhealthy", {"status": "Healthy"}), ("/v2/health/ready", False, {"ready": True})):
        before = [(t, r) for t, p, r in answered if p == path and t < first_ok.get(path, 1e9)]
        later = [(t, r) for t, p, r in answered if p == path and t >= first_ok.get(path, 1e9)]
        loading = [(t, r) for t, r in before if r.status == 503]
        reasons = collections.Counter((r.json() or {}).get("reason") for _, r in loading)
        if not before:
            R.skip(f"{path} 503 with a 'loading' reason before 200",
                   f"its first answer, {first_answer:.2f} s after spawn, was already 200: the models loaded before the port answered")
        else:
            key = "status" if path == "/ping" else "ready"
            R.check(f"{path}: {len(before)} answers before the first 200 are all 503 {{{key}: {unready_body!r}, reason: 'model X: loading'}} "
                    f"(reasons {dict(reasons)})",
                    len(loading) == len(before) and all((r.json() or {}).get(key) == unready_body
                                                        and "loading" in str((r.json() or {}).get("reason")) for _, r in loading),
                    "503 with a loading reason", [f"{t:.2f}s {r}" for t, r in before if r.status != 503 or
                                                  "loading" not in str((r.json() or {}).get("reason"))][:5])
        R.check(f"{path}: stays 200 {ready_body} once ready ({len(later)} answers after the first 200)",
                later and all(r.status == 200 and r.json() == ready_body for _, r in later),
                "all 200", [f"{t:.2f}s {r}" for t, r in later if r.status != 200][:5])
    # every start-up model answers once ready
    png, text = ctx.png, b"The compiler crashed and the kernel panicked"
    load = Load(port, [stream("unet", 1, "/predictions/unet", body=png, count=3),
                       stream("scenes", 1, "/predictions/scenes", body=png, count=3),
                       stream("fortunes", 1, "/predictions/fortunes", body=text, count=3)])
    load.wait_finite()
    result = load.finish()
    R.accounted(result)
    R.check(f"once ready, the three start-up models answer 200 ({result.counts()})",
            result.counts() == {"200": 9}, {"200": 9}, result.counts())
    srv.stop_checked("SIGTERM (drain_delay=0)")


def phase_overload(ctx):
    R.phase(2, "overload 429", "overload: job_queue_size=2, one worker, a burst of 40")
    srv = Server(ctx, "2-overload", load_models="unet.mar", job_queue_size=2)
    if not srv.start_foreground("job_queue_size=2"):
        return
    load = Load(srv.ports["inference"], [stream("burst", 40, "/predictions/unet", body=ctx.png, count=1, burst=True)])
    load.wait_finite()
    result = load.finish()
    R.accounted(result)
    counts = result.counts()
    full = [r for r in result.records if r.status == 429]
    R.check(f"the burst gets only 200s and 429s, some of each ({counts})",
            set(counts) <= {"200", "429"} and "200" in counts and "429" in counts, "200s and 429s only", counts)
    bad = [r.info for r in full if (r.info or {}).get("retry_after") != "1" or (r.info or {}).get("type") != "QueueFullException"]
    R.check(f"every 429 ({len(full)}) is QueueFullException with Retry-After: 1", full and not bad,
            "Retry-After: 1, type QueueFullException", short(bad[:3]))
    dropped, series = metric_sum(srv.metrics(), "ts_requests_dropped_total", reason="queue_full")
    R.check(f'ts_requests_dropped_total{{reason="queue_full"}} = the 429s ({len(full)})', series and dropped == len(full),
            len(full), f"{dropped} ({series} series)")
    resp, entries = srv.describe("unet")
    queue = entries[0].get("jobQueueStatus") if entries else None
    R.check("describe after the burst: jobQueueStatus back to remainingCapacity 2, pendingRequests 0",
            queue == {"remainingCapacity": 2, "pendingRequests": 0}, "2 / 0", short(queue or resp))
    srv.stop_checked()


def phase_deadlines(ctx):
    R.phase(3, "deadline 504", "deadlines: X-Request-Timeout-Ms: 1 while the worker is busy")
    srv = Server(ctx, "3-deadlines", load_models="unet.mar")
    if not srv.start_foreground("one worker"):
        return
    load = Load(srv.ports["inference"], [
        stream("busy", 4, "/predictions/unet", body=ctx.png),
        stream("deadline-1ms", 2, "/predictions/unet", body=ctx.png, count=10, delay=0.5, interval=0.02,
               headers={"X-Request-Timeout-Ms": "1"}),
        stream("deadline-60s", 1, "/predictions/unet", body=ctx.png, count=5, delay=0.5,
               headers={"X-Request-Timeout-Ms": "60000"}),
    ])
    load.wait_finite()
    time.sleep(0.3)
    result = load.finish()
    R.accounted(result)
    short_ones = result.of("deadline-1ms")
    expired = [r for r in short_ones if r.status == 504]
    R.check(f"X-Request-Timeout-Ms: 1 with a busy worker -> 504 every time ({result.counts('deadline-1ms')})",
            short_ones and len(expired) == len(short_ones), f"{len(short_ones)} x 504", result.counts("deadline-1ms"))
    bad = [r.info for r in expired if (r.info or {}).get("type") != "DeadlineExceededException"]
    R.check("every 504 is DeadlineExceededException", expired and not bad, "DeadlineExceededException", short(bad[:3]))
    slowest = max((r.t_end - r.t_start for r in expired), default=None)
    R.check(f"the 504s come at the deadline, not after the queue (slowest {slowest * 1000 if slowest else 0:.0f} ms; "
            f"{latency_summary(expired)})", slowest is not None and slowest < 1.0, "< 1000 ms", slowest)
    R.check(f"busy load without a deadline: all 200 ({result.counts('busy')}; {latency_summary(result.of('busy'))})",
            result.counts("busy") and set(result.counts("busy")) == {"200"}, "200 only", result.counts("busy"))
    R.check(f"X-Request-Timeout-Ms: 60000 -> 200 ({result.counts('deadline-60s')})", result.counts("deadline-60s") == {"200": 5},
            {"200": 5}, result.counts("deadline-60s"))
    samples = srv.metrics()
    dropped, series = metric_sum(samples, "ts_requests_dropped_total", reason="deadline")
    R.check(f'ts_requests_dropped_total{{reason="deadline"}} > 0 and = the 504s ({len(expired)})',
            series and dropped > 0 and dropped == len(expired), len(expired), f"{dropped} ({series} series)")
    srv.stop_checked()


def phase_swap(ctx):
    R.phase(4, "swap", "swap under load: PUT /models/unet?url=unet-v2.mar&swap=true")
    srv = Server(ctx, "4-swap", load_models="unet.mar")
    if not srv.start_foreground("unet 1.0"):
        return
    load = Load(srv.ports["inference"], [stream("predict", 4, "/predictions/unet", body=ctx.png)])
    time.sleep(2.5)
    t_swap = time.monotonic()
    resp = srv.mgmt("PUT", "/models/unet?url=unet-v2.mar&swap=true", timeout=300)
    t_swapped = time.monotonic()
    time.sleep(2.0)
    result = load.finish()
    R.accounted(result)
    R.check(f"PUT ...&swap=true -> 200, 2.0 default, 1.0 unregistered ({t_swapped - t_swap:.2f} s)",
            resp.status == 200 and resp.json() == {"status": 'Model "unet" Version: 2.0 is default; version 1.0 unregistered'},
            "200 {status: Model \"unet\" Version: 2.0 is default; version 1.0 unregistered}", resp)
    _, entries = srv.describe("unet", "all")
    versions = sorted((e.get("modelVersion"), e.get("isDefault")) for e in entries or [])
    R.check("GET /models/unet/all after the swap: only 2.0, the default", versions == [("2.0", True)], [("2.0", True)], versions)
    counts = result.counts()
    R.check(f"the load across the swap: zero non-200 and zero connection errors ({counts})",
            counts and set(counts) == {"200"}, "200 only",
            [(outcome(r), round(r.t_end - t_swap, 3), r.info) for r in result.records if r.status != 200][:5])
    before = [r for r in result.records if r.t_end < t_swap]
    across = [r for r in result.records if r.t_start < t_swapped and r.t_end > t_swap]
    after = [r for r in result.records if r.t_start >= t_swapped]
    R.info(f"latency before the swap: {latency_summary(before)}")
    R.info(f"latency across the swap ({t_swapped - t_swap:.2f} s): {latency_summary(across)}")
    R.info(f"latency after the swap:  {latency_summary(after)}")
    R.check(f"requests were answered while the swap ran ({len(across)}) and after it ({len(after)})", across and after,
            "both > 0", (len(across), len(after)))
    samples = srv.metrics()
    # The issue's bar: no latency spike beyond one forward pass (the mean forward from the stage histogram).
    forward_s, _ = metric_sum(samples, "ts_stage_duration_seconds_sum", model_name="unet", stage="forward")
    forwards, _ = metric_sum(samples, "ts_stage_duration_seconds_count", model_name="unet", stage="forward")
    if before and across and forwards:
        one_forward = forward_s / forwards
        worst_before = max(r.t_end - r.t_start for r in before)
        worst_across = max(r.t_end - r.t_start for r in across)
        R.check(f"no latency spike beyond one forward pass: max across {worst_across * 1000:.0f} ms <= max before "
                f"{worst_before * 1000:.0f} ms + one forward {one_forward * 1000:.0f} ms",
                worst_across <= worst_before + one_forward, f"<= {(worst_before + one_forward) * 1000:.0f} ms",
                f"{worst_across * 1000:.0f} ms")
    served, _ = metric_sum(samples, "ts_inference_requests_total", model_name="unet", model_version="2.0")
    R.check(f'ts_inference_requests_total{{model_version="2.0"}} counts the requests after the swap ({served:.0f} >= {len(after)})',
            served >= len(after) > 0, f">= {len(after)}", served)
    everything, series = metric_sum(samples, "ts_inference_requests_total", model_name="unet")
    ok = len([r for r in result.records if r.status == 200])
    # The swapped-out version's series leave with it (no label values of versions that are gone);
    # what the new version counted lies between the requests sent after the swap and all 200s.
    R.check(f"the swapped-out version's series are removed: ts_inference_requests_total has {series} series for unet",
            series == 1, 1, series)
    R.check(f"nothing doubled: version 2.0 counted {everything:.0f}, at most the 200s the load got ({ok})", everything <= ok, f"<= {ok}", everything)
    srv.stop_checked()


def phase_drain(ctx):
    drain, grace = 3, 10
    R.phase(5, "drain SIGTERM", f"drain: SIGTERM under load, drain_delay={drain}, graceful_shutdown_timeout={grace}")
    srv = Server(ctx, "5-drain", load_models="unet.mar", drain_delay=drain, graceful_shutdown_timeout=grace)
    if not srv.start_foreground("drain_delay=3"):
        return
    port = srv.ports["inference"]
    load = Load(port, [stream("predict", 4, "/predictions/unet", body=ctx.png, timeout=30),
                       stream("ping", 1, "/ping", method="GET", interval=0.05, timeout=5),
                       stream("live", 1, "/v2/health/live", method="GET", interval=0.1, timeout=5)])
    time.sleep(1.5)
    t_signal = time.monotonic()
    os.kill(srv.pid, signal.SIGTERM)
    # the checker's own /ping poll, for the time readiness takes to turn
    turned, first_503 = None, None
    while time.monotonic() - t_signal < 2.0:
        resp = http_request(port, "GET", "/ping", timeout=2)
        if resp.status == 503:
            turned, first_503 = time.monotonic() - t_signal, resp
            break
        time.sleep(0.01)
    # a backlog queued shortly before the listeners close: it must still be answered (in flight
    # and queued requests finish within graceful_shutdown_timeout)
    time.sleep(max(0.0, t_signal + drain - 0.55 - time.monotonic()))
    backlog = Load(port, [stream("backlog", 40, "/predictions/unet", body=ctx.png, count=1, burst=True, timeout=30)])
    try:
        rc = srv.proc.wait(drain + grace + 20)
    except subprocess.TimeoutExpired:
        rc = "still running"
    t_exit = time.monotonic() - t_signal
    time.sleep(0.5)
    result = load.finish()
    R.accounted(result)
    backlog.wait_finite(30)
    queued = backlog.finish()
    R.accounted(queued, "backlog")
    deadline = t_signal + drain
    R.check(f"/ping turns 503 within 0.5 s of SIGTERM ({turned if turned is None else round(turned, 3)} s: {first_503})",
            turned is not None and turned <= 0.5 and "drain" in str((first_503.json() or {}).get("reason")),
            "503 {status: Unhealthy, reason: server is draining} within 0.5 s", f"{turned} s: {first_503}")
    errors = [r for r in result.records if r.error]
    early = [r for r in errors if r.t_end < deadline]
    by_class = collections.Counter(r.error for r in errors)
    first_error = min((r.t_end - t_signal for r in errors), default=None)
    R.info(f"connection errors: {len(errors)} ({dict(by_class)}), the first {first_error if first_error is None else round(first_error, 3)} s "
           f"after the signal (drain deadline at +{drain} s, exit at +{t_exit:.2f} s)")
    R.check(f"no connection error before signal + drain_delay ({len(early)} of {len(errors)})", not early, "none",
            [(r.stream, r.error, round(r.t_end - t_signal, 3), (r.info or {}).get("message")) for r in early][:5])
    in_drain = [r for r in result.records if r.t_end < deadline]
    statuses = collections.Counter(r.status for r in in_drain)
    R.check(f"every request until the drain deadline is answered 200 or 503 ({dict(statuses)})",
            in_drain and set(statuses) <= {200, 503}, "200/503 only", dict(statuses))
    answered_late = [r for r in result.records if r.status and r.status not in (200, 503)]
    R.check("no answer other than 200 and 503 in the whole phase", not answered_late, "none",
            [(r.stream, r.status, r.info) for r in answered_late][:5])
    served = [r for r in result.of("predict") if r.status == 200 and r.t_start >= t_signal]
    R.check(f"predictions keep being served while draining ({len(served)} answered 200 after the signal, the last started at "
            f"+{max((r.t_start - t_signal for r in served), default=0):.2f} s)",
            served and max(r.t_start for r in served) > t_signal + drain * 0.7, f"200s until near +{drain} s", len(served))
    pings = [r for r in result.of("ping") if r.status]
    wrong = [r for r in pings if (r.t_start < t_signal and r.status != 200) or (r.t_start > t_signal + 0.5 and r.status != 503)]
    R.check(f"load's /ping: 200 before the signal, 503 'server is draining' from +0.5 s on ({outcome_counts(result.of('ping'))})",
            pings and not wrong and all("drain" in str((r.info or {}).get("reason")) for r in pings if r.status == 503),
            "so", [(round(r.t_start - t_signal, 3), r.status, (r.info or {}).get("reason")) for r in wrong][:5])
    lives = [r for r in result.of("live") if r.status]
    R.check(f"/v2/health/live 200 whenever answered, during the drain too ({outcome_counts(result.of('live'))})",
            lives and all(r.status == 200 for r in lives) and any(r.t_start > t_signal for r in lives), "200", outcome_counts(result.of("live")))
    inflight = [r for r in result.records if r.t_start < deadline <= r.t_end]
    R.info(f"requests in flight at the drain deadline (started before, ended after): {len(inflight)} ({outcome_counts(inflight)}; "
           "an error there is a request sent on a keep-alive connection as the server closed it)")
    sent_early = [r for r in queued.records if r.t_start < deadline]
    finished_late = [r for r in sent_early if r.status == 200 and r.t_end > deadline]
    burst_at = min((r.t_start - t_signal for r in queued.records), default=0)
    if not sent_early:
        R.skip("a burst queued just before the drain deadline is answered", f"the burst only left at +{burst_at:.2f} s, after the deadline")
    else:
        R.check(f"a burst of 40 sent at +{burst_at:.2f} s: all {len(sent_early)} sent before the drain deadline answered 200, "
                f"{len(finished_late)} of them after the listeners closed ({outcome_counts(queued.records)}; {latency_summary(queued.records)})",
                all(r.status == 200 for r in sent_early), "200 for each",
                [(outcome(r), round(r.t_start - t_signal, 3), round(r.t_end - t_signal, 3)) for r in sent_early if r.status != 200][:5])
    R.check(f"exit status 0 within drain_delay + graceful_shutdown_timeout + 5 s (exit at +{t_exit:.2f} s, rc {rc})",
            rc == 0 and drain - 0.2 <= t_exit <= drain + grace + 5, f"rc 0 at +{drain}..{drain + grace + 5} s", f"rc {rc} at +{t_exit:.2f} s")
    snapshot = os.path.join(srv.work, "logs", "config", "snapshot.json")
    try:
        with open(snapshot) as handle:
            data = json.load(handle)
        models = {m["name"]: m["defaultVersion"] for m in data.get("models", [])}
    except Exception as error:
        models = f"{type(error).__name__}: {error}"
    R.check(f"logs/config/snapshot.json exists after the exit and holds the registry ({models})", models == {"unet": "1.0"},
            {"unet": "1.0"}, models)


def phase_kill(ctx):
    R.phase(6, "kill -9 restore", "kill -9 under load, then serve --start restores the snapshot")
    srv = Server(ctx, "6-kill")
    rc, out = srv.daemon("--start")
    if not R.check("serve --start (no models) exits 0", rc == 0, "rc 0", f"rc {rc}: {short(out)}"):
        return
    steps = [("POST", "/models?url=unet.mar&model_name=unet&initial_workers=1", 200),
             ("POST", "/models?url=unet-v2.mar&model_name=unet&initial_workers=1", 200),
             ("PUT", "/models/unet/2.0/set-default", 200),
             ("PUT", "/models/unet/2.0?min_worker=2&synchronous=true", 200),
             ("POST", "/models?url=scenes.mar&initial_workers=1", 200)]
    for method, path, status in steps:
        resp = srv.mgmt(method, path, timeout=300)
        if not R.check(f"{method} {path} -> {status}", resp.status == status, status, resp):
            return
    names = ["unet", "scenes"]
    before = srv.state(names)
    R.info(f"state before the kill: {before}")
    R.check("before the kill: unet 1.0 + 2.0 (default, 2 READY workers), scenes 1.0",
            sorted(v[:2] + (v[4],) for v in before.get("unet", [])) == [("1.0", False, 1), ("2.0", True, 2)] and "scenes" in before,
            "so", before)
    port = srv.ports["inference"]
    load = Load(port, [stream("unet", 3, "/predictions/unet", body=ctx.png, timeout=10),
                       stream("scenes", 1, "/predictions/scenes", body=ctx.png, timeout=10)])
    time.sleep(1.5)
    pid = srv.pid_from_file()
    t_kill = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    dead = wait_for(lambda: not alive(pid), 30, 0.02)
    time.sleep(0.7)
    result = load.finish()
    R.accounted(result)
    R.check("kill -9 ends the server", dead, "dead", "alive")
    errors = [r for r in result.records if r.error]
    early = [r for r in errors if r.t_end < t_kill]
    R.info(f"outcomes: {result.counts()}; connection errors {dict(collections.Counter(r.error for r in errors))}, the first "
           f"{min((r.t_end - t_kill for r in errors), default=float('nan')):.3f} s after the kill")
    R.check(f"connection errors only after the kill ({len(errors)} errors, {len(early)} before)", errors and not early,
            "errors, none before the kill", [(r.error, round(r.t_end - t_kill, 3)) for r in early][:5])
    before_kill = [r for r in result.records if r.t_end < t_kill]
    R.check(f"every request answered before the kill is a 200 ({outcome_counts(before_kill)})",
            before_kill and all(r.status == 200 for r in before_kill), "200 only", outcome_counts(before_kill))
    started = time.monotonic()
    rc, out = srv.daemon("--start")
    if not R.check(f"serve --start again in the same folder exits 0 ({time.monotonic() - started:.1f} s)", rc == 0, "rc 0",
                   f"rc {rc}: {short(out)}\n{srv.log_tail()}"):
        return
    new_pid = srv.pid_from_file()
    R.check("a new server process runs", new_pid and new_pid != pid and alive(new_pid), "a new live pid", new_pid)
    after = wait_for(lambda: srv.state(names) == before and before, 60) or srv.state(names)
    R.check("models, versions, default version, READY workers, batch size and URL restored", after == before, before, after)
    load = Load(port, [stream("unet", 2, "/predictions/unet", body=ctx.png, count=5),
                       stream("unet-1.0", 1, "/predictions/unet/1.0", body=ctx.png, count=3),
                       stream("scenes", 1, "/predictions/scenes", body=ctx.png, count=3)])
    load.wait_finite()
    result = load.finish()
    R.accounted(result, "load after the restart")
    R.check(f"predictions work again after the restart ({result.counts()})", result.counts() == {"200": 16}, {"200": 16}, result.counts())
    rc, out = srv.daemon("--stop")
    R.check("serve --stop exits 0", rc == 0, "rc 0", f"rc {rc}: {short(out)}")


def phase_rss(ctx):
    R.phase(7, "RSS shared weights", "RSS of shared weights: 1 worker, then 4")
    srv = Server(ctx, "7-rss", load_models="fortunes.mar,unet.mar")
    if not srv.start_foreground("fortunes + unet, 1 worker each"):
        return
    port = srv.ports["inference"]
    text = b"The compiler crashed and the kernel panicked"
    # fortunes: weights 7.7 MiB, activations of a short text tiny -> the telling figure;
    # unet: weights 3.2 MiB, activations of a 96x128 image several MiB per worker.
    for model, body, allowance in (("fortunes", text, 2), ("unet", ctx.png, 12)):
        _, entries = srv.describe(model)
        weights = entries[0]["workers"][0].get("memoryUsage") if entries and entries[0].get("workers") else None
        with zipfile.ZipFile(os.path.join(srv.store, f"{model}.mar")) as archive:
            pt = sum(i.file_size for i in archive.infolist() if i.filename.endswith(".pt"))
        load = Load(port, [stream("warm-up", 1, f"/predictions/{model}", body=body, count=10)])
        load.wait_finite()
        warm = load.finish()
        R.accounted(warm, f"{model} warm-up (1 worker)")
        time.sleep(0.3)
        rss1 = srv.rss_bytes()
        metric1, _ = metric_sum(srv.metrics(), "process_resident_memory_bytes")
        resp = srv.mgmt("PUT", f"/models/{model}?min_worker=4&synchronous=true", timeout=300)
        R.check(f"PUT /models/{model}?min_worker=4&synchronous=true -> 200", resp.status == 200
                and resp.json() == {"status": f"Workers scaled to 4 for model: {model}"}, 200, resp)
        _, entries = srv.describe(model)
        workers = entries[0].get("workers", []) if entries else []
        R.check(f"{model}: 4 READY workers, each reporting the same {weights} bytes of (shared) weights",
                len(workers) == 4 and all(w.get("status") == "READY" and w.get("memoryUsage") == weights for w in workers),
                "4 READY", [(w.get("id"), w.get("status"), w.get("memoryUsage")) for w in workers])
        load = Load(port, [stream("concurrent", 4, f"/predictions/{model}", body=body, count=25)])
        load.wait_finite()
        busy = load.finish()
        R.accounted(busy, f"{model} with 4 workers, concurrency 4")
        R.check(f"{model}: all 200 with 4 workers ({busy.counts()}; {latency_summary(busy.records)})",
                busy.counts() == {"200": 100}, {"200": 100}, busy.counts())
        time.sleep(0.3)
        rss4 = srv.rss_bytes()
        metric4, _ = metric_sum(srv.metrics(), "process_resident_memory_bytes")
        diff = rss4 - rss1
        limit = (weights or pt) + 3 * allowance * MIB
        R.info(f"{model}: weights {(weights or 0) / MIB:.2f} MiB (describe memoryUsage; .pt in the archive {pt / MIB:.2f} MiB); "
               f"VmRSS 1 worker {rss1 / MIB:.1f} MiB -> 4 workers {rss4 / MIB:.1f} MiB: RSS(4) - RSS(1) = {diff / MIB:.1f} MiB "
               f"(process_resident_memory_bytes {metric1 / MIB:.1f} -> {metric4 / MIB:.1f} MiB); three private copies would add "
               f"{3 * (weights or pt) / MIB:.1f} MiB")
        R.check(f"{model}: RSS(4) - RSS(1) = {diff / MIB:.1f} MiB < one copy of the weights ({(weights or pt) / MIB:.1f} MiB) "
                f"+ 3 x {allowance} MiB activations ({limit / MIB:.1f} MiB)", weights and diff < limit, f"< {limit / MIB:.1f} MiB",
                f"{diff / MIB:.1f} MiB")
        if model == "unet":
            R.info("unet: its weights (3.2 MiB) are smaller than one worker's activations, so this figure cannot tell shared "
                   "from copied weights; fortunes' can")
    srv.stop_checked()


def phase_disconnect(ctx):
    R.phase(8, "client disconnect", "client disconnect: a queued request whose client went away")
    srv = Server(ctx, "8-disconnect", load_models="unet.mar")
    if not srv.start_foreground("one worker"):
        return
    port = srv.ports["inference"]
    load = Load(port, [stream("queue", 30, "/predictions/unet", body=ctx.png, count=3, burst=True)])
    time.sleep(0.3)
    _, entries = srv.describe("unet")
    pending = entries[0]["jobQueueStatus"]["pendingRequests"] if entries else None
    head = (f"POST /predictions/unet HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: image/png\r\n"
            f"X-Request-Id: chaos-abandoned\r\nContent-Length: {len(ctx.png)}\r\n\r\n").encode()
    sock = socket.create_connection((HOST, port), timeout=5)
    sock.sendall(head + ctx.png)
    sock.close()
    R.info(f"raw socket sent a whole POST /predictions/unet ({len(ctx.png)} bytes) and closed at once, "
           f"{pending} requests pending in the queue then")
    load.wait_finite()
    result = load.finish()
    R.accounted(result)
    R.check(f"the queued load is all 200 ({result.counts()}; {latency_summary(result.records)})", result.counts() == {"200": 90},
            {"200": 90}, result.counts())
    R.check(f"the queue was busy when the client went away ({pending} pending)", pending is not None and pending >= 5, ">= 5", pending)
    time.sleep(1.0)
    samples = srv.metrics()
    dropped, series = metric_sum(samples, "ts_requests_dropped_total", reason="disconnected")
    ran, _ = metric_sum(samples, "ts_inference_requests_total", model_name="unet")
    R.info(f"ts_inference_requests_total{{model_name=\"unet\"}} = {ran:.0f} for the {result.counts().get('200', 0)} answers the load got "
           f"and the abandoned request")
    R.check('ts_requests_dropped_total{reason="disconnected"} >= 1 after the queue emptied', series and dropped >= 1,
            ">= 1", f"{dropped} ({series} series)" if series else
            'no reason="disconnected" series: the server did not count (or notice) the client that closed its connection')
    srv.stop_checked()


# ============================================================================= main

class Context:
    def __init__(self, serve, root):
        self.serve = serve
        self.root = root
        self.servers = []
        self.store = os.path.join(root, "store")
        os.makedirs(self.store)
        for name in ARCHIVES:
            shutil.copy(os.path.join(REPO, "model_store", name), self.store)
        make_version(os.path.join(self.store, "unet.mar"), os.path.join(self.store, "unet-v2.mar"), "2.0")
        with open(os.path.join(REPO, "model_store", "samples", "scene_0.png"), "rb") as handle:
            self.png = handle.read()


def make_version(source, target, version):
    """A copy of an archive whose manifest says `version`."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            data = old.read(item.filename)
            if item.filename == "MAR-INF/MANIFEST.json":
                manifest = json.loads(data)
                manifest["model"]["modelVersion"] = version
                data = json.dumps(manifest, indent=2).encode()
            new.writestr(item, data, compress_type=item.compress_type)


def management_burst(srv, expected, versions, rng, stop, log):
    """Sends random management calls for model unet, one at a time, until `stop` is set, and
    applies each 2xx to `expected` ({version: minWorkers}, "default": version). Appends to `log`
    (method, path, status, error, t_start, t_end); the call that got no answer is the in-flight one."""
    while not stop.is_set():
        present = sorted(v for v in expected if v != "default")
        default = expected.get("default")
        choices = []
        missing = [v for v in versions if v not in present]
        if missing:
            choices += [("register", v) for v in missing]
        choices += [("scale", v) for v in present]
        choices += [("set-default", v) for v in present if v != default]
        choices += [("unregister", v) for v in present if v != default or len(present) == 1]
        choices.append(("unregister", default or "1.0"))  # the default while others exist: 403, must change nothing
        action, version = rng.choice(choices)
        workers = rng.choice([1, 2])
        if action == "register":
            archive = "unet.mar" if version == "1.0" else f"unet-v{version[0]}.mar"
            method, path = "POST", f"/models?url={archive}&model_name=unet&initial_workers={workers}&synchronous=true"
        elif action == "scale":
            method, path = "PUT", f"/models/unet/{version}?min_worker={workers}&max_worker={workers}&synchronous={rng.choice(['true', 'false'])}"
        elif action == "set-default":
            method, path = "PUT", f"/models/unet/{version}/set-default"
        else:
            method, path = "DELETE", f"/models/unet/{version}"
        t_start = time.monotonic()
        resp = srv.mgmt(method, path, timeout=120)
        log.append((method, path, resp.status, resp.error, t_start, time.monotonic(), (action, version, workers)))
        if resp.status == 0:
            return  # the server is gone; this call's outcome is unknown
        if 200 <= resp.status < 300:
            apply_change(expected, action, version, workers)


def apply_change(expected, action, version, workers):
    """What an acknowledged call does to the expected registry of model unet."""
    if action == "register":
        expected[version] = workers
        expected.setdefault("default", version)
    elif action == "scale":
        expected[version] = workers
    elif action == "set-default":
        expected["default"] = version
    elif action == "unregister":
        expected.pop(version, None)
        if expected.get("default") == version:
            expected.pop("default")


def observed_unet(srv):
    """The registry of model unet as describe shows it, in the form of `expected`."""
    resp, entries = srv.describe("unet", "all")
    if resp.status == 404:
        return {}
    if entries is None:
        return None
    state = {e.get("modelVersion"): e.get("minWorkers") for e in entries}
    state.update({"default": e.get("modelVersion") for e in entries if e.get("isDefault")})
    return state


def phase_kill_management(ctx, rounds=20):
    R.phase(9, "kill -9 mgmt", f"kill -9 at a random moment of a burst of management calls, {rounds} times")
    srv = Server(ctx, "9-kill-management", enable_grpc="false")
    make_version(os.path.join(srv.store, "unet.mar"), os.path.join(srv.store, "unet-v3.mar"), "3.0")
    rc, out = srv.daemon("--start")
    if not R.check("serve --start (no models) exits 0", rc == 0, "rc 0", f"rc {rc}: {short(out)}"):
        return
    import random
    rng = random.Random(int(os.environ.get("CHAOS_SEED", "19")))
    expected = {}
    acknowledged = refused = unknown = unknown_applied = mismatches = 0
    statuses = collections.Counter()
    for number in range(1, rounds + 1):
        log = []
        stop = threading.Event()
        burst = threading.Thread(target=management_burst, args=(srv, expected, ["1.0", "2.0", "3.0"], rng, stop, log), daemon=True)
        pid = srv.pid_from_file()
        burst.start()
        delay = rng.uniform(0.05, 3.0)
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        dead = wait_for(lambda: not alive(pid), 30, 0.02)
        stop.set()
        burst.join(150)
        statuses.update(str(entry[2]) if entry[2] else "no answer" for entry in log)
        acknowledged += sum(1 for entry in log if 200 <= entry[2] < 300)
        refused += sum(1 for entry in log if entry[2] >= 300)
        in_flight = [entry for entry in log if entry[2] == 0]
        rc, out = srv.daemon("--start")
        if not R.check(f"round {number}: killed {delay:.2f} s into the burst, serve --start again exits 0", dead and rc == 0,
                       "dead, then rc 0", f"dead={dead}, rc {rc}: {short(out)}\n{srv.log_tail()}"):
            return
        observed = wait_for(lambda: (lambda state: state is not None and (state,))(observed_unet(srv)), 60)
        after = observed[0] if observed else None
        # The call in flight at the kill may or may not have been written; every acknowledged one was.
        allowed = [dict(expected)]
        if in_flight:
            unknown += 1
            applied = dict(expected)
            apply_change(applied, *in_flight[0][6])
            allowed.append(applied)
        ok = after in allowed
        if ok and in_flight and after == allowed[-1] and allowed[-1] != allowed[0]:
            unknown_applied += 1
        if not ok:
            mismatches += 1
        R.check(f"round {number}: {len(log)} calls ({sum(1 for e in log if 200 <= e[2] < 300)} acknowledged), after the restart "
                f"unet is {after}", ok, f"one of {allowed}", after)
        if in_flight and ok:
            expected.clear()
            expected.update(after)
        leftovers = [n for n in os.listdir(os.path.join(srv.work, "logs", "config")) if n != "snapshot.json"] \
            if os.path.isdir(os.path.join(srv.work, "logs", "config")) else []
        if leftovers:
            R.check(f"round {number}: the snapshot folder holds only snapshot.json", False, "snapshot.json", leftovers)
    R.info(f"{rounds} kills: {acknowledged} calls acknowledged (2xx), {refused} refused (non-2xx), {unknown} in flight at the "
           f"kill ({unknown_applied} of them were found applied); outcomes {dict(sorted(statuses.items()))}")
    R.check(f"every acknowledged change survived all {rounds} kills", mismatches == 0, "0 mismatches", mismatches)
    rc, out = srv.daemon("--stop")
    R.check("serve --stop exits 0", rc == 0, "rc 0", f"rc {rc}: {short(out)}")


PHASES = [phase_loading, phase_overload, phase_deadlines, phase_swap, phase_drain, phase_kill, phase_rss, phase_disconnect,
          phase_kill_management]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", default=os.path.join(REPO, ".build", "release", "serve"))
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    parser.add_argument("--only", default="", help="comma-separated phase numbers to run (default: all)")
    options = parser.parse_args()
    serve = os.path.abspath(options.serve)
    if not os.access(serve, os.X_OK):
        print(f"chaos: {serve} is not an executable; build it first (scripts/check/chaos does)")
        return 2
    only = {int(n) for n in options.only.split(",") if n.strip()}
    root = tempfile.mkdtemp(prefix="chaos-")
    print(f"working folder {root}\nserve {serve}")
    started = time.monotonic()
    ctx = Context(serve, root)
    try:
        for number, phase in enumerate(PHASES, 1):
            if only and number not in only:
                continue
            try:
                phase(ctx)
            except Exception as error:  # a crash of one phase is its failure; the others still run
                traceback.print_exc()
                R.check(f"phase {number} ran to the end", False, "no exception", f"{type(error).__name__}: {error}")
            finally:
                for load in Load.every:
                    load.kill()
                for server in ctx.servers:
                    server.cleanup()
    finally:
        if R.phases:
            R.phases[-1]["closed"] = True  # the cleanup check belongs to no phase
        for server in ctx.servers:
            server.cleanup()
        leftover = [pid for s in ctx.servers for pid in s.pids if alive(pid)]
        R.check("cleanup: no server started here is left running", not leftover, "none", f"pids {leftover}")
        if options.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    print(f"\n{'phase':<22} {'result':<6} {'checks':<17} {'load sent':>9}  outcomes (status code or connection error class)")
    for p in R.phases:
        outcomes = " ".join(f"{k}:{v}" for k, v in sorted(p["outcomes"].items(), key=lambda kv: (not kv[0].isdigit(), kv[0])))
        verdict = "FAIL" if p["failed"] else "PASS"
        checks = f"{p['passed']}/{p['passed'] + p['failed']}" + (f" +{p['skipped']} skip" if p["skipped"] else "")
        print(f"{p['number']}. {p['name']:<19} {verdict:<6} {checks:<17} {p['sent']:>9}  {outcomes}")
    total = R.passed + len(R.failures)
    print(f"\nSUMMARY: {total} checks, {R.passed} passed, {len(R.failures)} failed, {len(R.skipped)} skipped; "
          f"{time.monotonic() - started:.0f} s")
    for line in R.failures + R.skipped:
        print(line)
    return 0 if not R.failures else 1


if __name__ == "__main__":
    sys.exit(main())
