"""Alert delivery end to end (issue #8), against real receivers on 127.0.0.1.

- An HTTP webhook receiver that checks the HMAC signature the way WebhookFormat.swift tells receivers to
  (HMAC-SHA256 over `<X-Tollgate-Timestamp>.<raw body>` with the secret, compared in constant time,
  timestamps within 5 minutes) and answers 200 only for a valid request (401 otherwise).
- A Slack incoming-webhook stand-in that checks the body against Slack's documented format (`text` and
  `blocks`; header, section and context blocks with their text objects and limits) and answers like Slack
  (`200 ok`, or `400 invalid_payload`).
- An SMTP server (aiosmtpd) recording every message.

The tests:

1. Traffic through the ingress (the official `openai` SDK) pushes team `search` past 50 % and then past
   80 % of its budget. Each level's alert reaches every channel exactly once; the delay from the end of
   the crossing call to the arrival on each channel is printed and written to
   `Tests/python/artifacts/alert_delay.txt`, and must stay under 1 s (the issue's bound, embedded log).
2. A webhook receiver that is down (connection refused, then 503) gets every alert once, 200-acknowledged,
   after it comes back; `tollgate alerts list` shows them delivered after several attempts.
3. A standalone `tollgate alerts run` process is killed (SIGKILL) while the receiver holds its requests
   open; after a restart every alert is acknowledged exactly once, none is lost, and the alerts topic and
   `tollgate alerts list` agree.

The cost of a call is computed outside Tollgate: the same request goes to the fake provider directly and
its usage is priced with pricing.py (an independent reading of the catalog); the budget's limit is then
chosen so that the first call brings the team to 30 %, the second to 60 % and the third to 90 %. The
budget is `lifetime`, so the burn-rate rule (periods with an end) stays quiet and only the built-in
threshold rule (50, 80, 100 %) raises alerts.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Callable

import openai
import pytest
from aiosmtpd.controller import Controller
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from conftest import (REPO_ROOT, close_server, serve_on_loopback, start_fake_provider, stop, tollgate_binary,
                      wait_for_line, wait_until)
from pricing import expected_nano_usd

UPSTREAM_SECRET = "sk-upstream-" + uuid.uuid4().hex
ADMIN_KEY = "admin-" + uuid.uuid4().hex
WEBHOOK_SECRET = "whsec-" + uuid.uuid4().hex
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
QUESTION = "What is the capital of France, in one word please?"
REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 64}
THRESHOLD_RULE = "default-budget-threshold"
DELAY_BOUND_S = 1.0
PORT = re.compile(r"tollgate\.port=(\d+)")


# --------------------------------------------------------------------------------------------------
# Waiting


# --------------------------------------------------------------------------------------------------
# Tollgate processes


class TollgateProcess:
    """A `tollgate` subcommand as a process; standard error is drained into `lines` for the whole run."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None):
        self.args = args
        self.lines: list[str] = []
        self.eof = False
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            [str(tollgate_binary()), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL, text=True, env=env)
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self.eof = True
            self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match:
        """The first line matching `pattern` (a regular expression), waiting for it."""
        return wait_for_line(self, re.compile(pattern), timeout,
                             lambda: f"`tollgate {' '.join(self.args[:2])}` never logged /{pattern}/:\n"
                                     + self.log_tail())

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.lines[-lines:])

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, nothing flushed, as in a crash."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        stop(self.process)


@pytest.fixture
def processes():
    """Starts `tollgate` processes and stops every one still running at the end of the test."""
    started: list[TollgateProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> TollgateProcess:
        process = TollgateProcess(list(args), env=env)
        started.append(process)
        return process

    yield start
    for process in reversed(started):
        process.stop()


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without outside alert or budget settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"TOLLGATE_ALERTS_FILE", "TOLLGATE_ALERTS_DB", "TOLLGATE_BUDGETS_FILE",
                        "TOLLGATE_KAFKA_BROKERS", "TOLLGATE_LOG_LEVEL"}}
    env.update(extra)
    return env


def tg(*args: str, timeout: float = 60) -> str:
    """Runs a short `tollgate` command and returns its standard output."""
    result = subprocess.run([str(tollgate_binary()), *args], capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"tollgate {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result.stdout


def alert_deliveries(data_dir: Path, db: Path | None = None) -> list[dict]:
    """`tollgate alerts list --json`: [{alert_id, ..., deliveries: [{channel, state, attempts, ...}]}]."""
    if db is None and not (data_dir / "alerts.sqlite").exists():
        return []
    args = ["alerts", "list", "--data-dir", str(data_dir), "--json", "--limit", "500"]
    if db is not None:
        if not db.exists():
            return []
        args += ["--alerts-db", str(db)]
    return json.loads(tg(*args))["alerts"]


def all_delivered(data_dir: Path, expected: int, db: Path | None = None) -> list[dict] | None:
    """The alerts once exactly `expected` deliveries exist and every one is delivered."""
    alerts = alert_deliveries(data_dir, db)
    deliveries = [d for a in alerts for d in a["deliveries"]]
    dead = [d for d in deliveries if d["state"] == "dead"]
    assert not dead, f"dead-lettered deliveries: {dead}"
    if len(deliveries) == expected and all(d["state"] == "delivered" for d in deliveries):
        return alerts
    return None


def log_messages(data_dir: Path, topic: str) -> list[tuple[str | None, dict]]:
    """Every message of a topic as (key, decoded value), read without committing."""
    output = tg("log", "consume", "--data-dir", str(data_dir), "--topic", topic, "--group",
                f"test-{uuid.uuid4().hex}", "--from", "beginning", "--idle-exit-ms", "300", "--json", "--no-commit")
    rows = []
    for line in output.splitlines():
        if line.strip():
            message = json.loads(line)
            rows.append((message.get("key"), json.loads(message["value"])))
    return rows


# --------------------------------------------------------------------------------------------------
# Receivers


@dataclass
class Received:
    """One HTTP request a receiver read in full."""
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    arrived: float  # time.monotonic()
    status: int | None = None  # the answer written, None while unanswered or when dropped
    problems: list[str] = field(default_factory=list)

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class HTTPReceiver:
    """An HTTP/1.1 server on 127.0.0.1 that records every POST and answers what `respond` returns.

    `respond(request)` returns (status, content type, body), or None to close the connection without an
    answer. It runs on the request's own thread, so it may block (to hold a request open).
    """

    def __init__(self, respond: Callable[[Received], tuple[int, str, bytes] | None], port: int = 0):
        self.respond = respond
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = self._read_body()
                request = Received(path=self.path, headers={k.lower(): v for k, v in self.headers.items()},
                                   body=body, arrived=time.monotonic())
                with receiver.lock:
                    receiver.requests.append(request)
                answer = receiver.respond(request)
                if answer is None:
                    self.close_connection = True
                    return
                status, content_type, payload = answer
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    self.wfile.flush()
                except OSError:
                    self.close_connection = True
                    return
                request.status = status

            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length", "0")))

        self.server = serve_on_loopback(Handler, port)
        self.port = self.server.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.requests)

    def close(self) -> None:
        close_server(self.server)


def webhook_problems(request: Received, secret: str) -> list[str]:
    """What is wrong with a webhook request, checked as WebhookFormat.swift tells receivers to."""
    problems = []
    timestamp = request.headers.get("x-tollgate-timestamp", "")
    signature = request.headers.get("x-tollgate-signature", "")
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + request.body,
                                    hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        problems.append(f"bad signature {signature!r}")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
        problems.append(f"timestamp {timestamp!r} more than 5 minutes away")
    if not request.headers.get("content-type", "").startswith("application/cloudevents+json"):
        problems.append(f"content type {request.headers.get('content-type')!r}")
    try:
        body = request.json
    except ValueError:
        return problems + ["the body is not JSON"]
    if body.get("tollgatedelivery") != request.headers.get("x-tollgate-delivery"):
        problems.append("X-Tollgate-Delivery differs from the body's tollgatedelivery")
    if str(body.get("tollgateattempt")) != request.headers.get("x-tollgate-attempt"):
        problems.append("X-Tollgate-Attempt differs from the body's tollgateattempt")
    if body.get("data", {}).get("alert_id") != request.headers.get("x-tollgate-alert-id"):
        problems.append("X-Tollgate-Alert-Id differs from the body's data.alert_id")
    return problems


def signed_webhook(secret: str, then: Callable[[Received], tuple[int, str, bytes] | None]):
    """A `respond` for HTTPReceiver: 401 for a request that fails the checks, else whatever `then` says."""
    def respond(request: Received):
        request.problems = webhook_problems(request, secret)
        if request.problems:
            return 401, "text/plain", b"bad signature"
        return then(request)
    return respond


def ok(_: Received) -> tuple[int, str, bytes]:
    return 200, "text/plain", b"ok"


def slack_problems(request: Received) -> list[str]:
    """The checks Slack's incoming webhooks make, as Slack documents them (Block Kit reference):
    a JSON object with `text` and/or `blocks`; at most 50 blocks; a header's text is plain_text of at most
    150 characters; a section has a text (plain_text or mrkdwn, 1 to 3000 characters) and/or up to 10
    fields of at most 2000 characters; a context has 1 to 10 text (or image) elements."""
    problems = []
    if not request.headers.get("content-type", "").startswith("application/json"):
        problems.append(f"content type {request.headers.get('content-type')!r}")
    try:
        message = request.json
    except ValueError:
        return problems + ["not JSON"]
    if not isinstance(message, dict):
        return problems + ["not a JSON object"]
    unknown = set(message) - {"text", "blocks", "attachments", "thread_ts", "mrkdwn", "unfurl_links",
                              "unfurl_media", "username", "icon_emoji", "icon_url", "channel"}
    if unknown:
        problems.append(f"unknown fields {sorted(unknown)}")
    text = message.get("text")
    if not isinstance(text, str) or not text.strip():
        problems.append("no fallback text (Slack shows it in notifications)")
    blocks = message.get("blocks")
    if not isinstance(blocks, list) or not 1 <= len(blocks) <= 50:
        return problems + ["blocks must be a list of 1 to 50 blocks"]

    def text_object(value, where: str, limit: int, kinds=("plain_text", "mrkdwn")) -> None:
        if not isinstance(value, dict) or value.get("type") not in kinds:
            problems.append(f"{where}: not a text object of type {kinds}: {value!r}")
            return
        if set(value) - {"type", "text", "emoji", "verbatim"}:
            problems.append(f"{where}: unknown fields {sorted(set(value) - {'type', 'text', 'emoji', 'verbatim'})}")
        if "emoji" in value and value["type"] != "plain_text":
            problems.append(f"{where}: emoji is only for plain_text")
        body = value.get("text")
        if not isinstance(body, str) or not 1 <= len(body) <= limit:
            problems.append(f"{where}: text must be 1 to {limit} characters")

    for index, block in enumerate(blocks):
        where = f"blocks[{index}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "header":
            if set(block) - {"type", "text", "block_id"}:
                problems.append(f"{where}: unknown fields in a header")
            text_object(block.get("text"), where + ".text", 150, kinds=("plain_text",))
        elif kind == "section":
            if set(block) - {"type", "text", "fields", "block_id", "accessory"}:
                problems.append(f"{where}: unknown fields in a section")
            if "text" not in block and "fields" not in block:
                problems.append(f"{where}: a section needs text or fields")
            if "text" in block:
                text_object(block["text"], where + ".text", 3000)
            if "fields" in block:
                fields = block["fields"]
                if not isinstance(fields, list) or not 1 <= len(fields) <= 10:
                    problems.append(f"{where}.fields: 1 to 10 fields")
                else:
                    for number, item in enumerate(fields):
                        text_object(item, f"{where}.fields[{number}]", 2000)
        elif kind == "context":
            if set(block) - {"type", "elements", "block_id"}:
                problems.append(f"{where}: unknown fields in a context")
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                problems.append(f"{where}.elements: 1 to 10 elements")
            else:
                for number, item in enumerate(elements):
                    text_object(item, f"{where}.elements[{number}]", 3000)
        else:
            problems.append(f"{where}: unexpected block type {kind!r}")
    return problems


def slack_respond(request: Received) -> tuple[int, str, bytes]:
    request.problems = slack_problems(request)
    if request.problems:
        return 400, "text/html", b"invalid_payload"
    return 200, "text/html", b"ok"


def slack_alert_id(request: Received) -> str:
    """The alert id from a Slack message's context block (`Tollgate alert <id> · delivery to <channel>`)."""
    context = next(b for b in request.json["blocks"] if b["type"] == "context")
    match = re.match(r"Tollgate alert (\S+) · delivery to (\S+)$", context["elements"][0]["text"])
    assert match, context
    return match.group(1)


@dataclass
class Mail:
    arrived: float
    mail_from: str
    rcpt_tos: list[str]
    message: email.message.EmailMessage


class MailBox:
    """aiosmtpd handler: records every message."""

    def __init__(self):
        self.mails: list[Mail] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        arrived = time.monotonic()
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        with self.lock:
            self.mails.append(Mail(arrived, envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def snapshot(self) -> list[Mail]:
        with self.lock:
            return list(self.mails)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def receivers():
    """Creates HTTP receivers and SMTP servers on 127.0.0.1 and closes them all at the end."""
    opened: list[Callable[[], None]] = []

    class Factory:
        @staticmethod
        def http(respond, port: int = 0) -> HTTPReceiver:
            receiver = HTTPReceiver(respond, port=port)
            opened.append(receiver.close)
            return receiver

        @staticmethod
        def smtp() -> tuple[MailBox, int]:
            box = MailBox()
            port = free_port()
            controller = Controller(box, hostname="127.0.0.1", port=port, ready_timeout=10)
            controller.start()
            opened.append(controller.stop)
            return box, port

    yield Factory
    for close in reversed(opened):
        close()


# --------------------------------------------------------------------------------------------------
# Upstream, costs, budgets, configuration files


@pytest.fixture(scope="module")
def upstream():
    process, server = start_fake_provider(key=UPSTREAM_SECRET)
    yield server
    stop(process)


@dataclass(frozen=True)
class Pricing:
    call_nano_usd: int  # what one REQUEST costs
    limit_nano_usd: int  # the budget: one call is 30 %, two 60 %, three 90 %

    @property
    def limit_usd(self) -> str:
        return format(Decimal(self.limit_nano_usd) / Decimal(10**9), "f")

    def used_bp(self, calls: int) -> int:
        return calls * self.call_nano_usd * 10_000 // self.limit_nano_usd


@pytest.fixture(scope="module")
def pricing(upstream) -> Pricing:
    """The cost of REQUEST, from the fake provider's own answer priced independently of Tollgate."""
    direct = openai.OpenAI(base_url=f"{upstream.url}/v1", api_key=UPSTREAM_SECRET, max_retries=0)
    response = direct.chat.completions.create(**REQUEST)
    usage = response.usage
    prompt_details, completion_details = usage.prompt_tokens_details, usage.completion_tokens_details
    cached = (prompt_details.cached_tokens or 0) if prompt_details else 0
    reasoning = (completion_details.reasoning_tokens or 0) if completion_details else 0
    tokens = {"input": usage.prompt_tokens - cached, "cached_input_read": cached,
              "output": usage.completion_tokens - reasoning, "reasoning": reasoning}
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    cost = expected_nano_usd("openai", response.model, day, tokens)
    assert cost and cost > 0, (response.model, tokens)
    prices = Pricing(call_nano_usd=cost, limit_nano_usd=cost * 10 // 3)
    assert prices.used_bp(1) < 5_000 <= prices.used_bp(2) < 8_000 <= prices.used_bp(3) < 10_000, prices
    return prices


def write_budgets(path: Path, budget_id: str, prices: Pricing) -> Path:
    # Alert levels only: a block level would make the ingress refuse the calls whose worst-case cost
    # (max_tokens at the output price) could cross it, and the point here is to spend.
    path.write_text(f"""budgets:
  - id: {budget_id}
    scope: team:search
    limit_usd: "{prices.limit_usd}"
    period: lifetime
    levels: 50:alert,80:alert
""")
    return path


def write_alerts_file(path: Path, channels: dict[str, dict]) -> Path:
    """An alerts file in JSON (a YAML subset), with quick retries for the tests."""
    path.write_text(json.dumps({"channels": channels,
                                "retry": {"base_delay": "100ms", "max_delay": "1s", "max_attempts": 30}},
                               indent=2))
    return path


def webhook_channel(receiver: HTTPReceiver, timeout: str = "10s") -> dict:
    return {"type": "webhook", "url": receiver.url("/hook"), "secret": WEBHOOK_SECRET, "timeout": timeout}


def create_key(data_dir: Path) -> str:
    return json.loads(tg("keys", "create", "--data-dir", str(data_dir), "--team", "search", "--project", "alerts",
                         "--json"))["secret"]


def start_serve(processes, data_dir: Path, upstream, *extra: str) -> tuple[TollgateProcess, str]:
    env = clean_env(OPENAI_API_KEY=UPSTREAM_SECRET, ANTHROPIC_API_KEY=UPSTREAM_SECRET,
                    GEMINI_API_KEY=UPSTREAM_SECRET, TOLLGATE_OPENAI_BASE_URL=upstream.url,
                    TOLLGATE_ANTHROPIC_BASE_URL=upstream.url, TOLLGATE_GEMINI_BASE_URL=upstream.url,
                    TOLLGATE_ADMIN_KEY=ADMIN_KEY)
    serve = processes("serve", "--port", "0", "--data-dir", str(data_dir), *extra, env=env)
    port = int(serve.wait_for(r"tollgate\.port=(\d+).*tollgate is serving", timeout=60).group(1))
    serve.wait_for(r"alerts service caught up with the log")
    serve.wait_for(r"alert deliverer started")
    return serve, f"http://127.0.0.1:{port}"


def call(base_url: str, key: str) -> None:
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0)
    response = client.chat.completions.create(**REQUEST)
    assert response.choices[0].message.content.startswith("Echo:")


def threshold_alert_id(budget_id: str, period_start: str, level: int, budget_scope: str = "team:search") -> str:
    """`<rule>/<budget>|<scope>|<period start>|<level>` (AlertFold.swift)."""
    return f"{THRESHOLD_RULE}/{budget_id}|{budget_scope}|{period_start}|{level}"


def message_id(delivery_id: str, domain: str) -> str:
    """EmailFormat.swift: `<alert.<first 32 hex digits of SHA-256(delivery id)>@<from's domain>>`."""
    return f"<alert.{hashlib.sha256(delivery_id.encode()).hexdigest()[:32]}@{domain}>"


# The contract's schemas, to check the webhook's CloudEvent and the decisions this file writes itself.
SCHEMAS = {p.name: json.loads(p.read_text()) for p in (REPO_ROOT / "schemas").glob("*.schema.json")}
REGISTRY = Registry().with_resources(
    (doc["$id"], Resource.from_contents(doc, default_specification=DRAFT202012)) for doc in SCHEMAS.values())


def validate(event: dict, schema: str) -> None:
    Draft202012Validator(SCHEMAS[schema], registry=REGISTRY, format_checker=FormatChecker()).validate(event)


# --------------------------------------------------------------------------------------------------
# 1. End to end: the ingress pushes a team past 80 %; every channel gets the alert once, within 1 s.


def test_budget_crossing_80_percent_alerts_every_channel_once(upstream, pricing, processes, receivers, tmp_path):
    hook = receivers.http(signed_webhook(WEBHOOK_SECRET, ok))
    slack = receivers.http(slack_respond)
    mailbox, smtp_port = receivers.smtp()
    alerts_file = write_alerts_file(tmp_path / "alerts.json", {
        "hook": webhook_channel(hook),
        "slack": {"type": "slack", "url": slack.url("/services/T000/B000/XXXXXXXX")},
        "mail": {"type": "email", "smtp_url": f"smtp://127.0.0.1:{smtp_port}", "starttls": "optional",
                 "from": "Tollgate <tollgate@example.com>", "to": ["oncall@example.com"], "timeout": "10s"},
    })
    budgets = write_budgets(tmp_path / "budgets.yaml", "search-e2e", pricing)
    data_dir = tmp_path / "data"
    key = create_key(data_dir)
    serve, url = start_serve(processes, data_dir, upstream, "--alerts-file", str(alerts_file),
                             "--budgets", str(budgets))

    def arrived(level: int) -> dict[str, float] | None:
        """Arrival time per channel of the alert for `level` (None until all three arrived)."""
        times = {}
        for request in hook.snapshot():
            if request.status == 200 and request.json["data"].get("level_percent") == level:
                times.setdefault("webhook", request.arrived)
        for request in slack.snapshot():
            if request.status == 200 and slack_alert_id(request).endswith(f"|{level}"):
                times.setdefault("slack", request.arrived)
        for mail in mailbox.snapshot():
            if mail.message["X-Tollgate-Alert-Id"].endswith(f"|{level}"):
                times.setdefault("email", mail.arrived)
        return times if len(times) == 3 else None

    # 30 %, then 60 %: the 50 % alert, delivered everywhere before the decisive call.
    call(url, key)
    call(url, key)
    wait_until(lambda: arrived(50), 10, "the 50 % alert on every channel")
    wait_until(lambda: all_delivered(data_dir, 3), 10, "the 50 % deliveries to be recorded as delivered")
    assert arrived(80) is None

    # 90 %: the decisive call crosses 80 %.
    call(url, key)
    crossed = time.monotonic()
    times = wait_until(lambda: arrived(80), 10, "the 80 % alert on every channel", interval=0.002)
    delays = {channel: at - crossed for channel, at in times.items()}
    report = (f"{datetime.now(timezone.utc).isoformat(timespec='seconds')} alert delay after the crossing call "
              f"(embedded log): " + ", ".join(f"{c} {delays[c] * 1000:.0f} ms" for c in ("webhook", "slack", "email")))
    print("\n" + report)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "alert_delay.txt").write_text(report + "\n")

    # Settle: every delivery recorded as delivered; then count what each receiver took.
    alerts = wait_until(lambda: all_delivered(data_dir, 6), 10, "every delivery to be delivered")
    by_level = {}
    for alert in alerts:
        by_level[alert["alert_id"].rsplit("|", 1)[1]] = alert
        assert sorted(d["channel"] for d in alert["deliveries"]) == ["hook", "mail", "slack"]
        assert all(d["attempts"] == 1 for d in alert["deliveries"]), alert
    assert sorted(by_level) == ["50", "80"], [a["alert_id"] for a in alerts]

    # The webhook: two valid, signed requests, one per alert, each acknowledged.
    requests = hook.snapshot()
    assert [r.problems for r in requests] == [[], []], [r.problems for r in requests]
    assert [r.status for r in requests] == [200, 200]
    crossing = next(r for r in requests if r.json["data"]["level_percent"] == 80)
    event = crossing.json
    period_start = event["data"]["period_start"]
    alert_id = threshold_alert_id("search-e2e", period_start, 80)
    assert event["data"]["alert_id"] == alert_id == by_level["80"]["alert_id"]
    assert crossing.headers["x-tollgate-delivery"] == f"{alert_id}#hook" == event["tollgatedelivery"]
    assert crossing.headers["x-tollgate-alert-id"] == alert_id
    assert crossing.headers["x-tollgate-attempt"] == "1" and event["tollgateattempt"] == 1
    assert event["tollgatechannel"] == "hook" and event["type"] == "tollgate.alert.v1"
    assert event["id"] == "alert:" + alert_id and event["subject"] == "team:search"
    assert event["data"]["kind"] == "budget_threshold" and event["data"]["scope"] == {"kind": "team", "id": "search"}
    observed = event["data"]["observed"]
    assert observed["budget_id"] == "search-e2e"
    assert observed["spent_nano_usd"] == 3 * pricing.call_nano_usd
    assert observed["limit_nano_usd"] == pricing.limit_nano_usd
    assert observed["used_percent_bp"] == pricing.used_bp(3)
    validate({k: v for k, v in event.items() if not k.startswith("tollgate")}, "alert.v1.schema.json")

    # Slack: two messages in the documented format, one per alert.
    messages = slack.snapshot()
    assert [m.problems for m in messages] == [[], []] and [m.status for m in messages] == [200, 200]
    assert sorted(slack_alert_id(m) for m in messages) == sorted(by_level[level]["alert_id"] for level in by_level)
    slack_80 = next(m.json for m in messages if slack_alert_id(m) == alert_id)
    assert slack_80["blocks"][0]["type"] == "header" and "80%" in slack_80["blocks"][0]["text"]["text"]
    assert "team:search" in slack_80["text"]

    # E-mail: two messages, one per alert, with the documented Message-ID.
    mails = mailbox.snapshot()
    assert len(mails) == 2
    mail = next(m for m in mails if m.message["X-Tollgate-Alert-Id"] == alert_id)
    assert mail.mail_from == "tollgate@example.com" and mail.rcpt_tos == ["oncall@example.com"]
    assert mail.message["X-Tollgate-Delivery"] == f"{alert_id}#mail"
    assert mail.message["Message-ID"] == message_id(f"{alert_id}#mail", "example.com")
    assert mail.message["Auto-Submitted"] == "auto-generated"
    assert mail.message["Subject"].startswith("[Tollgate ") and "80%" in mail.message["Subject"]
    text = mail.message.get_content()
    assert f"Delivery: {alert_id}#mail" in text and f"Alert id: {alert_id}" in text
    assert len({m.message["Message-ID"] for m in mails}) == 2

    # The alerts topic has each alert once.
    on_topic = [value["data"]["alert_id"] for _, value in log_messages(data_dir, "tollgate.alerts")]
    assert sorted(on_topic) == sorted(a["alert_id"] for a in alerts)

    slow = {c: round(d, 3) for c, d in delays.items() if d >= DELAY_BOUND_S}
    assert not slow, f"alert delivery slower than {DELAY_BOUND_S} s on the embedded log: {report}"


# --------------------------------------------------------------------------------------------------
# 2. A receiver that is down, then answers 503, then comes back: every alert once.


def test_receiver_down_then_back_gets_every_alert_once(upstream, pricing, processes, receivers, tmp_path):
    # Down: the port is bound but nothing listens, so every connection is refused.
    placeholder = socket.socket()
    placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    placeholder.bind(("127.0.0.1", 0))
    port = placeholder.getsockname()[1]
    try:
        # A refused connection fails an attempt only when the channel's timeout is over (the HTTP client
        # keeps trying to connect until then), so the timeout is short here to keep the test quick.
        alerts_file = write_alerts_file(tmp_path / "alerts.json", {
            "hook": {"type": "webhook", "url": f"http://127.0.0.1:{port}/hook", "secret": WEBHOOK_SECRET,
                     "timeout": "2s"},
        })
        budgets = write_budgets(tmp_path / "budgets.yaml", "search-down", pricing)
        data_dir = tmp_path / "data"
        key = create_key(data_dir)
        serve, url = start_serve(processes, data_dir, upstream, "--alerts-file", str(alerts_file),
                                 "--budgets", str(budgets))
        for _ in range(3):  # 30 %, 60 %, 90 %: the 50 % and 80 % alerts
            call(url, key)

        def refused_twice():
            alerts = alert_deliveries(data_dir)
            deliveries = [d for a in alerts for d in a["deliveries"]]
            return len(deliveries) == 2 and all(d["state"] == "pending" and d["attempts"] >= 2
                                                for d in deliveries) and alerts
        down = wait_until(refused_twice, 15, "two failed attempts of each delivery while the receiver is down")
        failed_while_down = {a["alert_id"]: a["deliveries"][0]["attempts"] for a in down}
        for alert in down:
            error = alert["deliveries"][0]["last_error"]
            assert "refused" in error.lower(), error
    finally:
        placeholder.close()

    # Back, but overloaded: each delivery gets 503 twice, then 200.
    refusals: dict[str, int] = {}

    def flaky(request: Received):
        delivery = request.headers["x-tollgate-delivery"]
        refusals[delivery] = refusals.get(delivery, 0) + 1
        if refusals[delivery] <= 2:
            return 503, "text/plain", b"try again"
        return ok(request)

    hook = receivers.http(signed_webhook(WEBHOOK_SECRET, flaky), port=port)
    alerts = wait_until(lambda: all_delivered(data_dir, 2), 30, "both alerts to be delivered after the receiver is back")

    requests = hook.snapshot()
    assert all(not r.problems for r in requests), [r.problems for r in requests]
    acknowledged: dict[str, list[Received]] = {}
    for request in requests:
        if request.status == 200:
            acknowledged.setdefault(request.headers["x-tollgate-delivery"], []).append(request)
    expected_ids = {f"{a['alert_id']}#hook" for a in alerts}
    assert {d: len(r) for d, r in acknowledged.items()} == {d: 1 for d in expected_ids}
    assert {a["alert_id"].rsplit("|", 1)[1] for a in alerts} == {"50", "80"}
    for alert in alerts:
        (delivery,) = alert["deliveries"]
        delivery_id = f"{alert['alert_id']}#hook"
        seen = [r for r in requests if r.headers["x-tollgate-delivery"] == delivery_id]
        assert [r.status for r in seen] == [503, 503, 200], delivery_id
        # The attempts refused while the receiver was down count; the three it saw follow them, and the
        # acknowledged one is the last.
        attempts = [int(r.headers["x-tollgate-attempt"]) for r in seen]
        assert attempts == list(range(attempts[0], attempts[0] + 3)), attempts
        assert attempts[0] > failed_while_down[alert["alert_id"]] >= 2, (attempts, failed_while_down)
        assert delivery["state"] == "delivered" and delivery["attempts"] == attempts[-1] > 1, (delivery, attempts)
        assert all(r.json["tollgatedelivery"] == delivery_id for r in seen)


# --------------------------------------------------------------------------------------------------
# 3. The alerts service killed mid-delivery: nothing twice, nothing lost.


def decision_event(budget_id: str, limit_nano_usd: int, spent_nano_usd: int, period_start: datetime,
                   decided_at: datetime) -> dict:
    """A `tollgate.budget.decision.v1` event as the budget service writes it (checked against the schema)."""
    def stamp(moment: datetime) -> str:
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    used = spent_nano_usd * 10_000 // limit_nano_usd
    event = {
        "specversion": "1.0", "type": "tollgate.budget.decision.v1", "source": "tollgate/budget/test",
        "id": f"decision:{budget_id}:{uuid.uuid4()}", "time": stamp(decided_at), "subject": budget_id,
        "datacontenttype": "application/json",
        "data": {
            "budget_id": budget_id, "scope": {"kind": "team", "id": "search"},
            "period": {"kind": "lifetime", "start": stamp(period_start), "time_zone": "UTC"},
            "limit_nano_usd": limit_nano_usd, "spent_nano_usd": spent_nano_usd,
            "remaining_nano_usd": limit_nano_usd - spent_nano_usd, "used_percent_bp": used,
            "state": "ok", "action": "none", "downgrade": {}, "on_no_downgrade": "pass",
            "decided_at": stamp(decided_at),
            "watermark": {"as_of": stamp(decided_at), "usage_offsets": {}},
        },
    }
    validate(event, "budget.decision.v1.schema.json")
    return event


def test_alerts_service_killed_mid_delivery(processes, receivers, tmp_path):
    """`serve` always runs an alerts service of its own in the consumer group `tollgate-alerts` (with the
    static member id `alerts`), so a second, standalone `tollgate alerts run` beside it would share that
    member and its committed offsets. Here the standalone service is the only one: it runs on its own log,
    and the budget decisions it folds are written to that log as the budget service writes them."""
    held = threading.Event()
    release = threading.Event()
    mode = {"hold": True}

    def hold_then_ack(request: Received):
        if mode["hold"]:
            held.set()
            release.wait(30)
            return None  # the client is gone (killed): nothing to answer, nothing acknowledged
        return ok(request)

    hook = receivers.http(signed_webhook(WEBHOOK_SECRET, hold_then_ack))
    alerts_file = write_alerts_file(tmp_path / "alerts.json", {"hook": webhook_channel(hook, timeout="30s")})
    data_dir = tmp_path / "data"
    db = tmp_path / "standalone-alerts.sqlite"
    args = ["alerts", "run", "--data-dir", str(data_dir), "--alerts-file", str(alerts_file), "--alerts-db", str(db),
            "--port", "0"]
    first = processes(*args, env=clean_env())
    first.wait_for(r"alerts service caught up with the log")
    first.wait_for(r"alert deliverer started")

    budget_id = "search-kill"
    limit = 1_000_000_000
    tg("budgets", "set", budget_id, "--data-dir", str(data_dir), "--scope", "team:search", "--limit-usd", "1",
       "--period", "lifetime", "--levels", "50:alert,80:alert", "--json")
    now = datetime.now(timezone.utc)
    # One decision at 85 %: crosses 50 % and 80 % at once, so two alerts, delivered concurrently.
    event = decision_event(budget_id, limit, 850_000_000, period_start=now - timedelta(minutes=1), decided_at=now)
    tg("log", "produce", "--data-dir", str(data_dir), "--topic", "tollgate.budget-decisions", "--key", budget_id,
       "--header", "content-type=application/cloudevents+json", "--header", "ce_type=tollgate.budget.decision.v1",
       json.dumps(event, separators=(",", ":")))
    period_start = event["data"]["period"]["start"]
    expected = {threshold_alert_id(budget_id, period_start, level) for level in (50, 80)}

    def both_in_flight():
        deliveries = [d for a in alert_deliveries(data_dir, db) for d in a["deliveries"]]
        held_ids = {r.headers.get("x-tollgate-delivery") for r in hook.snapshot()}
        return (len(deliveries) == 2 and all(d["state"] == "sending" for d in deliveries)
                and held_ids == {f"{a}#hook" for a in expected})
    wait_until(both_in_flight, 15, "both deliveries to be in flight, held open by the receiver")
    assert held.is_set()

    first.kill()
    stuck = alert_deliveries(data_dir, db)
    assert {a["alert_id"] for a in stuck} == expected
    assert all(d["state"] == "sending" and d["attempts"] == 1 for a in stuck for d in a["deliveries"]), stuck
    mode["hold"] = False
    release.set()  # the held requests end without an answer: they were never acknowledged

    second = processes(*args, env=clean_env())
    second.wait_for(r"interrupted by the last stop are sent again")
    alerts = wait_until(lambda: all_delivered(data_dir, 2, db), 15, "both alerts delivered after the restart")

    requests = hook.snapshot()
    assert all(not r.problems for r in requests), [r.problems for r in requests]
    acknowledged: dict[str, int] = {}
    for request in requests:
        if request.status is not None and 200 <= request.status < 300:
            delivery = request.headers["x-tollgate-delivery"]
            acknowledged[delivery] = acknowledged.get(delivery, 0) + 1
    assert acknowledged == {f"{a}#hook": 1 for a in expected}, acknowledged
    for delivery_id in acknowledged:
        attempts = [(r.headers["x-tollgate-attempt"], r.status) for r in requests
                    if r.headers["x-tollgate-delivery"] == delivery_id]
        assert attempts == [("1", None), ("2", 200)], (delivery_id, attempts)
    assert {a["alert_id"] for a in alerts} == expected
    assert all(d["attempts"] == 2 for a in alerts for d in a["deliveries"]), alerts
    assert re.search(r"tollgate\.deliveries=2\b", second.wait_for(r"interrupted by the last stop").string)
    assert "alert raised" not in "\n".join(second.lines), "the restarted service raised an alert again"

    # The alerts topic and the deliveries agree: each alert published once, none missing.
    on_topic = [(key, value["data"]["alert_id"]) for key, value in log_messages(data_dir, "tollgate.alerts")]
    assert sorted(alert for _, alert in on_topic) == sorted(expected), on_topic
    assert all(key == alert for key, alert in on_topic), on_topic
