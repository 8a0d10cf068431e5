"""Helpers shared by the checks in scripts/check (api_walkthrough.py, chaos.py): standard
library only, for Debian's /usr/bin/python3. Only 127.0.0.1 is used."""

import socket
import time

HOST = "127.0.0.1"


def short(value, limit=300):
    """A value as text, cut to `limit` characters for a check's message."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + f"...({len(text)} chars)"


def free_port():
    """A loopback port nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def alive(pid):
    """Whether the process runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False


def wait_for(predicate, timeout, interval=0.1):
    """Polls `predicate` (an exception counts as falsy) until it gives a true value or `timeout`
    seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except Exception:
            value = None
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
