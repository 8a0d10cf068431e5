"""A release `serve --foreground` with every sample archive of model_store/, on free loopback
ports in a temporary folder, for the checks that need a running server (check/try-page,
deploy/check-dashboard). Standard library only."""

import json
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request

from checkutil import HOST, free_port, wait_for

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_serve():
    """Builds `serve` (release) if it is not up to date; returns its path."""
    subprocess.run(["swift", "build", "-c", "release", "--product", "serve"], cwd=REPO, check=True)
    return os.path.join(REPO, ".build", "release", "serve")


class SampleServer:
    """Starts on enter, stops (SIGTERM, then kill) on exit. `inference`, `management` and
    `metrics` are the base URLs; `key` is the inference key when token authorization is on."""

    def __init__(self, serve, token_auth=False, startup_timeout=180):
        self.serve = os.path.abspath(serve)
        self.token_auth = token_auth
        self.startup_timeout = startup_timeout
        self.process = None
        self.folder = None
        self.key = None

    def __enter__(self):
        self.folder = tempfile.mkdtemp(prefix="sample-serve-")
        ports = {name: free_port() for name in ("inference", "management", "metrics")}
        with open(os.path.join(self.folder, "config.properties"), "w") as handle:
            for name, port in ports.items():
                handle.write(f"{name}_address=http://{HOST}:{port}\n")
            handle.write("enable_grpc=false\n")  # its fixed default ports would clash with another server
        for name, port in ports.items():
            setattr(self, name, f"http://{HOST}:{port}")
        command = [self.serve, "--foreground", "--ncs", "--model-store", os.path.join(REPO, "model_store"),
                   "--models", "all", "--ts-config", "config.properties", "--log-dir", "logs"]
        if not self.token_auth:
            command.append("--disable-token-auth")
        self.log = open(os.path.join(self.folder, "serve.log"), "w")
        self.process = subprocess.Popen(command, cwd=self.folder, stdout=self.log, stderr=subprocess.STDOUT)

        def healthy():
            if self.process.poll() is not None:
                raise SystemExit(f"serve exited with {self.process.returncode} during start-up; log: {self.log_tail()}")
            with urllib.request.urlopen(self.inference + "/ping", timeout=2) as response:
                return response.status == 200

        if not wait_for(healthy, self.startup_timeout, interval=0.5):
            self.__exit__(None, None, None)
            raise SystemExit(f"serve did not become healthy within {self.startup_timeout} s; log: {self.log_tail()}")
        if self.token_auth:
            with open(os.path.join(self.folder, "key_file.json")) as handle:
                self.key = json.load(handle)["inference"]["key"]
        return self

    def log_tail(self, lines=20):
        try:
            with open(os.path.join(self.folder, "serve.log")) as handle:
                return "".join(handle.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def __exit__(self, *exc):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.folder:
            self.log.close()
            shutil.rmtree(self.folder, ignore_errors=True)
        return False


def request(url, body=None, headers=None, method=None, timeout=60):
    """(status, headers, body bytes) of one HTTP call; HTTP errors are answers, not exceptions."""
    req = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()
