"""The dashboard in a real browser: headless Chromium driven over the DevTools protocol.

Seeds a projections database with `tollgate projections seed` (which also writes the events it projected
as JSON lines), serves it with `tollgate query`, signs in through the dashboard's login form, opens
`/dashboard?period=30d` at 1366×768 and reads the rendered DOM: the spend chart has SVG bars, the totals
and the per-team table show the figures computed here from the events, the most expensive request is the
one expected, budgets and alerts are there, no script and no console error. A screenshot goes to
`Tests/python/artifacts/dashboard.png` (the first screen) and `dashboard-full.png` (the whole page).

Skipped (with the reason) only when Chromium is not installed or the binary lacks the `projections seed`
or `query` commands.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import REPO_ROOT, stop, tollgate_binary

websocket = pytest.importorskip("websocket", reason="websocket-client is not installed (Tests/python/requirements.txt)")

ADMIN_KEY = "dashboard-browser-admin-key"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
WIDTH, HEIGHT = 1366, 768


# MARK: Expected figures, from the events


def parse_time(text: str) -> datetime:
    """An RFC 3339 instant (`2026-11-29T08:00:00.123Z`) as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def milliseconds(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1000 + (delta.microseconds + 500) // 1000


def dollars4(nano: int) -> str:
    """`$12.3456`: four decimals, ties to even, with integers only (as the dashboard promises)."""
    sign = "-" if nano < 0 else ""
    units, remainder = divmod(abs(nano), 100_000)
    if remainder > 50_000 or (remainder == 50_000 and units % 2 == 1):
        units += 1
    if units == 0:
        sign = ""
    return f"{sign}${units // 10_000}.{units % 10_000:04d}"


def read_usage(path: Path) -> list[dict]:
    """The usage payloads of the seeded events, once per request id (the projector drops repeats)."""
    seen: dict[str, dict] = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        event = json.loads(line)
        if "event" in event and "data" not in event:
            event = event["event"]
        if event.get("type") != "tollgate.usage.v1":
            continue
        data = event["data"]
        seen.setdefault(data["response"]["request_id"], data)
    return list(seen.values())


def dashboard_range(now: datetime, days: int) -> tuple[datetime, datetime]:
    """The range the dashboard shows for `days` ≥ 2: whole UTC days ending with today."""
    end = datetime(now.year, now.month, now.day, tzinfo=timezone.utc) + timedelta(days=1)
    return end - timedelta(days=days), end


# MARK: Processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def help_text(binary: Path, *command: str) -> str:
    result = subprocess.run([str(binary), *command, "--help"], capture_output=True, text=True, timeout=60)
    return result.stdout + result.stderr


def wait_for(url: str, timeout: float, process: subprocess.Popen, log: list[str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the process ended ({process.returncode}) before {url} answered:\n" + "\n".join(log))
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 within {timeout}s:\n" + "\n".join(log))


def drain(process: subprocess.Popen, log: list[str]) -> None:
    def run() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            log.append(line.rstrip("\n"))

    threading.Thread(target=run, daemon=True).start()


# MARK: DevTools protocol


class DevTools:
    """A minimal DevTools protocol client over one page target's WebSocket."""

    def __init__(self, url: str) -> None:
        # Chromium refuses DevTools WebSockets with an Origin it was not told to allow.
        self.socket = websocket.create_connection(url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, **params) -> dict:
        self.next_id += 1
        ident = self.next_id
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_event(self, method: str, timeout: float = 30) -> dict:
        for index, event in enumerate(self.events):
            if event["method"] == method:
                return self.events.pop(index)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = json.loads(self.socket.recv())
            if message.get("method") == method:
                return message
            if "method" in message:
                self.events.append(message)
        raise TimeoutError(f"no {method} within {timeout}s")

    def navigate(self, url: str) -> None:
        self.events = [event for event in self.events if event["method"] != "Page.loadEventFired"]
        result = self.send("Page.navigate", url=url)
        assert "errorText" not in result, result
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluation failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def console_errors(self) -> list[str]:
        errors = []
        for event in self.events:
            params = event.get("params", {})
            if event["method"] == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append(json.dumps(params.get("args")))
            elif event["method"] == "Runtime.exceptionThrown":
                errors.append(json.dumps(params.get("exceptionDetails")))
            elif event["method"] == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                errors.append(params["entry"].get("text", ""))
        return errors

    def close(self) -> None:
        self.socket.close()


def start_chromium(profile: Path) -> tuple[subprocess.Popen, str]:
    binary = shutil.which("chromium") or "/usr/bin/chromium"
    process = subprocess.Popen(
        [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
         f"--user-data-dir={profile}", "--no-first-run", "--no-default-browser-check",
         f"--window-size={WIDTH},{HEIGHT}", "about:blank"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    active = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited with {process.returncode}")
        if active.exists():
            lines = active.read_text().splitlines()
            if lines and lines[0].strip().isdigit():
                port = int(lines[0])
                break
        time.sleep(0.1)
    else:
        raise RuntimeError("chromium did not write DevToolsActivePort")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as response:
                targets = json.load(response)
            pages = [target for target in targets if target.get("type") == "page"]
            if pages:
                return process, pages[0]["webSocketDebuggerUrl"]
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.2)
    raise RuntimeError("chromium has no page target")


# MARK: The test

READ_PAGE = """
(() => {
  const all = (selector) => Array.from(document.querySelectorAll(selector));
  const one = (selector) => document.querySelector(selector);
  const bars = all('svg[data-testid="spend-chart"] rect[data-testid="spend-bar"]');
  const teams = {};
  for (const row of all('table[data-testid="by-team"] tr[data-testid="usage-row"]')) {
    const cell = row.querySelector('[data-cost-nano-usd]');
    teams[row.dataset.name] = {nano: cell.dataset.costNanoUsd, text: cell.textContent.trim()};
  }
  const total = one('[data-testid="total-cost"]');
  const top = one('tr[data-testid="top-request"]');
  const teamTotal = one('table[data-testid="by-team"] tr[data-testid="total-row"] [data-cost-nano-usd]');
  return JSON.stringify({
    url: location.href,
    title: document.title,
    scripts: document.scripts.length,
    bars: bars.length,
    barSum: bars.reduce((sum, bar) => sum + BigInt(bar.dataset.costNanoUsd), 0n).toString(),
    tallBars: bars.filter((bar) => bar.getBoundingClientRect().height > 0.5).length,
    buckets: all('svg[data-testid="spend-chart"] [data-testid="spend-bucket"]').length,
    yLabels: all('svg[data-testid="spend-chart"] [data-testid="y-label"]').map((e) => e.textContent),
    xLabels: all('svg[data-testid="spend-chart"] [data-testid="x-label"]').length,
    legend: all('[data-testid="spend-legend"] li').length,
    totalNano: total && total.dataset.costNanoUsd,
    totalText: total && total.textContent.trim(),
    requests: one('[data-testid="total-requests"]').dataset.value,
    teams,
    teamTotal: teamTotal && {nano: teamTotal.dataset.costNanoUsd, text: teamTotal.textContent.trim()},
    teamBars: all('svg[data-testid="team-chart"] [data-testid="hbar"]').length,
    topId: top && top.dataset.requestId,
    topCount: all('tr[data-testid="top-request"]').length,
    sections: all('section[data-testid]').map((s) => s.dataset.testid),
    budgetsHeading: one('section[data-testid="budgets"] h2') && one('section[data-testid="budgets"] h2').textContent,
    alertsHeading: one('section[data-testid="alerts"] h2') && one('section[data-testid="alerts"] h2').textContent,
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    chartWidth: one('svg[data-testid="spend-chart"]').getBoundingClientRect().width,
  });
})()
"""


def test_dashboard_in_chromium(tmp_path: Path) -> None:
    if not (shutil.which("chromium") or Path("/usr/bin/chromium").exists()):
        pytest.skip("chromium is not installed (Debian package `chromium`)")
    binary = tollgate_binary()
    seed_help = help_text(binary, "projections", "seed")
    if "--events-out" not in seed_help:
        pytest.skip("`tollgate projections seed` (with --events-out) is not in this build of tollgate yet")
    if "--projections" not in help_text(binary, "query"):
        pytest.skip("`tollgate query` (with --projections) is not in this build of tollgate yet")

    db = tmp_path / "projections.sqlite"
    events_path = tmp_path / "events.jsonl"
    seeded = subprocess.run(
        [str(binary), "projections", "seed", "--db", str(db), "--requests", "2000", "--days", "14",
         "--seed", "11", "--events-out", str(events_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    usage = read_usage(events_path)
    assert len(usage) == 2000, f"expected 2000 usage events in {events_path}, found {len(usage)}"

    port = free_port()
    env = dict(os.environ, TOLLGATE_ADMIN_KEY=ADMIN_KEY)
    server = subprocess.Popen(
        [str(binary), "query", "--projections", str(db), "--port", str(port)],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    server_log: list[str] = []
    drain(server, server_log)
    base = f"http://127.0.0.1:{port}"
    profile = Path(tempfile.mkdtemp(prefix="tollgate-chromium-"))
    chromium = None
    devtools = None
    try:
        wait_for(base + "/healthz", 60, server, server_log)
        chromium, url = start_chromium(profile)
        devtools = DevTools(url)
        for domain in ("Page", "Runtime", "Log", "Network"):
            devtools.send(f"{domain}.enable")
        devtools.send("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1,
                      mobile=False)

        # Not signed in: the login page; a wrong key is refused; the right one signs in through the form.
        devtools.navigate(base + "/dashboard?period=30d")
        assert devtools.evaluate("!!document.querySelector('form[data-testid=\"login-form\"]')")
        submit = """
            document.querySelector('input[name="key"]').value = %s;
            document.querySelector('form[data-testid="login-form"]').submit();
        """
        devtools.events.clear()
        devtools.evaluate(submit % json.dumps("wrong-key"))
        devtools.wait_event("Page.loadEventFired")
        assert devtools.evaluate("!!document.querySelector('[data-testid=\"login-error\"]')")
        devtools.evaluate(submit % json.dumps(ADMIN_KEY))
        devtools.wait_event("Page.loadEventFired")
        assert devtools.evaluate("location.pathname") == "/dashboard"
        assert devtools.evaluate("!!document.querySelector('svg[data-testid=\"spend-chart\"]')"), \
            "the session cookie did not sign in"

        # The dashboard for 30 days.
        devtools.events.clear()
        now = datetime.now(timezone.utc)
        devtools.navigate(base + "/dashboard?period=30d")
        page = json.loads(devtools.evaluate(READ_PAGE))
        errors = devtools.console_errors()

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = devtools.send("Page.captureScreenshot", format="png")
        (ARTIFACTS / "dashboard.png").write_bytes(base64.b64decode(shot["data"]))
        # The whole page too, for a human to look over.
        content = devtools.send("Page.getLayoutMetrics")["cssContentSize"]
        full = devtools.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                             clip={"x": 0, "y": 0, "width": WIDTH, "height": content["height"], "scale": 1})
        (ARTIFACTS / "dashboard-full.png").write_bytes(base64.b64decode(full["data"]))
    finally:
        if devtools is not None:
            devtools.close()
        if chromium is not None:
            chromium.terminate()
            try:
                chromium.wait(timeout=15)
            except subprocess.TimeoutExpired:
                chromium.kill()
        stop(server)
        shutil.rmtree(profile, ignore_errors=True)

    # Expected figures over the page's range.
    start, end = dashboard_range(now, 30)
    in_range = [d for d in usage if start <= parse_time(d["response"]["timings"]["received_at"]) < end]
    assert len(in_range) == len(usage), "the seed's 14 days should all fall inside the 30-day view"
    total = sum(d["cost_nano_usd"]["total"] for d in in_range)
    per_team: dict[str, int] = {}
    for d in in_range:
        per_team[d["response"]["team"]] = per_team.get(d["response"]["team"], 0) + d["cost_nano_usd"]["total"]
    top = max(in_range, key=lambda d: (d["cost_nano_usd"]["total"],
                                       milliseconds(parse_time(d["response"]["timings"]["received_at"]))))

    assert errors == [], f"console errors: {errors}"
    assert page["scripts"] == 0
    assert page["totalNano"] == str(total)
    assert page["totalText"] == dollars4(total)
    assert page["requests"] == str(len(in_range))
    assert {name: row["nano"] for name, row in page["teams"].items()} == {k: str(v) for k, v in per_team.items()}
    assert {name: row["text"] for name, row in page["teams"].items()} == {k: dollars4(v) for k, v in per_team.items()}
    assert page["teamTotal"] == {"nano": str(total), "text": dollars4(total)}
    assert page["teamBars"] == min(len(per_team), 12)
    # The chart: a bar per model and day with spend, all of them adding up to the total.
    assert page["buckets"] == 30
    assert page["bars"] > 14, page["bars"]
    assert page["tallBars"] > 0
    assert page["barSum"] == str(total)
    assert len(page["yLabels"]) >= 2 and all(label.startswith("$") for label in page["yLabels"])
    assert page["xLabels"] >= 5
    assert page["legend"] >= 1
    assert page["topId"] == top["response"]["request_id"]
    assert page["topCount"] == min(20, len(in_range))
    for section in ("spend-over-time", "teams", "projects", "keys", "customers", "tags", "model-mix",
                    "top-requests", "budgets", "alerts"):
        assert section in page["sections"], f"section {section} missing: {page['sections']}"
    assert page["budgetsHeading"].startswith("Budgets")
    assert page["alertsHeading"].startswith("Recent alerts")
    # Fits a 1366-pixel-wide laptop screen: no horizontal scrolling, the chart fills the width.
    assert page["innerWidth"] == WIDTH
    assert page["scrollWidth"] <= WIDTH, f"the page scrolls sideways: {page['scrollWidth']}px"
    assert page["chartWidth"] > 1000
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
