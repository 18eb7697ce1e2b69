"""The query API (`/api/`) against its OpenAPI document, through the real binary.

Run from the repository root (after `swift build --product tollgate`):

    .venv/bin/python -m pytest Tests/python/test_query_api.py

1. `schemas/query-api.openapi.json` is a valid OpenAPI 3.1 document whose schemas are strict.
2. `tollgate projections seed` fills a database with synthetic usage and writes the same events as JSON
   lines; `tollgate query` serves it. Every answer (200s and errors) is validated against the response
   schema the document gives for its route and status, and usage sums are checked against sums computed
   here from the events, to the nano-dollar and token.

Part 2 is skipped while the binary has no `projections seed` or `query` command.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from conftest import REPO_ROOT, stop, tollgate_binary

DOCUMENT_PATH = REPO_ROOT / "schemas" / "query-api.openapi.json"
DOCUMENT_URI = "https://tollgate.dev/schemas/query-api.openapi.json"
ADMIN_KEY = "tg-admin-query-api-test"
TOKEN_CLASSES = [
    "input", "cached_input_read", "cache_write_5m", "cache_write_1h",
    "output", "reasoning", "audio_input", "audio_output",
]
SEED_REQUESTS = 3000
SEED_DAYS = 10


def load_document():
    with open(DOCUMENT_PATH, encoding="utf-8") as f:
        return json.load(f)


DOCUMENT = load_document()
REGISTRY = Registry().with_resource(
    DOCUMENT_URI, Resource.from_contents(DOCUMENT, default_specification=DRAFT202012)
)


def pointer_escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def response_schema_pointer(path: str, status: int) -> str:
    """The JSON pointer of the response schema the document gives for GET `path` and `status`."""
    responses = DOCUMENT["paths"][path]["get"]["responses"]
    assert str(status) in responses, f"the document has no {status} response for {path}"
    response = responses[str(status)]
    pointer = f"/paths/{pointer_escape(path)}/get/responses/{status}"
    if "$ref" in response:
        ref = response["$ref"]
        assert ref.startswith("#/"), ref
        pointer = ref[1:]
        response = DOCUMENT
        for token in ref[2:].split("/"):
            response = response[token.replace("~1", "/").replace("~0", "~")]
    assert "application/json" in response["content"], f"{path} {status} is not JSON"
    return pointer + "/content/application~1json/schema"


def validator(pointer: str) -> Draft202012Validator:
    return Draft202012Validator(
        {"$ref": DOCUMENT_URI + "#" + pointer}, registry=REGISTRY, format_checker=FormatChecker()
    )


def component(name: str) -> Draft202012Validator:
    return validator(f"/components/schemas/{name}")


# MARK: The document


def test_document_is_valid_openapi_3_1():
    from openapi_spec_validator import validate

    assert DOCUMENT["openapi"].startswith("3.1.")
    validate(DOCUMENT)


def test_every_object_schema_is_strict():
    """Objects list their properties, forbid others and say which are required (maps excepted)."""

    def walk(node, where):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                assert node.get("additionalProperties") is False, f"{where}: additionalProperties must be false"
                assert "required" in node, f"{where}: no required list"
                for name in node["required"]:
                    assert name in node["properties"], f"{where}: required {name} is not a property"
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}/{index}")

    walk(DOCUMENT["components"]["schemas"], "#/components/schemas")
    schemas = DOCUMENT["components"]["schemas"]
    assert sorted(schemas["TokenUsage"]["required"]) == sorted(f"{c}_tokens" for c in TOKEN_CLASSES)
    assert sorted(schemas["CostBreakdown"]["required"]) == sorted(TOKEN_CLASSES + ["total"])


def test_every_route_documents_auth_and_parameter_errors():
    assert set(DOCUMENT["paths"]) == {
        "/api/usage", "/api/requests", "/api/requests/{id}", "/api/budgets", "/api/alerts", "/api/keys",
        "/api/status",
    }
    schemes = DOCUMENT["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["apiKey"]["in"] == "header" and schemes["apiKey"]["name"] == "x-api-key"
    for path in DOCUMENT["paths"]:
        for status in (200, 400, 401, 500):
            response_schema_pointer(path, status)
    response_schema_pointer("/api/requests/{id}", 404)


def test_error_schema_requires_the_parameter_of_invalid_parameter():
    error = component("Error")
    assert error.is_valid({"error": {"type": "invalid_parameter", "parameter": "limit", "message": "too big"}})
    assert not error.is_valid({"error": {"type": "invalid_parameter", "message": "too big"}})
    assert not error.is_valid({"error": {"type": "authentication_error", "parameter": "x", "message": "no"}})
    assert not error.is_valid({"error": {"type": "authentication_error", "message": "no", "extra": 1}})


# MARK: The binary


def has_subcommand(*words: str, needle: str) -> bool:
    try:
        result = subprocess.run(
            [str(tollgate_binary()), *words, "--help"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and needle in result.stdout + result.stderr


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))


def format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Answer:
    def __init__(self, status: int, headers, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)


class QueryServer:
    def __init__(self, url: str, events: list[dict]):
        self.url = url
        self.events = events

    def get(self, path: str, params=None, key: str | None = ADMIN_KEY, headers=None) -> Answer:
        query = ""
        if params:
            query = "?" + (params if isinstance(params, str) else urllib.parse.urlencode(params))
        request = urllib.request.Request(self.url + path + query, method="GET")
        if key is not None:
            request.add_header("Authorization", f"Bearer {key}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Answer(response.status, response.headers, response.read())
        except urllib.error.HTTPError as error:
            return Answer(error.code, error.headers, error.read())

    def checked(self, route: str, path: str, params=None, status: int = 200, **kwargs):
        """GETs, expects `status`, checks the headers and validates the body against the document."""
        answer = self.get(path, params, **kwargs)
        assert answer.status == status, f"{path}?{params}: {answer.status} {answer.body[:500]!r}"
        assert answer.headers.get("Content-Type", "").startswith("application/json")
        assert answer.headers.get("Cache-Control") == "no-store"
        body = answer.json()
        errors = sorted(validator(response_schema_pointer(route, status)).iter_errors(body), key=str)
        assert not errors, f"{path}?{params} ({status}) does not match the document:\n" + "\n".join(
            f"{list(e.absolute_path)}: {e.message}" for e in errors[:10]
        )
        return body


def usage_events(lines_path: Path) -> list[dict]:
    events = []
    with open(lines_path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            event = json.loads(line)
            if "event" in event and "data" not in event:
                event = event["event"]
            if event.get("type") == "tollgate.usage.v1":
                events.append(event)
    return events


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not has_subcommand("projections", "seed", needle="--events-out") or not has_subcommand(
        "query", needle="--projections"
    ):
        pytest.skip("the binary has no `tollgate projections seed` / `tollgate query` yet (build the lead's commands)")
    work = tmp_path_factory.mktemp("query-api")
    database = work / "projections.sqlite"
    events_path = work / "events.jsonl"
    binary = str(tollgate_binary())
    env = {**os.environ, "TOLLGATE_ADMIN_KEY": ADMIN_KEY}
    seeded = subprocess.run(
        [binary, "projections", "seed", "--db", str(database), "--requests", str(SEED_REQUESTS),
         "--days", str(SEED_DAYS), "--seed", "7", "--events-out", str(events_path)],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert seeded.returncode == 0, f"seed failed:\n{seeded.stdout}\n{seeded.stderr}"
    events = usage_events(events_path)
    assert len(events) == SEED_REQUESTS, f"{events_path} has {len(events)} usage events"

    port = free_port()
    command = [binary, "query", "--projections", str(database), "--port", str(port)]
    if has_subcommand("query", needle="--data-dir"):
        command += ["--data-dir", str(work / "data")]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env
    )
    log: list[str] = []

    def drain():
        assert process.stderr is not None
        for line in process.stderr:
            log.append(line.rstrip("\n"))

    threading.Thread(target=drain, name="query-stderr", daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            pytest.fail(f"tollgate query exited with {process.returncode}:\n" + "\n".join(log))
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
                if response.status == 200:
                    break
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            stop(process)
            pytest.fail("tollgate query did not answer /healthz:\n" + "\n".join(log))
        time.sleep(0.2)
    yield QueryServer(url, events)
    stop(process)


def event_ms(event: dict) -> int:
    moment = parse_time(event["data"]["response"]["timings"]["received_at"])
    return round(moment.timestamp() * 1000)


def whole_hour_range(events: list[dict]) -> tuple[datetime, datetime]:
    """A range of whole hours holding every event, so the API's widening to hours changes nothing."""
    first = min(event_ms(e) for e in events)
    last = max(event_ms(e) for e in events)
    hour = 3_600_000
    start = first // hour * hour
    end = (last // hour + 1) * hour
    return (datetime.fromtimestamp(start / 1000, timezone.utc), datetime.fromtimestamp(end / 1000, timezone.utc))


def empty_sums():
    return {"requests": 0, "tokens": {f"{c}_tokens": 0 for c in TOKEN_CLASSES},
            "cost": {c: 0 for c in TOKEN_CLASSES + ["total"]}}


def add(sums, event):
    data = event["data"]
    sums["requests"] += 1
    for name in sums["tokens"]:
        sums["tokens"][name] += data["response"]["usage"][name]
    for name in sums["cost"]:
        sums["cost"][name] += data["cost_nano_usd"][name]


def figures_sums(figures):
    return {"requests": figures["requests"], "tokens": figures["tokens"], "cost": figures["cost_nano_usd"]}


def test_usage_by_team_and_model_equals_the_events(server):
    start, end = whole_hour_range(server.events)
    body = server.checked("/api/usage", "/api/usage",
                          {"group_by": "team,model", "from": format_time(start), "to": format_time(end)})
    expected = defaultdict(empty_sums)
    total = empty_sums()
    for event in server.events:
        response = event["data"]["response"]
        add(expected[(response["team"], response["served_model"])], event)
        add(total, event)
    assert parse_time(body["from"]) == start and parse_time(body["to"]) == end
    assert body["group_by"] == ["team", "model"]
    actual = {(row["group"]["team"], row["group"]["model"]): figures_sums(row["figures"]) for row in body["rows"]}
    assert len(actual) == len(body["rows"]), "a group appears twice"
    assert set(actual) == set(expected)
    for group, sums in expected.items():
        assert actual[group] == sums, group
    assert figures_sums(body["totals"]) == total
    assert total["cost"]["total"] > 0


def test_usage_by_day_equals_the_events(server):
    start, end = whole_hour_range(server.events)
    body = server.checked("/api/usage", "/api/usage",
                          {"granularity": "day", "group_by": "provider", "from": format_time(start),
                           "to": format_time(end)})
    expected = defaultdict(empty_sums)
    for event in server.events:
        day = event_ms(event) // 86_400_000 * 86_400_000
        add(expected[(day, event["data"]["response"]["provider"])], event)
    actual = {}
    for row in body["rows"]:
        day = round(parse_time(row["bucket_start"]).timestamp() * 1000)
        actual[(day, row["group"]["provider"])] = figures_sums(row["figures"])
    assert actual == dict(expected)
    starts = [row["bucket_start"] for row in body["rows"]]
    assert starts == sorted(starts)


def test_usage_filters_equal_the_events(server):
    start, end = whole_hour_range(server.events)
    sample = server.events[len(server.events) // 2]["data"]["response"]
    filters = {"team": sample["team"], "provider": sample["provider"]}
    body = server.checked("/api/usage", "/api/usage",
                          {**filters, "from": format_time(start), "to": format_time(end)})
    expected = empty_sums()
    for event in server.events:
        response = event["data"]["response"]
        if response["team"] == filters["team"] and response["provider"] == filters["provider"]:
            add(expected, event)
    assert figures_sums(body["totals"]) == expected
    assert body["filter"] == filters


def test_requests_top_by_cost_and_by_id(server):
    start, end = whole_hour_range(server.events)
    body = server.checked("/api/requests", "/api/requests",
                          {"order": "cost", "limit": "10", "from": format_time(start), "to": format_time(end)})
    by_id = {e["data"]["response"]["request_id"]: e for e in server.events}
    expected_costs = sorted((e["data"]["cost_nano_usd"]["total"] for e in server.events), reverse=True)[:10]
    assert [r["cost_nano_usd"]["total"] for r in body["requests"]] == expected_costs
    for record in body["requests"]:
        event = by_id[record["request_id"]]["data"]
        assert record["cost_nano_usd"] == event["cost_nano_usd"]
        assert record["tokens"] == event["response"]["usage"]
    assert body["order"] == "cost" and body["limit"] == 10

    for event in server.events[:: len(server.events) // 5]:
        data = event["data"]
        request_id = data["response"]["request_id"]
        record = server.checked("/api/requests/{id}", "/api/requests/" + urllib.parse.quote(request_id, safe=""))
        assert record["request_id"] == request_id
        assert record["team"] == data["response"]["team"]
        assert record["served_model"] == data["response"]["served_model"]
        assert record["tokens"] == data["response"]["usage"]
        assert record["cost_nano_usd"] == data["cost_nano_usd"]
        assert parse_time(record["received_at"]) == parse_time(data["response"]["timings"]["received_at"])

    missing = server.checked("/api/requests/{id}", "/api/requests/req_does_not_exist", status=404)
    assert missing["error"]["type"] == "not_found"


@pytest.mark.parametrize("route", ["/api/budgets", "/api/alerts", "/api/keys", "/api/status"])
def test_listing_routes_match_the_document(server, route):
    body = server.checked(route, route)
    if route == "/api/status":
        assert body["requests"] == len(server.events)
        assert "secret" not in json.dumps(body)
    if route == "/api/keys":
        assert "sha256" not in json.dumps(body)


def test_alerts_with_parameters(server):
    body = server.checked("/api/alerts", "/api/alerts", {"since": "30d", "limit": "1000"})
    assert body["limit"] == 1000


BAD_PARAMETERS = [
    ("/api/usage", "colour=blue", "colour"),
    ("/api/usage", "group_by=team,colour", "group_by"),
    ("/api/usage", "granularity=fortnight", "granularity"),
    ("/api/usage", "since=yesterday", "since"),
    ("/api/usage", "from=2026-11-05&to=2026-11-01", "from"),
    ("/api/usage", "group_by=customer,tag", "group_by"),
    ("/api/usage", "team=a&team=b", "team"),
    ("/api/usage", "tag=feature", "tag"),
    ("/api/requests", "limit=0", "limit"),
    ("/api/requests", "limit=1001", "limit"),
    ("/api/requests", "order=price", "order"),
    ("/api/alerts", "limit=1001", "limit"),
    ("/api/alerts", "since=forever", "since"),
    ("/api/budgets", "verbose=1", "verbose"),
    ("/api/keys", "team=x", "team"),
    ("/api/status", "x=1", "x"),
]


@pytest.mark.parametrize("route,query,parameter", BAD_PARAMETERS)
def test_bad_parameters_are_400_naming_the_parameter(server, route, query, parameter):
    body = server.checked(route, route, query, status=400)
    assert body["error"]["type"] == "invalid_parameter"
    assert body["error"]["parameter"] == parameter


SAMPLE_VALUES = {
    "from": "7d", "to": "1h", "since": "30d", "group_by": "team,model", "granularity": "day", "order": "duration",
    "limit": "5", "key": "key_x", "team": "search", "project": "p", "customer": "acme", "tag": "feature=search",
    "provider": "openai", "model": "gpt-4o", "requested_model": "auto",
}


@pytest.mark.parametrize("route", ["/api/usage", "/api/requests", "/api/alerts"])
def test_every_documented_parameter_is_accepted(server, route):
    """The document and the server agree on the parameters: each documented one alone is a 200."""
    for parameter in DOCUMENT["paths"][route]["get"].get("parameters", []):
        if "$ref" in parameter:
            parameter = DOCUMENT["components"]["parameters"][parameter["$ref"].split("/")[-1]]
        if parameter["in"] != "query":
            continue
        name = parameter["name"]
        server.checked(route, route, {name: SAMPLE_VALUES[name]})


@pytest.mark.parametrize("route", ["/api/usage", "/api/requests", "/api/requests/x", "/api/budgets",
                                   "/api/alerts", "/api/keys", "/api/status"])
def test_every_route_needs_a_key(server, route):
    documented = "/api/requests/{id}" if route == "/api/requests/x" else route
    for key in (None, "wrong-key"):
        answer = server.get(route, key=key)
        assert answer.status == 401
        assert answer.headers.get("WWW-Authenticate") == "Bearer"
        body = server.checked(documented, route, status=401, key=key)
        assert body["error"]["type"] == "authentication_error"
    ok = server.get(route, key=None, headers={"x-api-key": ADMIN_KEY})
    assert ok.status == (404 if route == "/api/requests/x" else 200)
