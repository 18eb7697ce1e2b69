"""Shared fixtures of the Python suites.

`fake_provider` starts `tollgate fake-provider --port 0` once per session (binary from env
`TOLLGATE_BIN`, else `.build/debug/tollgate` under the repository root), reads the port it logged
(`tollgate.port=NNNN` on standard error) and stops it at the end. It requires the key `FAKE_KEY`.
"""

from __future__ import annotations

import http.server
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
FAKE_KEY = "fake-provider-test-key"
PORT_PATTERN = re.compile(r"tollgate\.port=(\d+)")


@dataclass(frozen=True)
class FakeProviderServer:
    url: str
    port: int
    key: str
    log: list[str]


def tollgate_binary() -> Path:
    configured = os.environ.get("TOLLGATE_BIN")
    path = Path(configured) if configured else REPO_ROOT / ".build" / "debug" / "tollgate"
    if not path.is_file():
        pytest.fail(f"tollgate binary not found at {path}: build it or set TOLLGATE_BIN")
    return path


def start_fake_provider(*extra: str, key: str = FAKE_KEY, timeout: float = 30.0):
    """Starts a fake provider; returns (process, server). The caller stops it with `stop`."""
    command = [str(tollgate_binary()), "fake-provider", "--port", "0", "--require-key", key, *extra]
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    log: list[str] = []
    found: list[int] = []
    ready = threading.Event()

    def drain() -> None:
        # Keeps reading standard error for the whole run so the pipe never fills.
        assert process.stderr is not None
        for line in process.stderr:
            log.append(line.rstrip("\n"))
            match = PORT_PATTERN.search(line)
            if match and not found:
                found.append(int(match.group(1)))
                ready.set()
        ready.set()

    threading.Thread(target=drain, name="fake-provider-stderr", daemon=True).start()
    deadline = time.monotonic() + timeout
    while not ready.wait(0.1):
        if time.monotonic() > deadline:
            break
    if not found:
        stop(process)
        raise RuntimeError("fake provider did not report its port:\n" + "\n".join(log))
    port = found[0]
    return process, FakeProviderServer(url=f"http://127.0.0.1:{port}", port=port, key=key, log=log)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="session")
def fake_provider():
    process, server = start_fake_provider()
    yield server
    stop(process)
    assert process.returncode == 0, "fake provider did not shut down cleanly:\n" + "\n".join(server.log)


def wait_for_line(owner, regex: re.Pattern, timeout: float, failure) -> re.Match:
    """The first of `owner.lines` matching `regex`, waiting on `owner._changed` (a Condition notified when a
    line arrives or `owner.eof` is set); `failure()` is the message when none comes in time."""
    deadline = time.monotonic() + timeout
    with owner._changed:
        while True:
            for line in owner.lines:
                if match := regex.search(line):
                    return match
            remaining = deadline - time.monotonic()
            if remaining <= 0 or owner.eof:
                raise AssertionError(failure())
            owner._changed.wait(min(remaining, 0.2))


def serve_on_loopback(handler, port: int = 0) -> http.server.ThreadingHTTPServer:
    """An HTTP server for `handler` on 127.0.0.1 (`port` 0: a free one), serving on a daemon thread; stop it
    with `close_server`."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def close_server(server: http.server.ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()


def wait_until(predicate: Callable[[], object], timeout: float, what: str,
               context: Callable[[], str] | None = None, interval: float = 0.02):
    """Calls `predicate` until it returns something truthy (returned), or fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}"
                                 + ("\n" + context() if context else ""))
        time.sleep(interval)
