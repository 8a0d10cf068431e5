#!/usr/bin/python3
"""Runs docs/migrating.md: every command block of the migration guide, in order, in one temporary
working folder, against the sample models, so that the guide fails here before it fails a reader.

How to run (from the repository root):

    scripts/check/migrating              # builds archiver + serve (release) if needed, runs this
    /usr/bin/python3 scripts/check/migrating.py --bin .build/release [--guide docs/migrating.md] [--keep]

What it runs (standard library only; the guide's own Python blocks need torch, torchvision, numpy,
requests and PIL in /usr/bin/python3):

- A fenced block whose language is `sh` or `python` runs, unless the last non-blank line before it
  is an HTML comment starting `<!-- not run`. Other blocks (`text`, `json`, …) are illustration.
- `sh` blocks run with bash under `set -eo pipefail`, after the variables the earlier blocks set
  (`declare -p`) and in the folder the previous block ended in; `python` blocks run with
  `/usr/bin/python3 -` (the script on stdin, so `import model` finds the working folder's
  model.py) in that folder. The first block starts in $WORK.
- The environment: REPO (this checkout), WORK (the temporary working folder), PATH with the
  binaries' folder first and a `python3` that is /usr/bin/python3.
- Ports: `127.0.0.1:8080`, `:8081`, `:8082` (also `localhost`, also written `127\\.0\\.0\\.1` as
  in a regular expression) become three free ports, new for each `## ` section; `:8000` becomes
  the port of a small HTTP server this script runs on 127.0.0.1 serving $WORK/images (the guide's
  image-by-URL examples). The same rewriting applies to the expected output.
- A fenced block right after the comment `<!-- output -->` is the expected standard output of the
  runnable block before it: `…` matches any text (line breaks too), whitespace is optional, the
  whole output must match. A block without one passes when it exits 0.
- One PASS/FAIL line per block (file line, section, first command), then a summary. After each
  section every `serve` started under $WORK is stopped (`serve --stop`, then SIGKILL); one left
  running by a section whose blocks all passed is a failure of that section. The image server
  stops at the end.
- A failing block that needs something still being built (model_store/qa.mar, the
  question_answering handler, images by URL) says so in its FAIL line.

Exit status 0 only when every block passed; 1 when one failed; 2 when it cannot run (no binaries,
no guide, no /usr/bin/python3).
"""

import argparse
import functools
import http.server
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from checkutil import HOST, alive, free_port, short  # scripts/check/checkutil.py

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = "/usr/bin/python3"
RUNNABLE = {"sh": "sh", "bash": "sh", "python": "python", "python3": "python"}
BLOCK_TIMEOUT = 600
FENCE = re.compile(r"^(`{3,})\s*([A-Za-z0-9_+-]*)\s*$")
PORT = re.compile(r"(127\\?\.0\\?\.0\\?\.1|localhost):(8080|8081|8082|8000)\b")


class Block:
    def __init__(self, line, section, lang, text, skip):
        self.line, self.section, self.lang, self.text, self.skip = line, section, lang, text, skip
        self.expect = None

    @property
    def kind(self):
        return RUNNABLE.get(self.lang)

    def title(self):
        """The block's first command, for its PASS/FAIL line."""
        for raw in self.text.splitlines():
            line = raw.strip()
            if line and not line.startswith("#"):
                line = f"{self.lang}: {line}"
                return line if len(line) <= 80 else line[:79] + "…"
        return self.lang


def parse(path):
    """The guide's fenced blocks, each with its section, whether it runs, and its expected output.
    Returns (blocks, problems): problems are mistakes in the guide's markup."""
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    blocks, problems = [], []
    section, previous, index = "(before the first section)", "", 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("## "):
            section = line[3:].strip()
        fence = FENCE.match(line)
        if not fence:
            if line.strip():
                previous = line.strip()
            index += 1
            continue
        start, ticks, lang = index + 1, fence.group(1), fence.group(2).lower()
        index += 1
        body = []
        while index < len(lines) and lines[index].strip() != ticks:
            body.append(lines[index])
            index += 1
        if index == len(lines):
            problems.append(f"line {start}: the block opened here is never closed")
        index += 1
        marker = previous if previous.startswith("<!--") else ""
        block = Block(start, section, lang, "\n".join(body) + "\n", marker.startswith("<!-- not run"))
        if marker.startswith("<!-- output"):
            owner = blocks[-1] if blocks else None
            if owner is None or owner.kind is None or owner.skip or owner.expect is not None:
                problems.append(f"line {start}: an output block that follows no runnable block")
            else:
                owner.expect = block.text
        else:
            blocks.append(block)
        previous = ticks
    return blocks, problems


def pattern(expected):
    """The regular expression an expected output stands for: `…` any text, whitespace optional."""
    parts, text = [], expected.strip()
    for token in re.split(r"(…|\s+)", text):
        if token == "…":
            parts.append(".*?")
        elif token and token.isspace():
            parts.append(r"\s*")
        elif token:
            parts.append(re.escape(token))
    return re.compile("".join(parts), re.DOTALL)


def matches(expected, actual):
    return pattern(expected).fullmatch(actual.strip()) is not None


def first_mismatch(expected, actual):
    """The first expected line that no line of the output (after the ones matched so far) matches,
    for a FAIL line; None when every line has one (then the output has extra lines)."""
    lines = [line.strip() for line in actual.strip().splitlines()]
    position = 0
    for wanted in (line.strip() for line in expected.strip().splitlines()):
        if not wanted:
            continue
        regex = pattern(wanted)
        while position < len(lines) and not regex.fullmatch(lines[position]):
            position += 1
        if position == len(lines):
            return wanted
        position += 1
    return None


class Images(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class Report:
    def __init__(self):
        self.passed, self.failures, self.skipped = 0, [], 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"PASS {name}", flush=True)
        else:
            line = f"FAIL {name}: {detail}"
            self.failures.append(line)
            print(line, flush=True)
        return ok


def missing_features(text):
    """What a block needs that is not in this checkout yet, for its FAIL line."""
    notes = []
    if "qa.mar" in text and not os.path.exists(os.path.join(REPO, "model_store", "qa.mar")):
        notes.append("model_store/qa.mar has not landed yet")
    if "question_answering" in text:
        with open(os.path.join(REPO, "Sources", "ModelArchive", "HandlerKind.swift")) as handle:
            if "question_answering" not in handle.read():
                notes.append("the question_answering handler has not landed yet")
    if "allowed_fetch_addresses" in text or '"url"' in text:
        with open(os.path.join(REPO, "docs", "configuration.md")) as handle:
            if "allowed_fetch_addresses" not in handle.read():
                notes.append("allowed_fetch_addresses is not in docs/configuration.md yet (images by URL may not have landed)")
    return notes


class Runner:
    def __init__(self, root, binaries):
        self.root = root
        self.work = os.path.join(root, "work")
        self.state = os.path.join(root, "check")
        self.binaries = binaries
        os.makedirs(os.path.join(self.work, "images"))
        os.makedirs(os.path.join(self.state, "bin"))
        os.symlink(PYTHON, os.path.join(self.state, "bin", "python3"))
        self.env = dict(os.environ, REPO=REPO, WORK=self.work,
                        PATH=os.pathsep.join([os.path.join(self.state, "bin"), binaries, os.environ.get("PATH", "")]))
        for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
            self.env.pop(name, None)
        with open(os.path.join(self.state, "env.sh"), "w") as handle:
            for name in ("REPO", "WORK", "PATH"):
                handle.write(f"export {name}={shell_quote(self.env[name])}\n")
        self.write_cwd(self.work)
        baseline = subprocess.run(["bash", "-c", f"source {shell_quote(os.path.join(self.state, 'env.sh'))}; compgen -v"],
                                  capture_output=True, text=True, env=self.env).stdout
        with open(os.path.join(self.state, "baseline"), "w") as handle:
            handle.write(baseline)
        self.images = http.server.ThreadingHTTPServer((HOST, 0), functools.partial(Images, directory=os.path.join(self.work, "images")))
        threading.Thread(target=self.images.serve_forever, daemon=True).start()
        self.ports = {}

    def write_cwd(self, folder):
        with open(os.path.join(self.state, "cwd"), "w") as handle:
            handle.write(folder)

    def cwd(self):
        with open(os.path.join(self.state, "cwd")) as handle:
            folder = handle.read().strip()
        return folder if os.path.isdir(folder) else self.work

    def new_section(self):
        taken = set()
        self.ports = {"8000": self.images.server_address[1]}
        for port in ("8080", "8081", "8082"):
            chosen = free_port()
            while chosen in taken or chosen == self.ports["8000"]:
                chosen = free_port()
            taken.add(chosen)
            self.ports[port] = chosen

    def rewrite(self, text):
        return PORT.sub(lambda m: f"{m.group(1)}:{self.ports[m.group(2)]}", text)

    def run(self, block):
        text = self.rewrite(block.text)
        if block.kind == "sh":
            script = os.path.join(self.state, f"block-{block.line}.sh")
            state = shell_quote(self.state)
            with open(script, "w") as handle:
                handle.write(
                    f"source {state}/env.sh\n"
                    f"if [ -f {state}/vars.sh ]; then source {state}/vars.sh; fi\n"
                    f"cd \"$(cat {state}/cwd)\" || exit 1\n"
                    "__migrating_save() {\n"
                    "    local __migrating_rc=$? __migrating_names\n"
                    "    set +e\n"
                    f"    pwd > {state}/cwd\n"
                    f"    __migrating_names=$(compgen -v | grep -vxF -f {state}/baseline | grep -Ev '^(BASH|_|COMP_|FUNCNAME$|OLDPWD$|LINES$|COLUMNS$)')\n"
                    f"    if [ -n \"$__migrating_names\" ]; then declare -p $__migrating_names > {state}/vars.sh 2>/dev/null; fi\n"
                    "    exit $__migrating_rc\n"
                    "}\n"
                    "trap __migrating_save EXIT\n"
                    "set -eo pipefail\n"
                    f"{text}")
            command, stdin = ["bash", script], None
        else:
            command, stdin = [PYTHON, "-"], text
        try:
            done = subprocess.run(command, input=stdin, capture_output=True, text=True, errors="replace",
                                  cwd=self.cwd(), env=self.env, timeout=BLOCK_TIMEOUT, start_new_session=True)
            return done.returncode, done.stdout, done.stderr
        except subprocess.TimeoutExpired as expired:
            return None, decode(expired.stdout), decode(expired.stderr)

    def stop_servers(self):
        """Stops every serve started under $WORK; returns the folders one was still running in."""
        running = []
        for folder, _, files in os.walk(self.work):
            if os.path.basename(folder) != "logs" or "serve.pid" not in files:
                continue
            try:
                with open(os.path.join(folder, "serve.pid")) as handle:
                    pid = int(handle.read().strip())
            except (OSError, ValueError):
                continue
            if not alive(pid):
                continue
            home = os.path.dirname(folder)
            running.append(os.path.relpath(home, self.work))
            subprocess.run([os.path.join(self.binaries, "serve"), "--stop"], cwd=home, env=self.env,
                           capture_output=True, timeout=120)
            deadline = time.monotonic() + 30
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        return running

    def close(self):
        self.stop_servers()
        self.images.shutdown()
        self.images.server_close()


def section_label(section):
    """`§1` for "1. A fastai U-Net …", else the heading's first words."""
    number = re.match(r"(\d+)\.\s", section)
    if number:
        return f"§{number.group(1)}"
    return section if len(section) <= 24 else section[:23] + "…"


def shell_quote(text):
    return "'" + text.replace("'", "'\"'\"'") + "'"


def decode(data):
    if data is None:
        return ""
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


def tail(text, lines=3):
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=os.path.join(REPO, ".build", "release"), help="the folder holding archiver and serve")
    parser.add_argument("--guide", default=os.path.join(REPO, "docs", "migrating.md"))
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    options = parser.parse_args()
    binaries = os.path.abspath(options.bin)
    for name in ("archiver", "serve"):
        if not os.access(os.path.join(binaries, name), os.X_OK):
            print(f"migrating: {os.path.join(binaries, name)} is not an executable; build it first (scripts/check/migrating does)")
            return 2
    if not os.access(PYTHON, os.X_OK):
        print(f"migrating: {PYTHON} is missing; the guide's Python blocks run with it")
        return 2
    if not os.path.exists(options.guide):
        print(f"migrating: no guide at {options.guide}")
        return 2

    report = Report()
    blocks, problems = parse(options.guide)
    guide = os.path.relpath(options.guide, REPO)
    if guide.startswith(".."):
        guide = os.path.abspath(options.guide)
    for problem in problems:
        report.check(f"{guide} markup", False, problem)
    root = tempfile.mkdtemp(prefix="migrating-check-")
    runner = None
    try:
        runner = Runner(root, binaries)
        print(f"guide {guide}, {sum(1 for b in blocks if b.kind and not b.skip)} blocks to run\n"
              f"working folder {runner.work}\nbinaries {binaries}\nimages on http://{HOST}:{runner.images.server_address[1]}/",
              flush=True)
        sections = []
        for block in blocks:
            if not sections or sections[-1][0] != block.section:
                sections.append((block.section, []))
            sections[-1][1].append(block)
        for section, members in sections:
            runnable = [block for block in members if block.kind]
            if not runnable:
                continue
            runner.new_section()
            label = section_label(section)
            first_failure = None
            for block in runnable:
                name = f"{guide}:{block.line} [{label}] {block.title()}"
                if block.skip:
                    report.skipped += 1
                    print(f"skip {name} (not run)", flush=True)
                    continue
                started = time.monotonic()
                code, out, err = runner.run(block)
                took = f"{time.monotonic() - started:.1f}s"
                if code is None:
                    detail = f"still running after {BLOCK_TIMEOUT} s; output: {short(tail(out + err), 600)}"
                elif code != 0:
                    detail = f"exit status {code}: {short(tail(err or out), 600)}"
                    if code == 7 and "curl" in block.text:
                        detail += " (curl could not connect)"
                elif block.expect is not None and not matches(runner.rewrite(block.expect), out):
                    missing = first_mismatch(runner.rewrite(block.expect), out)
                    detail = (f"output differs: no line matches {short(missing, 200)!r}" if missing
                              else "output differs: more lines than expected") + f"; got {short(out.strip(), 500)!r}"
                else:
                    detail = None
                if detail:
                    notes = missing_features(block.text + (block.expect or ""))
                    if first_failure is not None:
                        notes.append(f"after the failure of line {first_failure} in this section")
                    if notes:
                        detail += f" [{'; '.join(notes)}]"
                    first_failure = first_failure or block.line
                report.check(f"{name} ({took})", detail is None, detail)
            left = runner.stop_servers()
            if left and first_failure is None:
                report.check(f"{guide} [{label}] stops its servers", False, f"serve still running in {', '.join(left)}")
            runner.write_cwd(runner.work)
    except Exception as error:  # a crash of the script is a failure too, after the cleanup
        import traceback
        traceback.print_exc()
        report.check("the check ran to the end", False, f"{type(error).__name__}: {error}")
    finally:
        if runner is not None:
            runner.close()
        if options.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    total = report.passed + len(report.failures)
    print(f"\nSUMMARY: {total} checks, {report.passed} passed, {len(report.failures)} failed, {report.skipped} blocks not run")
    for line in report.failures:
        print(line)
    return 0 if not report.failures else 1


if __name__ == "__main__":
    sys.exit(main())
