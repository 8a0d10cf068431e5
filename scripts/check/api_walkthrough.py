#!/usr/bin/python3
"""API walkthrough: drives `serve` as a TorchServe user would and checks every answer
against docs/api.md (the HTTP contract).

How to run (from the repository root):

    scripts/check/api-walkthrough            # builds serve + archiver (release) if needed, runs this
    SCRATCH=.build-check scripts/check/api-walkthrough   # another build folder
    /usr/bin/python3 scripts/check/api_walkthrough.py --serve PATH --archiver PATH [--keep]

Standard library only (Debian's /usr/bin/python3). Everything happens in a fresh temporary
folder: a config.properties with random free loopback ports, token authorization on,
enable_model_api=true, max_request_size=100000, job_queue_size=4, and a copy of the repo's
model_store/ as the store. Only 127.0.0.1 is contacted. Phases:

  1. CLI: --help, --start (returns once /ping is healthy), a second --start fails, key_file.json
  2. auth: missing/wrong/other-port keys -> 401 + WWW-Authenticate; exempt routes; key renewal
  3. register (sync 200, async 202, 409), a v2 built with `archiver`, versions, set-default,
     predictions (JSON mask, PNG mask, overlay, multipart, text classifier), unregister rules
  4. scale 2 -> 1 (sync and async), describe (default, explicit, all), list with pagination
  5. errors: bad parameters, unknown model/version/route, 405, 413, 415, corrupt PNG, 429
  6. http(s) registration gated by allowed_urls (a local http.server), swap (PUT ...&swap=true)
  7. metrics port, OPTIONS / and /api-description
  8. kill -9, serve --start again: models, versions, default and workers restored; serve --stop
  9. a second server with enable_model_api=false, --models and --ncs; a start on a busy port

One line per check (PASS/FAIL, with expected vs actual on failure), then a summary.
Exit status 0 only when every check passed. Servers started here are always stopped.
"""

import argparse
import base64
import http.client
import http.server
import json
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
import zipfile
import zlib

from checkutil import alive, free_port, short, wait_for  # scripts/check/checkutil.py

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOST = "127.0.0.1"
MASK_H, MASK_W, NUM_CLASSES = 96, 128, 8
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ERROR_TYPES_BY_STATUS = {
    400: {"BadRequestException", "InvalidInputException", "InvalidModelException", "DownloadArchiveException"},
    401: {"InvalidKeyException"}, 403: {"InvalidArchiveURLException", "ModelApiDisabledException", "InvalidModelVersionException"},
    404: {"ResourceNotFoundException", "ModelNotFoundException", "ModelVersionNotFoundException"},
    405: {"MethodNotAllowedException"}, 409: {"ConflictStatusException"}, 413: {"RequestTooLargeException"},
    415: {"UnsupportedMediaTypeException"}, 429: {"QueueFullException"}, 500: {"InternalServerException"},
    503: {"ServiceUnavailableException"}, 504: {"DeadlineExceededException"}, 507: {"OutOfMemoryException"},
}
ABSENT = object()


# ----------------------------------------------------------------------------- reporting

class Report:
    def __init__(self):
        self.passed = 0
        self.failures = []
        self.skipped = []
        self.responses = []  # (port kind, method, path, status, x-request-id) of every response

    def check(self, name, ok, expected="", actual=""):
        if ok:
            self.passed += 1
            print(f"PASS {name}", flush=True)
        else:
            line = f"FAIL {name}: expected {expected}; got {actual}"
            self.failures.append(line)
            print(line, flush=True)
        return ok

    def skip(self, name, reason):
        line = f"SKIP {name} ({reason})"
        self.skipped.append(line)
        print(line, flush=True)

    def problems(self, name, problems):
        """One check from a list of (expected, actual) mismatches."""
        if not problems:
            return self.check(name, True)
        return self.check(name, False, " | ".join(str(p[0]) for p in problems), " | ".join(str(p[1]) for p in problems))

    def section(self, title):
        print(f"\n== {title}", flush=True)


R = Report()


# ----------------------------------------------------------------------------- HTTP

class Resp:
    def __init__(self, status, headers, body, error=None):
        self.status, self.headers, self.body, self.error = status, headers, body, error

    def header(self, name):
        return self.headers.get(name.lower())

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except Exception:
            return ABSENT

    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return f"{self.status} {short(self.text(), 400)}"


class Server:
    """The ports and keys of one running `serve`."""

    def __init__(self, ports, workdir):
        self.ports = ports  # {"inference": p, "management": p, "metrics": p}
        self.workdir = workdir
        self.keys = {}

    def load_keys(self):
        with open(os.path.join(self.workdir, "key_file.json")) as handle:
            data = json.load(handle)
        self.keys = {kind: data[kind]["key"] for kind in data}
        return data

    def request(self, port_kind, method, path, body=None, headers=None, token=ABSENT, timeout=180):
        """token: ABSENT = the port's key, None = no Authorization header, else that key."""
        all_headers = {}
        if token is ABSENT:
            token = self.keys.get(port_kind)
        if token is not None:
            all_headers["Authorization"] = "Bearer " + token
        all_headers.update(headers or {})
        if isinstance(body, str):
            body = body.encode("utf-8")
        port = self.ports[port_kind]
        conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
        send_error = None
        try:
            try:
                conn.request(method, path, body=body, headers=all_headers)
            except (BrokenPipeError, ConnectionResetError) as error:
                send_error = error  # the server may answer (413) before reading the whole body
            try:
                response = conn.getresponse()
                data = response.read()
            except Exception as error:
                resp = Resp(0, {}, b"", error=f"{type(error).__name__}: {error} (send: {send_error})")
                R.responses.append((port_kind, method, path, 0, None))
                return resp
            headers_out = {}
            for key, value in response.getheaders():
                headers_out[key.lower()] = value
            resp = Resp(response.status, headers_out, data)
            R.responses.append((port_kind, method, path, response.status, headers_out.get("x-request-id")))
            return resp
        except Exception as error:
            R.responses.append((port_kind, method, path, 0, None))
            return Resp(0, {}, b"", error=f"{type(error).__name__}: {error}")
        finally:
            conn.close()

    def inf(self, method, path, **kw):
        return self.request("inference", method, path, **kw)

    def mgmt(self, method, path, **kw):
        return self.request("management", method, path, **kw)

    def metrics(self, method, path, **kw):
        kw.setdefault("token", None)
        return self.request("metrics", method, path, **kw)


def expect(name, resp, status, body=ABSENT, error=None, ctype="application/json", headers=None, extra=None):
    """One check: status, content type, JSON body (exact, as parsed) or error shape, headers;
    `extra(resp)` returns further (expected, actual) problems."""
    problems = []
    if resp.status != status:
        problems.append((f"status {status}", f"status {resp.status}" + (f" ({resp.error})" if resp.error else "") + f" body {short(resp.text())}"))
    else:
        if ctype is not None:
            actual = resp.header("content-type") or ""
            if not actual.split(";")[0].strip().lower() == ctype.split(";")[0].strip().lower() or (";" in ctype and actual.replace(" ", "").lower() != ctype.replace(" ", "").lower()):
                problems.append((f"Content-Type {ctype}", f"Content-Type {actual or '(none)'}"))
        if body is not ABSENT:
            parsed = resp.json()
            if parsed != body:
                problems.append((f"body {json.dumps(body)}", f"body {short(resp.text())}"))
        if error is not None:
            problems += error_shape_problems(resp, status, error)
        for key, value in (headers or {}).items():
            actual = resp.header(key)
            ok = value(actual) if callable(value) else actual == value
            if not ok:
                problems.append((f"header {key}: {'(valid)' if callable(value) else value}", f"header {key}: {actual}"))
        if extra is not None and not problems:
            try:
                problems += extra(resp) or []
            except Exception as failure:  # a malformed answer must not stop the walkthrough
                problems.append(("a well-formed answer", f"{type(failure).__name__}: {failure}; body {short(resp.text())}"))
    return R.problems(name, problems)


def error_shape_problems(resp, status, error_type):
    parsed = resp.json()
    if not isinstance(parsed, dict):
        return [(f'JSON {{"code": {status}, "type": "{error_type}", "message": ...}}', f"body {short(resp.text())}")]
    problems = []
    if set(parsed) != {"code", "type", "message"}:
        problems.append(("keys code,type,message", f"keys {','.join(parsed)}"))
    if parsed.get("code") != status:
        problems.append((f"code {status}", f"code {parsed.get('code')!r}"))
    if parsed.get("type") != error_type:
        problems.append((f"type {error_type}", f"type {parsed.get('type')!r} (message {parsed.get('message')!r})"))
    if not isinstance(parsed.get("message"), str) or not parsed.get("message"):
        problems.append(("a non-empty message", f"message {parsed.get('message')!r}"))
    return problems


def q(value):
    from urllib.parse import quote
    return quote(str(value), safe="")


# ----------------------------------------------------------------------------- PNG, masks, multipart

def png_decode(data):
    """(width, height, color type, rows as bytes) of an 8-bit, non-interlaced gray/RGB/RGBA PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        elif kind == b"IEND":
            break
    width, height, depth, ctype, _, _, interlace = ihdr
    if depth != 8 or interlace != 0 or ctype not in (0, 2, 6):
        return width, height, ctype, depth, None
    bpp = {0: 1, 2: 3, 6: 4}[ctype]
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev, i = [], bytearray(stride), 0
    for _ in range(height):
        ftype = raw[i]
        line = bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if ftype == 1:
                line[x] = (line[x] + a) & 255
            elif ftype == 2:
                line[x] = (line[x] + b) & 255
            elif ftype == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, ctype, depth, b"".join(rows)


def mask_problems(resp):
    """A default JSON segmentation answer: sole key base64_prediction, 96*128 class ids < 8."""
    parsed = resp.json()
    if not isinstance(parsed, dict) or list(parsed) != ["base64_prediction"]:
        return [('{"base64_prediction": "<b64>"} (sole key)', f"body {short(resp.text())}")]
    try:
        mask = base64.b64decode(parsed["base64_prediction"], validate=True)
    except Exception as error:
        return [("padded standard base64", f"{error}")]
    if len(mask) != MASK_H * MASK_W:
        return [(f"{MASK_H * MASK_W} mask bytes", f"{len(mask)} bytes")]
    if max(mask) >= NUM_CLASSES:
        return [(f"class ids < {NUM_CLASSES}", f"max {max(mask)}")]
    return []


def mask_of(resp):
    try:
        return base64.b64decode(resp.json()["base64_prediction"])
    except Exception:
        return None


def multipart(fields):
    boundary = "walkthrough" + os.urandom(8).hex()
    parts = []
    for name, filename, ctype, data in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        parts.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: {ctype}\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


# ----------------------------------------------------------------------------- processes

def port_open(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex((HOST, port)) == 0


class Daemon:
    """`serve --start/--stop` in one working folder; remembers every pid it saw, for cleanup."""

    def __init__(self, serve, workdir, args):
        self.serve, self.workdir, self.args = serve, workdir, args
        self.pids = set()

    @property
    def pid_file(self):
        return os.path.join(self.workdir, "logs", "serve.pid")

    def pid(self):
        try:
            with open(self.pid_file) as handle:
                pid = int(handle.read().strip())
            self.pids.add(pid)
            return pid
        except (FileNotFoundError, ValueError):
            return None

    def run(self, args, timeout=600):
        try:
            done = subprocess.run([self.serve] + args, cwd=self.workdir, capture_output=True, text=True, timeout=timeout)
            return done.returncode, done.stdout + done.stderr
        except subprocess.TimeoutExpired as error:
            return 124, f"timed out after {timeout}s: {error.stdout or ''}{error.stderr or ''}"
        finally:
            self.pid()

    def start(self, extra=()):
        return self.run(["--start"] + self.args + list(extra))

    def stop(self):
        return self.run(["--stop"], timeout=120)

    def log_tail(self, lines=15):
        try:
            with open(os.path.join(self.workdir, "logs", "serve.log"), errors="replace") as handle:
                return "".join(handle.readlines()[-lines:])
        except FileNotFoundError:
            return "(no logs/serve.log)"

    def cleanup(self):
        self.pid()
        if any(alive(pid) for pid in self.pids):
            self.stop()
        for pid in self.pids:
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


class ArchiveHost:
    """A tiny http.server on 127.0.0.1 serving a folder; records the paths asked for."""

    def __init__(self, folder):
        host = self
        self.paths = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=folder, **kwargs)

            def do_GET(self):
                host.paths.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# ----------------------------------------------------------------------------- describe

DESCRIBE_KEYS = ["modelName", "modelVersion", "modelUrl", "runtime", "handler", "isDefault", "minWorkers", "maxWorkers",
                 "batchSize", "maxBatchDelay", "responseTimeout", "startupTimeout", "deviceType", "deviceIds",
                 "loadedAtStartup", "workers", "jobQueueStatus"]
WORKER_KEYS = ["id", "startTime", "status", "memoryUsage", "pid", "gpu", "device", "gpuUsage"]


def describe_entry_problems(entry, server_pid=None, queue_size=None):
    problems = []
    if not isinstance(entry, dict):
        return [("an object", short(entry))]
    missing = [key for key in DESCRIBE_KEYS if key not in entry]
    if missing:
        problems.append((f"keys {DESCRIBE_KEYS}", f"missing {missing}"))
        return problems
    types = {"modelName": str, "modelVersion": str, "modelUrl": str, "runtime": str, "handler": str, "isDefault": bool,
             "minWorkers": int, "maxWorkers": int, "batchSize": int, "maxBatchDelay": int, "responseTimeout": int,
             "startupTimeout": int, "deviceType": str, "deviceIds": list, "loadedAtStartup": bool, "workers": list,
             "jobQueueStatus": dict}
    for key, kind in types.items():
        if not isinstance(entry[key], kind) or (kind is int and isinstance(entry[key], bool)):
            problems.append((f"{key} of type {kind.__name__}", f"{key} = {entry[key]!r}"))
    uses_gpu = any(isinstance(w, dict) and w.get("gpu") for w in entry["workers"])
    if not uses_gpu and (entry["deviceType"] != "cpu" or entry["deviceIds"] != []):
        problems.append(('CPU: "deviceType": "cpu", "deviceIds": []', f'deviceType {entry["deviceType"]!r}, deviceIds {entry["deviceIds"]!r}'))
    for worker in entry["workers"]:
        if not isinstance(worker, dict) or [k for k in WORKER_KEYS if k not in worker]:
            problems.append((f"worker keys {WORKER_KEYS}", short(worker)))
            continue
        wid = worker["id"]
        if not (isinstance(wid, str) and wid.isdigit() and int(wid) >= 9000):
            problems.append(('worker id a decimal string >= "9000"', f"id {wid!r}"))
        if not (isinstance(worker["startTime"], str) and ISO_MS.match(worker["startTime"])):
            problems.append(("startTime UTC ISO-8601 with ms", f"startTime {worker['startTime']!r}"))
        if worker["status"] not in ("LOADING", "READY", "UNLOADING", "FAILED"):
            problems.append(("status LOADING/READY/UNLOADING/FAILED", f"status {worker['status']!r}"))
        if not (isinstance(worker["memoryUsage"], int) and worker["memoryUsage"] > 0):
            problems.append(("memoryUsage > 0 bytes", f"memoryUsage {worker['memoryUsage']!r}"))
        if server_pid is not None and worker["pid"] != server_pid:
            problems.append((f"pid {server_pid} (the server's)", f"pid {worker['pid']!r}"))
        if worker["gpu"]:
            if not re.match(r"^cuda:\d+$", str(worker["device"])) or not re.match(r"^gpuId::\d+$", str(worker["gpuUsage"])):
                problems.append(('GPU worker: device "cuda:N", gpuUsage "gpuId::N"', f"{worker['device']!r}, {worker['gpuUsage']!r}"))
        elif worker["device"] != "cpu" or worker["gpuUsage"] != "N/A" or worker["gpu"] is not False:
            problems.append(('CPU worker: "gpu": false, "device": "cpu", "gpuUsage": "N/A"',
                             f"gpu {worker['gpu']!r}, device {worker['device']!r}, gpuUsage {worker['gpuUsage']!r}"))
    queue = entry["jobQueueStatus"]
    if set(queue) != {"remainingCapacity", "pendingRequests"}:
        problems.append(("jobQueueStatus {remainingCapacity, pendingRequests}", short(queue)))
    elif queue_size is not None and queue["remainingCapacity"] + queue["pendingRequests"] != queue_size:
        problems.append((f"remainingCapacity + pendingRequests = job_queue_size {queue_size}", short(queue)))
    return problems


def describe(server, model, version=None):
    path = f"/models/{model}" + (f"/{version}" if version else "")
    resp = server.mgmt("GET", path)
    parsed = resp.json()
    return resp, parsed if isinstance(parsed, list) else None


def workers_ready(server, model, version, count):
    """Polls describe until `count` READY workers (and no others) run."""
    def probe():
        _, entries = describe(server, model, version)
        if not entries:
            return None
        workers = entries[0]["workers"]
        return len(workers) == count and all(w["status"] == "READY" for w in workers) and entries
    return wait_for(probe, 180, 0.25)


def state_of(server, names):
    """{model: [(version, isDefault, minWorkers, maxWorkers, #workers, batchSize, modelUrl)]}, from describe .../all."""
    state = {}
    for name in names:
        _, entries = describe(server, name, "all")
        if entries is not None:
            state[name] = [(e.get("modelVersion"), e.get("isDefault"), e.get("minWorkers"), e.get("maxWorkers"),
                            len(e.get("workers", [])), e.get("batchSize"), e.get("modelUrl")) for e in entries]
    return state


# ----------------------------------------------------------------------------- the walkthrough

def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", default=os.path.join(REPO, ".build", "release", "serve"))
    parser.add_argument("--archiver", default=os.path.join(REPO, ".build", "release", "archiver"))
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    options = parser.parse_args()
    serve, archiver = os.path.abspath(options.serve), os.path.abspath(options.archiver)
    for binary in (serve, archiver):
        if not os.access(binary, os.X_OK):
            print(f"api_walkthrough: {binary} is not an executable; build it first (scripts/check/api-walkthrough does)")
            return 2

    work = tempfile.mkdtemp(prefix="api-walkthrough-")
    print(f"working folder {work}\nserve {serve}\narchiver {archiver}")
    daemons, hosts = [], []
    try:
        walkthrough(work, serve, archiver, daemons, hosts)
    except Exception as error:  # a crash of the script is a failure too, after the cleanup
        import traceback
        traceback.print_exc()
        R.check("walkthrough ran to the end", False, "no exception", f"{type(error).__name__}: {error}")
    finally:
        for daemon in daemons:
            daemon.cleanup()
        for host in hosts:
            host.close()
        leftover = [pid for d in daemons for pid in d.pids if alive(pid)]
        R.check("cleanup: no server started here is left running", not leftover, "none", f"pids {leftover}")
        if options.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    missing_ids = [r for r in R.responses if r[3] != 0 and not r[4]]
    R.check(f"every response carries X-Request-Id ({len(R.responses)} responses)", not missing_ids,
            "X-Request-Id on every response", f"missing on {[f'{m} {p} ({k}) -> {s}' for k, m, p, s, _ in missing_ids[:10]]}")
    total = R.passed + len(R.failures)
    print(f"\nSUMMARY: {total} checks, {R.passed} passed, {len(R.failures)} failed, {len(R.skipped)} skipped (they depend on a failed check)")
    for line in R.failures:
        print(line)
    return 0 if not R.failures else 1


def write_config(path, ports, store, allowed_urls="", enable_model_api=True, extra=""):
    with open(path, "w") as handle:
        handle.write(f"""# written by scripts/check/api_walkthrough.py
inference_address=http://{HOST}:{ports['inference']}
management_address=http://{HOST}:{ports['management']}
metrics_address=http://{HOST}:{ports['metrics']}
model_store={store}
enable_model_api={'true' if enable_model_api else 'false'}
disable_token_authorization=false
max_request_size=100000
enable_grpc=false
job_queue_size=4
default_workers_per_model=1
drain_delay=1
allowed_urls={allowed_urls}
{extra}""")


def walkthrough(work, serve, archiver, daemons, hosts):
    samples = os.path.join(REPO, "model_store", "samples")
    store = os.path.join(work, "model_store")
    shutil.copytree(os.path.join(REPO, "model_store"), store)
    with open(os.path.join(samples, "scene_0.png"), "rb") as handle:
        png = handle.read()
    with open(os.path.join(samples, "scene_0.jpg"), "rb") as handle:
        jpg = handle.read()

    # --- archives: unet 2.0 and 3.0 built with our archiver; a folder served over HTTP
    R.section("archiver: unet 2.0 and 3.0 from the unet.mar's files")
    unpacked = os.path.join(work, "unet-unpacked")
    with zipfile.ZipFile(os.path.join(store, "unet.mar")) as archive:
        archive.extractall(unpacked)
    done = subprocess.run([archiver, "--help"], capture_output=True, text=True)
    R.check("archiver --help exits 0 and documents --serialized-file", done.returncode == 0 and "--serialized-file" in done.stdout,
            "rc 0, --serialized-file in the text", f"rc {done.returncode}, {short(done.stdout + done.stderr, 200)}")
    for version in ("2.0", "3.0"):
        out = os.path.join(work, f"export-{version}")
        os.makedirs(out)
        done = subprocess.run([archiver, "--model-name", "unet", "--version", version,
                               "--serialized-file", os.path.join(unpacked, "unet.pt"), "--handler", "image_segmenter",
                               "--config-file", os.path.join(unpacked, "model-config.yaml"),
                               "--extra-files", os.path.join(unpacked, "index_to_name.json"), "--export-path", out],
                              capture_output=True, text=True, timeout=600)
        built = os.path.join(out, "unet.mar")
        R.check(f"archiver builds unet {version}", done.returncode == 0 and os.path.exists(built),
                "rc 0 and unet.mar", f"rc {done.returncode}: {short(done.stdout + done.stderr)}")
        if os.path.exists(built):
            shutil.copy(built, os.path.join(store, f"unet-v{version[0]}.mar"))
    remote = os.path.join(work, "remote")
    for sub in ("allowed", "denied"):
        os.makedirs(os.path.join(remote, sub))
        shutil.copy(os.path.join(store, "unet.mar"), os.path.join(remote, sub, "remote-unet.mar"))
    host = ArchiveHost(remote)
    hosts.append(host)

    ports = {"inference": free_port(), "management": free_port(), "metrics": free_port()}
    while len(set(ports.values())) < 3 or host.port in ports.values():
        ports = {"inference": free_port(), "management": free_port(), "metrics": free_port()}
    config = os.path.join(work, "config.properties")
    allowed = f"http://127.0.0.1:{host.port}/allowed/.*"
    write_config(config, ports, store, allowed_urls=allowed)
    daemon = Daemon(serve, work, ["--ts-config", config, "--model-store", store])
    daemons.append(daemon)
    s = Server(ports, work)

    # --- 1. CLI
    R.section("serve CLI: --help, --start, a second --start, key_file.json")
    rc, out = daemon.run(["--help"], timeout=60)
    R.check("serve --help exits 0 and documents --start/--stop/--foreground/--ts-config/--model-store/--ncs",
            rc == 0 and all(flag in out for flag in ("--start", "--stop", "--foreground", "--ts-config", "--model-store", "--models", "--ncs", "--log-dir")),
            "rc 0 and every flag", f"rc {rc}: {short(out)}")
    started = time.time()
    rc, out = daemon.start()
    if not R.check("serve --start exits 0", rc == 0, "rc 0", f"rc {rc}: {short(out)}\nlog: {daemon.log_tail()}"):
        return
    ping = s.inf("GET", "/ping", token=None)
    expect("GET /ping right after --start returned: 200 Healthy (no token)", ping, 200, {"status": "Healthy"})
    print(f"   (start took {time.time() - started:.1f}s)")
    pid = daemon.pid()
    R.check("logs/serve.pid names a live process", pid is not None and alive(pid), "a live pid", f"pid {pid}")
    rc, out = daemon.start()
    R.check("a second serve --start fails and says one runs", rc != 0 and "already running" in out.lower(),
            "rc != 0 and 'already running'", f"rc {rc}: {short(out)}")
    R.check("the first server still runs after the second --start", alive(pid), "alive", "dead")
    key_path = os.path.join(work, "key_file.json")
    try:
        key_data = s.load_keys()
        mode = os.stat(key_path).st_mode & 0o777
        key_ok = all(k in key_data and isinstance(key_data[k].get("key"), str) for k in ("management", "inference", "API"))
        lengths = {k: len(key_data[k]["key"]) for k in key_data}
        R.check("key_file.json: management, inference, API keys, 0600, 43-char unpadded base64url",
                key_ok and mode == 0o600 and all(re.match(r"^[A-Za-z0-9_-]{43}$", key_data[k]["key"]) for k in key_data),
                "3 keys, mode 0600, 43 chars [A-Za-z0-9_-]", f"keys {list(key_data)}, mode {oct(mode)}, lengths {lengths}")
    except Exception as error:
        R.check("key_file.json readable", False, "key_file.json in the working folder", f"{error}")
        return

    # --- 2. authorization
    R.section("token authorization")
    www = {"www-authenticate": lambda v: v is not None and v.lower().startswith("bearer")}
    expect("POST /predictions/unet without Authorization -> 401", s.inf("POST", "/predictions/unet", body=png, token=None),
           401, error="InvalidKeyException", headers=www)
    expect("POST /predictions/unet with a wrong key -> 401", s.inf("POST", "/predictions/unet", body=png, token="wrong-key"),
           401, error="InvalidKeyException", headers=www)
    expect("GET /models (8081) with the inference key -> 401", s.mgmt("GET", "/models", token=s.keys["inference"]),
           401, error="InvalidKeyException", headers=www)
    expect("GET /models (8081) without Authorization -> 401", s.mgmt("GET", "/models", token=None),
           401, error="InvalidKeyException", headers=www)
    expect("GET /models with scheme 'bearer' (lower case) -> 200", s.mgmt("GET", "/models", token=None,
           headers={"Authorization": "bearer " + s.keys["management"]}), 200, {"models": []})
    expect("GET /ping without a token -> 200", s.inf("GET", "/ping", token=None), 200, {"status": "Healthy"})
    expect("GET /ping with a wrong token -> 200 (exempt)", s.inf("GET", "/ping", token="wrong"), 200, {"status": "Healthy"})
    port_routes = {"inference": ["/ping", "/predictions/{model_name}", "/predictions/{model_name}/{model_version}"],
                   "management": ["/models", "/models/{model_name}", "/models/{model_name}/{model_version}",
                                  "/models/{model_name}/{model_version}/set-default"]}
    for kind in ("inference", "management"):
        expect(f"OPTIONS / on {kind} without a token -> 200 OpenAPI 3 with the port's routes", s.request(kind, "OPTIONS", "/", token=None), 200,
               extra=lambda r, kind=kind: [] if isinstance(r.json(), dict) and str(r.json().get("openapi", "")).startswith("3.")
               and isinstance(r.json().get("info"), dict) and isinstance(r.json().get("paths"), dict)
               and all(path in r.json()["paths"] for path in port_routes[kind])
               else [('{"openapi": "3.0.1", "info": {...}, "paths": {...}} with paths ' + ", ".join(port_routes[kind]), short(r.text()))])
        expect(f"GET /api-description on {kind} without a token -> 200 OpenAPI 3", s.request(kind, "GET", "/api-description", token=None),
               200, extra=lambda r: [] if isinstance(r.json(), dict) and str(r.json().get("openapi", "")).startswith("3.") else
               [("openapi 3 document", short(r.text()))])
    expect("GET /v2/health/live without a token -> 200 (exempt)", s.inf("GET", "/v2/health/live", token=None), 200, {"live": True})
    expect("GET /v2/health/ready without a token -> 200 (exempt)", s.inf("GET", "/v2/health/ready", token=None), 200, {"ready": True})
    expect("GET /metrics without a token -> 200", s.metrics("GET", "/metrics"), 200, ctype="text/plain; version=0.0.4; charset=utf-8")
    # key renewal
    expect("GET /token?type=inference with the management key (not the API key) -> 401",
           s.mgmt("GET", "/token?type=inference"), 401, error="InvalidKeyException", headers=www)
    expect("GET /token?type=bogus with the API key -> 400", s.mgmt("GET", "/token?type=bogus", token=s.keys["API"]),
           400, error="BadRequestException")
    old_inference = s.keys["inference"]
    expect("GET /token?type=inference with the API key -> 200", s.mgmt("GET", "/token?type=inference", token=s.keys["API"]),
           200, {"status": "Inference key regenerated"})
    s.load_keys()
    R.check("key_file.json holds a new inference key after renewal", s.keys["inference"] != old_inference, "a different key", "the same key")
    expect("the old inference key -> 401 after renewal", s.inf("POST", "/predictions/unet", body=png, token=old_inference),
           401, error="InvalidKeyException", headers=www)

    # --- 3. registration, versions, predictions
    R.section("register, versions, predictions, set-default, unregister")
    request_id = "walkthrough-42"
    expect("POST /models?url=unet.mar (synchronous) -> 200", s.mgmt("POST", "/models?url=unet.mar", headers={"X-Request-Id": request_id}),
           200, {"status": 'Model "unet" Version: 1.0 registered with 1 initial workers'}, headers={"x-request-id": request_id})
    expect("GET /ping after registering -> 200 Healthy", s.inf("GET", "/ping", token=None), 200, {"status": "Healthy"})
    expect("POST /models?url=fortunes.mar&synchronous=false -> 202", s.mgmt("POST", "/models?url=fortunes.mar&synchronous=false"),
           202, {"status": "Processing worker updates..."})
    R.check("fortunes gets a READY worker in the background", bool(workers_ready(s, "fortunes", None, 1)),
            "1 READY worker within 180 s", short(describe(s, "fortunes")[0].text()))
    expect("POST /models?url=unet.mar again -> 409", s.mgmt("POST", "/models?url=unet.mar"), 409, error="ConflictStatusException")
    expect("POST /models?url=unet-v2.mar -> 200 (2.0, not default)", s.mgmt("POST", "/models?url=unet-v2.mar"),
           200, {"status": 'Model "unet" Version: 2.0 registered with 1 initial workers'})
    snapshot_text = ""
    for folder, _, files in os.walk(os.path.join(work, "logs", "config")):
        for name in files:
            with open(os.path.join(folder, name), errors="replace") as handle:
                snapshot_text += handle.read()
    R.check("the snapshot in logs/config holds unet-v2.mar once its 200 is sent", "unet-v2.mar" in snapshot_text,
            "unet-v2.mar in a file under logs/config", f"{len(snapshot_text)} chars without it")
    resp, entries = describe(s, "unet")
    expect("GET /models/unet -> the default, 1.0", resp, 200, extra=lambda r: [] if entries and len(entries) == 1
           and entries[0].get("modelVersion") == "1.0" and entries[0].get("isDefault") is True else [("[1.0, isDefault true]", short(r.text()))])
    resp, entries = describe(s, "unet", "2.0")
    expect("GET /models/unet/2.0 -> 2.0, isDefault false", resp, 200, extra=lambda r: [] if entries and len(entries) == 1
           and entries[0].get("modelVersion") == "2.0" and entries[0].get("isDefault") is False else [("[2.0, isDefault false]", short(r.text()))])

    json_ct = "application/json"
    r_default = s.inf("POST", "/predictions/unet", body=png)
    expect("POST /predictions/unet (PNG) -> 200 base64 mask", r_default, 200, ctype=json_ct, extra=mask_problems)
    r_slash = s.inf("POST", "/predictions/unet/", body=png)
    expect("POST /predictions/unet/ (trailing slash) -> 200 base64 mask", r_slash, 200, ctype=json_ct, extra=mask_problems)
    r_v1 = s.inf("POST", "/predictions/unet/1.0", body=png)
    expect("POST /predictions/unet/1.0 -> 200 base64 mask", r_v1, 200, ctype=json_ct, extra=mask_problems)
    r_v2 = s.inf("POST", "/predictions/unet/2.0", body=png)
    expect("POST /predictions/unet/2.0 -> 200 base64 mask", r_v2, 200, ctype=json_ct, extra=mask_problems)
    masks = [mask_of(r) for r in (r_default, r_slash, r_v1, r_v2)]
    R.check("the masks of default, trailing slash, 1.0 and 2.0 agree (same weights)", masks[0] is not None and all(m == masks[0] for m in masks),
            "4 equal masks", f"equal to the first: {[m == masks[0] for m in masks]}")
    expect("PUT /predictions/unet (curl -T) -> 200 base64 mask", s.inf("PUT", "/predictions/unet", body=png), 200, ctype=json_ct, extra=mask_problems)
    r_jpg = s.inf("POST", "/predictions/unet", body=jpg, headers={"Content-Type": "application/octet-stream"})
    expect("POST /predictions/unet (JPEG, Content-Type octet-stream) -> 200 base64 mask", r_jpg, 200, ctype=json_ct, extra=mask_problems)
    try:
        _, _, _, _, truth = png_decode(open(os.path.join(samples, "scene_0.mask.png"), "rb").read())
        if truth is not None and masks[0] is not None and len(truth) == len(masks[0]):
            accuracy = sum(a == b for a, b in zip(truth, masks[0])) / len(truth)
            R.check("the mask of scene_0.png matches its ground truth (>= 80 % of pixels)", accuracy >= 0.8, ">= 0.80", f"{accuracy:.3f}")
    except Exception as error:
        R.check("ground truth mask readable", False, "scene_0.mask.png", str(error))
    body, ctype = multipart([("data", "scene_0.png", "image/png", png)])
    r_mp = s.inf("POST", "/predictions/unet", body=body, headers={"Content-Type": ctype})
    expect("POST /predictions/unet multipart part 'data' -> 200, same mask", r_mp, 200, ctype=json_ct,
           extra=lambda r: mask_problems(r) or ([] if mask_of(r) == masks[0] else [("the raw body's mask", "a different mask")]))
    body, ctype = multipart([("file", "scene_0.png", "image/png", png)])
    expect("POST /predictions/unet multipart part 'file' -> 200, same mask", s.inf("POST", "/predictions/unet", body=body, headers={"Content-Type": ctype}),
           200, ctype=json_ct, extra=lambda r: mask_problems(r) or ([] if mask_of(r) == masks[0] else [("the raw body's mask", "a different mask")]))
    body, ctype = multipart([("other", "scene_0.png", "image/png", png)])
    expect("POST /predictions/unet multipart with neither 'data' nor 'file' -> 400", s.inf("POST", "/predictions/unet", body=body, headers={"Content-Type": ctype}),
           400, error="BadRequestException")

    def png_mask_problems(resp, want_type, width, height):
        if resp.body[:8] != b"\x89PNG\r\n\x1a\n":
            return [("PNG bytes", short(resp.body[:40]))]
        w, h, ct, depth, pixels = png_decode(resp.body)
        problems = []
        if (w, h, ct, depth) != (width, height, want_type, 8):
            problems.append((f"{width}x{height} 8-bit colour type {want_type}", f"{w}x{h} {depth}-bit colour type {ct}"))
        elif want_type == 0 and masks[0] is not None and pixels != masks[0]:
            problems.append(("the same class ids as the JSON mask", "different pixels"))
        return problems

    expect("POST /predictions/unet Accept: image/png -> 8-bit grey 128x96 PNG = JSON mask",
           s.inf("POST", "/predictions/unet", body=png, headers={"Accept": "image/png"}), 200, ctype="image/png",
           extra=lambda r: png_mask_problems(r, 0, MASK_W, MASK_H))
    expect("POST /predictions/unet?output=png -> grey PNG", s.inf("POST", "/predictions/unet?output=png", body=png), 200,
           ctype="image/png", extra=lambda r: png_mask_problems(r, 0, MASK_W, MASK_H))
    in_w, in_h = struct.unpack(">II", png[16:24])
    expect(f"POST /predictions/unet?output=overlay -> RGB PNG at the input size {in_w}x{in_h}",
           s.inf("POST", "/predictions/unet?output=overlay", body=png), 200, ctype="image/png",
           extra=lambda r: png_mask_problems(r, 2, in_w, in_h))
    expect("POST /predictions/unet?output=bogus -> 400", s.inf("POST", "/predictions/unet?output=bogus", body=png), 400, error="BadRequestException")
    expect("POST /predictions/unet?foo=bar (unknown query parameter ignored) -> 200", s.inf("POST", "/predictions/unet?foo=bar", body=png),
           200, ctype=json_ct, extra=mask_problems)

    # text classifier: key order binds (descending probability)
    def fortune_problems(value):
        if not isinstance(value, dict) or len(value) != 6:
            return [("a map of the 6 labels", short(value))]
        probabilities = list(value.values())
        problems = []
        if not all(isinstance(p, float) or isinstance(p, int) for p in probabilities):
            problems.append(("numbers", short(value)))
        elif probabilities != sorted(probabilities, reverse=True):
            problems.append(("keys in descending probability", short(value)))
        elif abs(sum(probabilities) - 1) > 1e-3:
            problems.append(("probabilities summing to 1", f"sum {sum(probabilities)}"))
        return problems

    r_text = s.inf("POST", "/predictions/fortunes", body="The compiler crashed and the kernel panicked")
    expect("POST /predictions/fortunes (raw text) -> 200 label map, descending", r_text, 200, ctype=json_ct, extra=lambda r: fortune_problems(r.json()))
    parsed = r_text.json()
    R.check("the compiler sentence is classified 'computers'", isinstance(parsed, dict) and parsed and next(iter(parsed)) == "computers",
            "computers first", short(parsed))
    expect('POST /predictions/fortunes {"inputs": [2 texts]} -> an array of 2 maps',
           s.inf("POST", "/predictions/fortunes", body=json.dumps({"inputs": ["The senator voted against the bill", "Add two cups of flour"]}),
                 headers={"Content-Type": "application/json"}), 200, ctype=json_ct,
           extra=lambda r: [] if isinstance(r.json(), list) and len(r.json()) == 2 and not fortune_problems(r.json()[0])
           and not fortune_problems(r.json()[1]) else [("[{...}, {...}]", short(r.text()))])
    expect('POST /predictions/fortunes {"text": "..."} (curl -d, no JSON content type) -> one map',
           s.inf("POST", "/predictions/fortunes", body=json.dumps({"text": "Add two cups of flour and bake"}),
                 headers={"Content-Type": "application/x-www-form-urlencoded"}), 200, ctype=json_ct,
           extra=lambda r: fortune_problems(r.json()))
    expect("POST /predictions/fortunes with an empty body -> 400", s.inf("POST", "/predictions/fortunes", body=b""), 400, error="InvalidInputException")
    expect("POST /predictions/fortunes with bad UTF-8 -> 400", s.inf("POST", "/predictions/fortunes", body=b"\xff\xfe\xfa bad"), 400, error="InvalidInputException")

    # set-default, unregister rules
    expect("PUT /models/unet/2.0/set-default -> 200", s.mgmt("PUT", "/models/unet/2.0/set-default"),
           200, {"status": 'Default version successfully updated for model "unet" to "2.0"'})
    resp, entries = describe(s, "unet")
    expect("GET /models/unet -> now 2.0, isDefault true", resp, 200, extra=lambda r: [] if entries and entries[0].get("modelVersion") == "2.0"
           and entries[0].get("isDefault") is True else [("[2.0 default]", short(r.text()))])
    expect("POST /predictions/unet after set-default -> 200 (served by 2.0)", s.inf("POST", "/predictions/unet", body=png), 200, ctype=json_ct, extra=mask_problems)
    expect("DELETE /models/unet (default 2.0 while 1.0 exists) -> 403", s.mgmt("DELETE", "/models/unet"), 403, error="InvalidModelVersionException")
    expect("DELETE /models/unet/2.0 (the default, explicitly) -> 403", s.mgmt("DELETE", "/models/unet/2.0"), 403, error="InvalidModelVersionException")
    expect("DELETE /models/unet/1.0 (not default) -> 200", s.mgmt("DELETE", "/models/unet/1.0"), 200, {"status": 'Model "unet" unregistered'})
    expect("POST /predictions/unet/1.0 after its unregistration -> 404", s.inf("POST", "/predictions/unet/1.0", body=png), 404, error="ModelVersionNotFoundException")
    expect("GET /models/unet/1.0 after its unregistration -> 404", s.mgmt("GET", "/models/unet/1.0"), 404, error="ModelVersionNotFoundException")
    expect("POST /models?url=unet.mar (1.0 again, after its unregistration) -> 200", s.mgmt("POST", "/models?url=unet.mar"),
           200, {"status": 'Model "unet" Version: 1.0 registered with 1 initial workers'})
    expect("POST /models?url=unet.mar&model_name=unet0&initial_workers=0 -> 200 with 0 workers text",
           s.mgmt("POST", "/models?url=unet.mar&model_name=unet0&initial_workers=0"),
           200, {"status": 'Model "unet0" Version: 1.0 registered with 0 initial workers. Use scale workers API to add workers for the model.'})
    expect("POST /predictions/unet0 (no worker) -> 503", s.inf("POST", "/predictions/unet0", body=png), 503, error="ServiceUnavailableException")
    expect("DELETE /models/unet0 (its only version) -> 200", s.mgmt("DELETE", "/models/unet0"), 200, {"status": 'Model "unet0" unregistered'})
    expect("GET /models/unet0 after unregistering -> 404", s.mgmt("GET", "/models/unet0"), 404, error="ModelNotFoundException")
    expect('POST /models with a JSON body {"url": "unet.mar", "model_name": "unetjson"} -> 200',
           s.mgmt("POST", "/models", body=json.dumps({"url": "unet.mar", "model_name": "unetjson", "initial_workers": 1}),
                  headers={"Content-Type": "application/json"}), 200, {"status": 'Model "unetjson" Version: 1.0 registered with 1 initial workers'})
    expect("DELETE /models/unetjson/1.0 -> 200", s.mgmt("DELETE", "/models/unetjson/1.0"), 200, {"status": 'Model "unetjson" unregistered'})

    # --- 4. scale, describe, list
    R.section("scale, describe, list")
    server_pid = daemon.pid()
    expect("PUT /models/unet?min_worker=2&synchronous=true -> 200", s.mgmt("PUT", "/models/unet?min_worker=2&synchronous=true"),
           200, {"status": "Workers scaled to 2 for model: unet"})
    resp, entries = describe(s, "unet")
    first_ids = [w.get("id") for w in (entries or [{}])[0].get("workers", [])] if entries else []
    expect("GET /models/unet after scaling to 2: 2 READY workers, min/max 2, full describe shape", resp, 200,
           extra=lambda r: describe_entry_problems(entries[0], server_pid, 4) + (
               [] if entries[0]["minWorkers"] == 2 and entries[0]["maxWorkers"] == 2 and len(entries[0]["workers"]) == 2
               and all(w["status"] == "READY" for w in entries[0]["workers"]) and len(set(first_ids)) == 2
               else [("min 2, max 2, 2 READY workers with distinct ids", short(r.text()))]))
    expect("PUT /models/unet/1.0?min_worker=2&max_worker=3&synchronous=TRUE -> 200 (version in the text)",
           s.mgmt("PUT", "/models/unet/1.0?min_worker=2&max_worker=3&synchronous=TRUE"),
           200, {"status": "Workers scaled to 2 for model: unet, version: 1.0"})
    resp, entries = describe(s, "unet", "1.0")
    expect("GET /models/unet/1.0: minWorkers 2, maxWorkers 3, 2 READY workers", resp, 200,
           extra=lambda r: describe_entry_problems(entries[0], server_pid, 4) + (
               [] if entries[0]["minWorkers"] == 2 and entries[0]["maxWorkers"] == 3 and len(entries[0]["workers"]) == 2
               and all(w["status"] == "READY" for w in entries[0]["workers"]) else [("min 2, max 3, 2 READY", short(r.text()))]))
    expect("PUT /models/unet?min_worker=1&synchronous=true -> 200", s.mgmt("PUT", "/models/unet?min_worker=1&synchronous=true"),
           200, {"status": "Workers scaled to 1 for model: unet"})
    entries = workers_ready(s, "unet", None, 1)
    R.check("GET /models/unet after scaling to 1: exactly 1 READY worker, min/max 1",
            bool(entries) and entries[0]["minWorkers"] == 1 and entries[0]["maxWorkers"] == 1,
            "1 READY worker within 180 s", short(describe(s, "unet")[0].text()))
    expect("PUT /models/unet?min_worker=2 (asynchronous by default) -> 202", s.mgmt("PUT", "/models/unet?min_worker=2"),
           202, {"status": "Processing worker updates..."})
    entries = workers_ready(s, "unet", None, 2)
    new_ids = [w["id"] for w in entries[0]["workers"]] if entries else []
    R.check("after the 202, 2 READY workers appear", bool(entries), "2 READY within 180 s", short(describe(s, "unet")[0].text()))
    R.check("worker ids are never reused (a worker started after retiring one gets a new id)",
            len(new_ids) == 2 and len(set(new_ids) & set(first_ids)) <= 1
            and max(int(i) for i in new_ids) > max(int(i) for i in first_ids or ["0"]),
            f"a new id above {first_ids}", f"ids now {new_ids}")
    expect("PUT /models/unet?min_worker=1&synchronous=true&timeout=60 -> 200", s.mgmt("PUT", "/models/unet?min_worker=1&synchronous=true&timeout=60"),
           200, {"status": "Workers scaled to 1 for model: unet"})
    workers_ready(s, "unet", None, 1)

    resp, entries = describe(s, "unet", "all")
    expect("GET /models/unet/all -> both versions in registration order (2.0, then 1.0 re-registered)", resp, 200,
           extra=lambda r: sum((describe_entry_problems(e, server_pid, 4) for e in entries), []) + (
               [] if [e["modelVersion"] for e in entries] == ["2.0", "1.0"] and [e["isDefault"] for e in entries] == [True, False]
               else [("versions [2.0 default, 1.0]", [(e.get("modelVersion"), e.get("isDefault")) for e in entries])]))
    resp, entries = describe(s, "unet", "2.0")
    expect("GET /models/unet/2.0 -> one entry, modelUrl unet-v2.mar, handler image_segmenter", resp, 200,
           extra=lambda r: [] if len(entries) == 1 and entries[0].get("modelUrl") == "unet-v2.mar" and entries[0].get("handler") == "image_segmenter"
           and entries[0].get("runtime") == "python" and entries[0].get("batchSize") == 1 and entries[0].get("maxBatchDelay") == 10
           and entries[0].get("responseTimeout") == 120 else [("modelUrl unet-v2.mar, handler image_segmenter, runtime python, batchSize 1, maxBatchDelay 10, responseTimeout 120", short(r.text()))])
    expect("GET /models/unet/ (trailing slash) -> 200", s.mgmt("GET", "/models/unet/"), 200, extra=lambda r: [] if isinstance(r.json(), list) else [("an array", short(r.text()))])

    expect("GET /models -> fortunes, unet (sorted), no nextPageToken", s.mgmt("GET", "/models"), 200,
           {"models": [{"modelName": "fortunes", "modelUrl": "fortunes.mar"}, {"modelName": "unet", "modelUrl": "unet-v2.mar"}]})
    page1 = s.mgmt("GET", "/models?limit=1")
    expect("GET /models?limit=1 -> fortunes and nextPageToken", page1, 200,
           {"nextPageToken": "1", "models": [{"modelName": "fortunes", "modelUrl": "fortunes.mar"}]})
    token = (page1.json() or {}).get("nextPageToken", "1") if isinstance(page1.json(), dict) else "1"
    expect("GET /models?limit=1&next_page_token=<token> -> unet, last page without nextPageToken",
           s.mgmt("GET", f"/models?limit=1&next_page_token={q(token)}"), 200, {"models": [{"modelName": "unet", "modelUrl": "unet-v2.mar"}]})
    expect("GET /models?limit=0 -> limit 100 (all)", s.mgmt("GET", "/models?limit=0"), 200,
           extra=lambda r: [] if isinstance(r.json(), dict) and len(r.json().get("models", [])) == 2 and "nextPageToken" not in r.json() else [("2 models", short(r.text()))])
    expect("GET /models?limit=1000 -> limit 100 (all)", s.mgmt("GET", "/models?limit=1000"), 200,
           extra=lambda r: [] if isinstance(r.json(), dict) and len(r.json().get("models", [])) == 2 else [("2 models", short(r.text()))])

    # --- 5. errors
    R.section("errors: parameters, unknown names, routes, methods, bodies")
    bad_params = [
        ("POST", "/models?url=unet.mar&model_name=unetb&batch_size=0"), ("POST", "/models?url=unet.mar&model_name=unetb&batch_size=1025"),
        ("POST", "/models?url=unet.mar&model_name=unetb&initial_workers=abc"), ("POST", "/models?url=unet.mar&model_name=unetb&initial_workers=-1"),
        ("POST", "/models?url=unet.mar&model_name=unetb&initial_workers=257"), ("POST", "/models?url=unet.mar&model_name=unetb&max_batch_delay=60001"),
        ("POST", "/models?url=unet.mar&model_name=unetb&synchronous=maybe"), ("POST", "/models?url=unet.mar&model_name=unetb&response_timeout=0"),
        ("POST", "/models?url=unet.mar&model_name=" + q("bad name!")), ("POST", "/models?model_name=unetb"),
        ("PUT", "/models/unet?min_worker=3&max_worker=2"), ("PUT", "/models/unet?min_worker=abc"),
        ("PUT", "/models/unet?min_worker=-1"), ("PUT", "/models/unet?min_worker=257"), ("PUT", "/models/unet?min_worker=1&synchronous=yes"),
        ("GET", "/models?next_page_token=abc"),
    ]
    for method, path in bad_params:
        expect(f"{method} {path} -> 400", s.mgmt(method, path), 400, error="BadRequestException")
    resp, entries = describe(s, "unetb")
    R.check("no model 'unetb' was registered by the bad requests", resp.status == 404, "404", f"{resp.status} {short(resp.text())}")
    expect('POST /models with a malformed JSON body -> 400', s.mgmt("POST", "/models", body="{not json", headers={"Content-Type": "application/json"}),
           400, error="BadRequestException")
    expect("POST /models?url=nope.mar (not in the store) -> 404", s.mgmt("POST", "/models?url=nope.mar"), 404, error="ModelNotFoundException")
    expect("POST /models?url=../unet.mar (leaves the store) -> 403", s.mgmt("POST", "/models?url=" + q("../unet.mar")), 403, error="InvalidArchiveURLException")
    expect("POST /models?url=file://<store>/unet.mar -> 403", s.mgmt("POST", "/models?url=" + q("file://" + store + "/unet.mar")), 403, error="InvalidArchiveURLException")
    expect("POST /models?url=<absolute path in the store> -> 200", s.mgmt("POST", "/models?url=" + q(os.path.join(store, "unet.mar")) + "&model_name=unetabs&initial_workers=0"),
           200, {"status": 'Model "unetabs" Version: 1.0 registered with 0 initial workers. Use scale workers API to add workers for the model.'})
    s.mgmt("DELETE", "/models/unetabs")

    expect("POST /predictions/nope -> 404", s.inf("POST", "/predictions/nope", body=png), 404, error="ModelNotFoundException")
    expect("POST /predictions/unet/9.9 -> 404", s.inf("POST", "/predictions/unet/9.9", body=png), 404, error="ModelVersionNotFoundException")
    expect("GET /models/nope -> 404", s.mgmt("GET", "/models/nope"), 404, error="ModelNotFoundException")
    expect("GET /models/unet/9.9 -> 404", s.mgmt("GET", "/models/unet/9.9"), 404, error="ModelVersionNotFoundException")
    expect("PUT /models/nope?min_worker=1 -> 404", s.mgmt("PUT", "/models/nope?min_worker=1"), 404, error="ModelNotFoundException")
    expect("PUT /models/unet/9.9?min_worker=1 -> 404", s.mgmt("PUT", "/models/unet/9.9?min_worker=1"), 404, error="ModelVersionNotFoundException")
    expect("PUT /models/unet/9.9/set-default -> 404", s.mgmt("PUT", "/models/unet/9.9/set-default"), 404, error="ModelVersionNotFoundException")
    expect("PUT /models/nope/1.0/set-default -> 404", s.mgmt("PUT", "/models/nope/1.0/set-default"), 404, error="ModelNotFoundException")
    expect("DELETE /models/nope -> 404", s.mgmt("DELETE", "/models/nope"), 404, error="ModelNotFoundException")
    expect("DELETE /models/unet/9.9 -> 404", s.mgmt("DELETE", "/models/unet/9.9"), 404, error="ModelVersionNotFoundException")
    expect("GET /nope on the inference port -> 404", s.inf("GET", "/nope"), 404, error="ResourceNotFoundException")
    expect("GET /nope on the management port -> 404", s.mgmt("GET", "/nope"), 404, error="ResourceNotFoundException")
    expect("POST /predictions/unet/2.0/extra (extra path segment) -> 404", s.inf("POST", "/predictions/unet/2.0/extra", body=png), 404, error="ResourceNotFoundException")
    expect("GET /predictions/unet -> 405", s.inf("GET", "/predictions/unet"), 405, error="MethodNotAllowedException")
    expect("DELETE /predictions/unet -> 405", s.inf("DELETE", "/predictions/unet"), 405, error="MethodNotAllowedException")
    expect("POST /ping -> 405", s.inf("POST", "/ping"), 405, error="MethodNotAllowedException")
    expect("POST /models/unet -> 405", s.mgmt("POST", "/models/unet"), 405, error="MethodNotAllowedException")
    expect("DELETE /models -> 405", s.mgmt("DELETE", "/models"), 405, error="MethodNotAllowedException")
    expect("GET / (OPTIONS only) -> 405", s.inf("GET", "/"), 405, error="MethodNotAllowedException")
    expect("POST /api-description -> 405", s.inf("POST", "/api-description"), 405, error="MethodNotAllowedException")
    big = png + os.urandom(150_000)
    expect("POST /predictions/unet with 175 kB > max_request_size 100000 -> 413 JSON", s.inf("POST", "/predictions/unet", body=big),
           413, error="RequestTooLargeException")
    expect("POST /predictions/unet with a text body -> 415", s.inf("POST", "/predictions/unet", body="this is not an image", headers={"Content-Type": "text/plain"}),
           415, error="UnsupportedMediaTypeException")
    expect("POST /predictions/unet with a GIF -> 415", s.inf("POST", "/predictions/unet", body=b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"),
           415, error="UnsupportedMediaTypeException")
    expect("POST /predictions/unet with a PNG cut in half -> 400", s.inf("POST", "/predictions/unet", body=png[:len(png) // 2]),
           400, error="InvalidInputException")
    corrupt = bytearray(png)
    for i in range(200, min(len(corrupt), 4000)):
        corrupt[i] ^= 0x5A
    expect("POST /predictions/unet with a corrupt PNG (scrambled data) -> 400", s.inf("POST", "/predictions/unet", body=bytes(corrupt)),
           400, error="InvalidInputException")
    expect("POST /predictions/unet with an empty body -> 400", s.inf("POST", "/predictions/unet", body=b""), 400, error="InvalidInputException")
    long_id = "x" * 200
    resp = s.inf("GET", "/ping", token=None, headers={"X-Request-Id": long_id})
    R.check("X-Request-Id longer than 128 chars is replaced by a UUID", re.match(r"^[0-9a-fA-F-]{36}$", resp.header("x-request-id") or "") is not None,
            "a UUID", resp.header("x-request-id"))
    expect("POST /predictions/unet with X-Request-Timeout-Ms: abc -> 400", s.inf("POST", "/predictions/unet", body=png, headers={"X-Request-Timeout-Ms": "abc"}),
           400, error="BadRequestException")

    # queue full: job_queue_size=4, one worker, a burst of 40
    results = []

    def shoot():
        results.append(s.inf("POST", "/predictions/unet", body=png))

    threads = [threading.Thread(target=shoot) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(r.status for r in results)
    full = [r for r in results if r.status == 429]
    R.check("a burst of 40 against job_queue_size=4 gets only 200s and 429s, some of each",
            full and set(statuses) <= {200, 429} and 200 in statuses, "200s and at least one 429", f"statuses {statuses}")
    if full:
        expect("a 429 from the burst: QueueFullException with Retry-After: 1", full[0], 429, error="QueueFullException", headers={"retry-after": "1"})
    resp, entries = describe(s, "unet")
    expect("describe after the burst: jobQueueStatus back to remainingCapacity 4, pendingRequests 0", resp, 200,
           extra=lambda r: [] if entries and entries[0].get("jobQueueStatus") == {"remainingCapacity": 4, "pendingRequests": 0}
           else [("remainingCapacity 4, pendingRequests 0", short(entries[0].get("jobQueueStatus") if entries else r.text()))])

    # --- 6. http(s) registration and swap
    R.section("http registration with allowed_urls, swap")
    denied_url = f"http://127.0.0.1:{host.port}/denied/remote-unet.mar"
    allowed_url = f"http://127.0.0.1:{host.port}/allowed/remote-unet.mar"
    expect(f"POST /models?url={denied_url} (matches no allowed_urls) -> 403",
           s.mgmt("POST", f"/models?url={q(denied_url)}&model_name=remote"), 403, error="InvalidArchiveURLException")
    R.check("the denied URL was never fetched", not any(p.startswith("/denied") for p in host.paths), "no GET /denied/...", f"{host.paths}")
    remote_ok = expect(f"POST /models?url={allowed_url}&model_name=remote (matches allowed_urls) -> 200",
           s.mgmt("POST", f"/models?url={q(allowed_url)}&model_name=remote", timeout=300), 200,
           {"status": 'Model "remote" Version: 1.0 registered with 1 initial workers'})
    if remote_ok:
        R.check("the allowed URL was downloaded from the local http.server", any(p.startswith("/allowed/remote-unet.mar") for p in host.paths),
                "GET /allowed/remote-unet.mar", f"{host.paths}")
        expect("POST /predictions/remote -> 200 base64 mask, same as unet's", s.inf("POST", "/predictions/remote", body=png), 200, ctype=json_ct,
               extra=lambda r: mask_problems(r) or ([] if mask_of(r) == masks[0] else [("unet's mask", "a different mask")]))
        expect("POST the same allowed URL again -> 409", s.mgmt("POST", f"/models?url={q(allowed_url)}&model_name=remote"), 409, error="ConflictStatusException")
        expect("DELETE /models/remote -> 200", s.mgmt("DELETE", "/models/remote"), 200, {"status": 'Model "remote" unregistered'})
    else:
        for name in ("the allowed URL was downloaded", "POST /predictions/remote -> 200", "DELETE /models/remote -> 200"):
            R.skip(name, "the http registration failed")
    expect(f"POST /models?url=http://127.0.0.1:{host.port}/allowed/missing.mar -> 400 (download failed)",
           s.mgmt("POST", f"/models?url={q(f'http://127.0.0.1:{host.port}/allowed/missing.mar')}&model_name=missing"), 400, error="DownloadArchiveException")

    before = state_of(s, ["unet"])
    # The 429s above were counted against the default before the swap; its series go with it.
    pre_swap_metrics = s.metrics("GET", "/metrics").text()
    swapped = expect("PUT /models/unet?url=unet-v3.mar&swap=true -> 200, 3.0 default, 2.0 unregistered",
           s.mgmt("PUT", "/models/unet?url=unet-v3.mar&swap=true", timeout=300), 200,
           {"status": 'Model "unet" Version: 3.0 is default; version 2.0 unregistered'})
    after_swap = "GET /models/unet/all after swap: 1.0 and 3.0 (default, the old default's worker count)"
    if swapped:
        resp, entries = describe(s, "unet", "all")
        old_default_workers = [v[2] for v in before.get("unet", []) if v[1]]
        expect(after_swap, resp, 200,
               extra=lambda r: [] if sorted((e["modelVersion"], e["isDefault"]) for e in entries) == [("1.0", False), ("3.0", True)]
               and [e["minWorkers"] for e in entries if e["modelVersion"] == "3.0"] == old_default_workers
               else [(f"1.0 + 3.0 default with minWorkers {old_default_workers}", short(r.text()))])
    else:
        R.skip(after_swap, "the swap failed")
    expect("POST /predictions/unet after the swap request -> 200 (a default serves)", s.inf("POST", "/predictions/unet", body=png), 200, ctype=json_ct, extra=mask_problems)
    expect("PUT /models/unet?url=nope.mar&swap=true (missing archive) -> 404, old default keeps serving",
           s.mgmt("PUT", "/models/unet?url=nope.mar&swap=true"), 404, error="ModelNotFoundException")

    # --- 7. metrics
    R.section("metrics port")
    resp = s.metrics("GET", "/metrics")
    families = ["ts_inference_requests_total", "ts_inference_latency_microseconds", "ts_queue_latency_microseconds",
                "Requests2XX", "Requests4XX", "Requests5XX", "ts_inference_responses_total", "ts_requests_dropped_total",
                "ts_request_duration_seconds", "ts_stage_duration_seconds", "ts_batch_size", "ts_workers", "ts_queue_pending",
                "process_resident_memory_bytes"]
    text = resp.text()
    expect("GET /metrics -> 200 text/plain; version=0.0.4; charset=utf-8", resp, 200, ctype="text/plain; version=0.0.4; charset=utf-8")
    for family in families:
        # Dropped requests were all counted against 2.0, whose series left with it in the swap.
        scraped = pre_swap_metrics if family == "ts_requests_dropped_total" else text
        R.check(f"metrics: family {family} present", re.search(rf"^{family}(\{{|_bucket|_sum|_count| )", scraped, re.M) is not None,
                f"a {family} sample", "absent")
    line = next((l for l in text.splitlines() if l.startswith("ts_inference_requests_total{") and 'model_name="unet"' in l
                 and float(l.rsplit(" ", 1)[1]) > 0), None)
    R.check('metrics: ts_inference_requests_total has model_name="unet", model_version and hostname labels, count > 0',
            line is not None and "model_version=" in line and "hostname=" in line.lower(),
            "such a sample", short(line or [l for l in text.splitlines() if l.startswith("ts_inference_requests_total")][:3]))
    if swapped:
        gone = [l for l in text.splitlines() if 'model_name="unet"' in l and 'model_version="2.0"' in l]
        R.check("metrics: the series of unet 2.0 are removed once the swap unregistered it", not gone, "no such series", short(gone))
    dropped = [l for l in pre_swap_metrics.splitlines() if l.startswith("ts_requests_dropped_total{") and 'reason="queue_full"' in l]
    R.check('metrics: ts_requests_dropped_total{reason="queue_full"} counts the 429s', bool(dropped) and float(dropped[0].rsplit(" ", 1)[1]) > 0,
            "a sample > 0", short(dropped))
    for query, label in (("name[]=ts_workers&name[]=ts_queue_pending", "as curl --globoff sends it"),
                         ("name%5B%5D=ts_workers&name%5B%5D=ts_queue_pending", "percent-encoded")):
        resp = s.metrics("GET", "/metrics?" + query)
        names = {re.split(r"[{ ]", l)[0] for l in resp.text().splitlines() if l and not l.startswith("#")}
        expect(f"GET /metrics?{query} ({label}) keeps only those two families", resp, 200, ctype="text/plain; version=0.0.4; charset=utf-8",
               extra=lambda r, names=names: [] if names == {"ts_workers", "ts_queue_pending"} else [("only ts_workers and ts_queue_pending samples", sorted(names))])
    expect("GET /nope on the metrics port -> 404 JSON", s.metrics("GET", "/nope"), 404, error="ResourceNotFoundException")

    # --- 8. kill -9, restore, stop
    R.section("kill -9, serve --start restores the snapshot, serve --stop")
    before = state_of(s, ["unet", "fortunes"])
    print(f"   state before kill: {before}")
    # acknowledged changes must survive a kill -9 right after their 202 (docs/api.md: a 200 or 202
    # for a change is sent only once the snapshot holds it)
    expect("POST /models?url=unet.mar&model_name=late&synchronous=false -> 202, then kill -9 at once",
           s.mgmt("POST", "/models?url=unet.mar&model_name=late&synchronous=false"), 202, {"status": "Processing worker updates..."})
    pid = daemon.pid()
    os.kill(pid, signal.SIGKILL)
    R.check("kill -9 ends the server", wait_for(lambda: not alive(pid), 30, 0.25), "dead within 30 s", "still alive")
    R.check("ports close after kill -9", wait_for(lambda: not port_open(ports["inference"]) and not port_open(ports["management"]), 30, 0.25),
            "ports closed", "a port still accepts")
    rc, out = daemon.start()
    if not R.check("serve --start after kill -9 (stale pid file) exits 0", rc == 0, "rc 0", f"rc {rc}: {short(out)}\nlog: {daemon.log_tail()}"):
        return
    new_pid = daemon.pid()
    R.check("a new server process runs", new_pid is not None and new_pid != pid and alive(new_pid), "a new live pid", f"{new_pid}")
    s.load_keys()
    expect("GET /ping after the restart -> 200 Healthy", s.inf("GET", "/ping", token=None), 200, {"status": "Healthy"})
    after = wait_for(lambda: state_of(s, ["unet", "fortunes"]) == before and before, 60, 0.25) or state_of(s, ["unet", "fortunes"])
    R.check("models, versions, default, workers, batch size and URL restored (describe .../all)", after == before, before, after)
    resp, entries = describe(s, "late")
    expect("GET /models/late after the restart -> 200 (its 202 was acknowledged before the kill)", resp, 200,
           extra=lambda r: [] if entries and entries[0].get("modelVersion") == "1.0" else [("late 1.0", short(r.text()))])
    expect("POST /predictions/unet after the restart -> 200", s.inf("POST", "/predictions/unet", body=png), 200, ctype=json_ct,
           extra=lambda r: mask_problems(r) or ([] if mask_of(r) == masks[0] else [("the same mask as before", "a different mask")]))
    expect("POST /predictions/unet/1.0 after the restart -> 200", s.inf("POST", "/predictions/unet/1.0", body=png), 200, ctype=json_ct, extra=mask_problems)
    expect("POST /predictions/fortunes after the restart -> 200", s.inf("POST", "/predictions/fortunes", body="The senator voted against the bill"),
           200, ctype=json_ct, extra=lambda r: fortune_problems(r.json()))
    resp, entries = describe(s, "unet")
    expect("describe after the restart: worker ids >= 9000, pid of the new server", resp, 200,
           extra=lambda r: describe_entry_problems(entries[0], new_pid, 4))
    rc, out = daemon.stop()
    R.check("serve --stop exits 0", rc == 0, "rc 0", f"rc {rc}: {short(out)}")
    R.check("the server process is gone after --stop", not alive(new_pid), "dead", "alive")
    R.check("logs/serve.pid is removed by --stop", not os.path.exists(daemon.pid_file), "no pid file", "pid file present")
    R.check("key_file.json is removed by --stop", not os.path.exists(key_path), "no key_file.json", "key_file.json present")
    closed = [kind for kind, port in ports.items() if port_open(port)]
    R.check("all three ports are closed after --stop", not closed, "no port open", f"open: {closed}")
    rc, out = daemon.stop()
    R.check("serve --stop with no server running fails and says so", rc != 0, "rc != 0", f"rc {rc}: {short(out)}")

    # --- 9. model API off, --models, --ncs; start on a busy port
    R.section("second server: enable_model_api=false, --models unet=unet.mar, --ncs")
    config2 = os.path.join(work, "config-api-off.properties")
    write_config(config2, ports, store, enable_model_api=False)
    second = Daemon(serve, work, ["--ts-config", config2, "--model-store", store, "--models", "unet=unet.mar", "--ncs"])
    daemons.append(second)
    rc, out = second.start()
    if R.check("serve --start --ncs --models unet=unet.mar exits 0", rc == 0, "rc 0", f"rc {rc}: {short(out)}\nlog: {second.log_tail()}"):
        s.load_keys()
        expect("GET /ping -> 200 Healthy (start-up model loaded)", s.inf("GET", "/ping", token=None), 200, {"status": "Healthy"})
        expect("GET /models with --ncs: only the --models one (no snapshot restored)", s.mgmt("GET", "/models"), 200, {"models": [{"modelName": "unet", "modelUrl": "unet.mar"}]})
        resp, entries = describe(s, "unet")
        expect("GET /models/unet: loadedAtStartup true", resp, 200, extra=lambda r: [] if entries and entries[0].get("loadedAtStartup") is True
               else [("loadedAtStartup true", short(r.text()))])
        expect("POST /models with enable_model_api=false -> 403", s.mgmt("POST", "/models?url=fortunes.mar"), 403, error="ModelApiDisabledException")
        expect("DELETE /models/unet with enable_model_api=false -> 403", s.mgmt("DELETE", "/models/unet"), 403, error="ModelApiDisabledException")
        expect("PUT /models/unet?url=unet-v3.mar&swap=true with enable_model_api=false -> 403", s.mgmt("PUT", "/models/unet?url=unet-v3.mar&swap=true"),
               403, error="ModelApiDisabledException")
        expect("PUT /models/unet?min_worker=1&synchronous=true (scaling stays allowed) -> 200", s.mgmt("PUT", "/models/unet?min_worker=1&synchronous=true"),
               200, {"status": "Workers scaled to 1 for model: unet"})
        rc, out = second.stop()
        R.check("serve --stop exits 0 (second server)", rc == 0, "rc 0", f"rc {rc}: {short(out)}")

    R.section("serve --start on a port in use fails with the reason")
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        blocker.bind((HOST, ports["inference"]))
        blocker.listen(1)
        third = Daemon(serve, work, ["--ts-config", config2, "--model-store", store, "--ncs"])
        daemons.append(third)
        started = time.time()
        rc, out = third.start()
        R.check("serve --start with the inference port taken exits non-zero, naming the cause",
                rc != 0 and rc != 124 and re.search(r"in use|address|bind", out, re.I) is not None,
                "rc != 0 and 'in use'/'address'/'bind' in the output", f"rc {rc} after {time.time() - started:.1f}s: {short(out, 600)}")
        R.check("no pid file left after the failed start", not os.path.exists(third.pid_file) or not alive(third.pid() or 0),
                "no live pid file", "a live pid file")
    finally:
        blocker.close()


if __name__ == "__main__":
    sys.exit(main())
