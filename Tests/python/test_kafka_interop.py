"""Interop: a Kafka client Tollgate did not write reads Tollgate's events and checks them against schemas/.

The broker is `tollgate dev-broker` (librdkafka's mock cluster in its own process, found through
`--address-file`). The foreign client is `confluent-kafka`, whose wheel bundles its own librdkafka, so
nothing of Tollgate's Kafka code is on the reading side. Checked for every event read:

- the value is a CloudEvents JSON envelope valid against the JSON Schema of its `type` (schemas/, with
  `common.schema.json` resolved through `referencing`), and the topic is the one the catalog
  (schemas/topics.json) lists for that type;
- headers: `content-type: application/cloudevents+json` (the CloudEvents Kafka binding, structured mode)
  and `ce_type` equal to the envelope's `type`;
- key: the team id (`data.team`, which is also the envelope's `subject`), as topics.json documents, and the
  partition is `murmur2(key) & 0x7fffffff % partitions`, as Kafka's Java client would pick.

`test_openai_call_events_reach_a_foreign_consumer` makes one call through the official openai SDK to
`tollgate serve --brokers <dev-broker>` (fake provider upstream, a virtual key made with the admin API) and
reads its request.v1 and response.v1 events. `test_foreign_producer_round_trip` exercises the same reader
and validator on the examples the Swift build emits (`tollgate events examples --json`), produced by
confluent-kafka itself: it needs no `serve`.

Run from the repository root (binary from TOLLGATE_BIN, else .build/debug/tollgate):

    .venv/bin/pytest -q Tests/python/test_kafka_interop.py
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import openai
import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from conftest import start_fake_provider, stop, tollgate_binary

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"
PREFIX = "tollgate."
CLOUDEVENTS_JSON = "application/cloudevents+json"
UPSTREAM_SECRET = "sk-upstream-" + uuid.uuid4().hex
ADMIN_KEY = "admin-" + uuid.uuid4().hex


# --------------------------------------------------------------------------------------------------
# Contract: schemas and topic catalog


def _load(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


SCHEMA_DOCS = {p.name: _load(p) for p in sorted(SCHEMAS.glob("*.schema.json"))}
REGISTRY = Registry().with_resources(
    (doc["$id"], Resource.from_contents(doc, default_specification=DRAFT202012)) for doc in SCHEMA_DOCS.values()
)
CATALOG = _load(SCHEMAS / "topics.json")
TOPIC_OF_TYPE = {event_type: PREFIX + topic["name"] for topic in CATALOG["topics"] for event_type in topic["event_types"]}
PARTITIONS = {PREFIX + topic["name"]: topic["partitions"] for topic in CATALOG["topics"]}


def validator_for(event_type: str) -> Draft202012Validator:
    """The validator of `tollgate.response.v1` is response.v1.schema.json's."""
    assert event_type.startswith("tollgate."), event_type
    name = event_type[len("tollgate."):] + ".schema.json"
    assert name in SCHEMA_DOCS, f"no schema for {event_type}"
    return Draft202012Validator(SCHEMA_DOCS[name], registry=REGISTRY, format_checker=FormatChecker())


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as an unsigned 32-bit value."""
    m, r = 0x5BD1E995, 24
    h = (0x9747B28C ^ len(data)) & 0xFFFFFFFF
    whole = len(data) // 4
    for i in range(whole):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = data[4 * whole:]
    if len(tail) == 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if len(tail) >= 1:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def kafka_partition(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def test_murmur2_matches_kafkas_test_vectors():
    """The reference the partition checks rely on (Kafka's UtilsTest.testMurmur2), as signed ints."""
    vectors = {"21": -973932308, "foobar": -790332482, "a-little-bit-long-string": -985981536,
               "a-little-bit-longer-string": -1486304829,
               "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971, "abc": 479470107}
    for text, expected in vectors.items():
        assert murmur2(text.encode()) == expected & 0xFFFFFFFF, text


def check_message(message) -> dict:
    """Validates one Kafka message against the contract; returns the decoded envelope."""
    assert message.error() is None, message.error()
    event = json.loads(message.value())
    event_type = event.get("type")
    errors = sorted(validator_for(event_type).iter_errors(event), key=lambda e: list(e.absolute_path))
    assert not errors, f"{event_type} at {message.topic()}[{message.partition()}]@{message.offset()}: " + "; ".join(
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors)
    assert message.topic() == TOPIC_OF_TYPE[event_type], (message.topic(), event_type)

    headers: dict[str, list[bytes]] = {}
    for name, value in message.headers() or []:
        headers.setdefault(name, []).append(value)
    assert headers.get("content-type") == [CLOUDEVENTS_JSON.encode()], headers
    assert headers.get("ce_type") == [event_type.encode()], headers

    key = message.key()
    # The key is the team id: data.team on traffic events, data.response.team on usage events.
    team = event["data"]["team"] if "team" in event["data"] else event["data"]["response"]["team"]
    assert key == team.encode(), (key, team)
    assert event.get("subject") in (None, team)  # optional in the envelope; the team when present
    assert message.partition() == kafka_partition(key, PARTITIONS[message.topic()]), (
        message.topic(), key, message.partition())
    return event


def read_events(address: str, topics: list[str], done, timeout: float = 60.0) -> list[dict]:
    """Reads `topics` from the beginning in a fresh consumer group, checking every message, until
    `done(events)` holds. Fails after `timeout`."""
    consumer = Consumer({
        "bootstrap.servers": address,
        "group.id": "interop-" + uuid.uuid4().hex,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        # The mock cluster does not wake a waiting fetch when data arrives.
        "fetch.wait.max.ms": 10,
        "session.timeout.ms": 6000,
    })
    events: list[dict] = []
    try:
        consumer.subscribe(topics)
        deadline = time.monotonic() + timeout
        while not done(events):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out reading {topics}; read {[e['type'] for e in events]}")
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error() is not None and message.error().code() == KafkaError._PARTITION_EOF:
                continue
            events.append(check_message(message))
    finally:
        consumer.close()
    return events


# --------------------------------------------------------------------------------------------------
# Processes


def _drain(process: subprocess.Popen, log: list[str], ready: threading.Event, marker: str) -> None:
    assert process.stderr is not None
    for line in process.stderr:
        log.append(line.rstrip("\n"))
        if marker in line:
            ready.set()
    ready.set()


@pytest.fixture(scope="module")
def dev_broker():
    """`tollgate dev-broker --address-file`: yields the bootstrap address read from the file."""
    with tempfile.TemporaryDirectory(prefix="tollgate-dev-broker-") as directory:
        address_file = Path(directory) / "broker.address"
        process = subprocess.Popen(
            [str(tollgate_binary()), "dev-broker", "--address-file", str(address_file)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        log: list[str] = []
        ready = threading.Event()
        # "dev broker is ready" is logged once the topics exist and the address file is in place.
        threading.Thread(target=_drain, args=(process, log, ready, "dev broker is ready"), daemon=True).start()
        ready.wait(60)
        try:
            if not address_file.exists():
                raise RuntimeError("dev-broker did not write its address file:\n" + "\n".join(log))
            assert any("NOT DURABLE" in line for line in log), log
            yield address_file.read_text().strip()
        finally:
            stop(process)
        assert process.returncode == 0, "dev-broker did not stop cleanly:\n" + "\n".join(log)


def start_serve(data_dir: Path, brokers: str, upstream: str) -> tuple[subprocess.Popen, int, list[str]]:
    env = dict(os.environ)
    env.update({
        "OPENAI_API_KEY": UPSTREAM_SECRET, "ANTHROPIC_API_KEY": UPSTREAM_SECRET, "GEMINI_API_KEY": UPSTREAM_SECRET,
        "TOLLGATE_OPENAI_BASE_URL": upstream, "TOLLGATE_ANTHROPIC_BASE_URL": upstream,
        "TOLLGATE_GEMINI_BASE_URL": upstream, "TOLLGATE_ADMIN_KEY": ADMIN_KEY,
    })
    process = subprocess.Popen(
        [str(tollgate_binary()), "serve", "--brokers", brokers, "--data-dir", str(data_dir), "--port", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env)
    log: list[str] = []
    ready = threading.Event()
    threading.Thread(target=_drain, args=(process, log, ready, "tollgate is serving"), daemon=True).start()
    ready.wait(60)
    serving = [line for line in log if "tollgate is serving" in line]
    if not serving:
        stop(process)
        raise RuntimeError("tollgate serve --brokers did not start:\n" + "\n".join(log))
    port = int(serving[0].split("tollgate.port=")[1].split()[0])
    return process, port, log


def create_key(url: str, team: str) -> str:
    request = urllib.request.Request(
        f"{url}/admin/keys", method="POST",
        data=json.dumps({"team": team, "project": "interop", "name": "kafka-interop"}).encode(),
        headers={"authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["secret"]


# --------------------------------------------------------------------------------------------------
# Tests


def test_openai_call_events_reach_a_foreign_consumer(dev_broker):
    fake_process, fake = start_fake_provider(key=UPSTREAM_SECRET)
    try:
        with tempfile.TemporaryDirectory(prefix="tollgate-kafka-interop-") as directory:
            process, port, log = start_serve(Path(directory), dev_broker, fake.url)
            try:
                url = f"http://127.0.0.1:{port}"
                team = "interop-" + uuid.uuid4().hex[:8]
                secret = create_key(url, team)
                client = openai.OpenAI(base_url=f"{url}/v1", api_key=secret, max_retries=0)
                raw = client.chat.completions.with_raw_response.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hello through kafka"}],
                    extra_headers={"x-tollgate-tags": "suite=kafka-interop"})
                completion = raw.parse()
                request_id = raw.headers["x-tollgate-request-id"]
                assert completion.choices[0].message.content

                def mine(events: list[dict]) -> list[dict]:
                    return [e for e in events if e["data"].get("request_id") == request_id]

                events = read_events(
                    dev_broker, [PREFIX + "requests", PREFIX + "responses"],
                    done=lambda events: {e["type"] for e in mine(events)} >= {"tollgate.request.v1",
                                                                               "tollgate.response.v1"})
                # The cost service priced it: its usage event is on the usage topic, valid too.
                usages = read_events(
                    dev_broker, [PREFIX + "usage"],
                    done=lambda events: any(e["id"] == f"usage:{request_id}" for e in events))
                assert any(e["id"] == f"usage:{request_id}" and e["data"]["priced"] for e in usages)
                # The README's example consumer of the usage topic (the cost service priced the call).
                report = subprocess.run(
                    [sys.executable, str(REPO / "ops" / "examples" / "usage_consumer.py"), "--brokers", dev_broker,
                     "--from-beginning", "--idle-seconds", "10"],
                    capture_output=True, text=True, timeout=120, check=True)
                report, report_errors = report.stdout, report.stderr
            finally:
                stop(process)
            assert process.returncode == 0, "serve did not stop cleanly:\n" + "\n".join(log)
    finally:
        stop(fake_process)

    ours = mine(events)
    by_type = {e["type"]: e for e in ours}
    assert sorted(by_type) == ["tollgate.request.v1", "tollgate.response.v1"], [e["type"] for e in ours]
    request, response = by_type["tollgate.request.v1"], by_type["tollgate.response.v1"]
    assert request["id"] == f"request:{request_id}"
    for event in (request, response):
        assert event["data"]["team"] == team
        assert event["data"]["tags"].get("suite") == "kafka-interop"
    assert response["data"]["status"] == 200
    usage = response["data"]["usage"]
    assert usage["input_tokens"] + usage["cached_input_read_tokens"] + usage["audio_input_tokens"] == (
        completion.usage.prompt_tokens)
    assert response["data"]["usage_source"] == "provider"
    line = next((l for l in report.splitlines() if team in l and "gpt-4o-mini" in l), None)
    assert line and "$0." in line and "UNPRICED" not in line, report + report_errors
    assert any(l.startswith(team) for l in report.splitlines()), report


def test_foreign_producer_round_trip(dev_broker):
    """confluent-kafka produces the Swift build's example events the way Tollgate does (topic, key,
    headers, murmur2 partitioner) and reads them back through the same checks."""
    output = subprocess.run([str(tollgate_binary()), "events", "examples", "--json"],
                            capture_output=True, text=True, timeout=60, check=True).stdout
    examples = [json.loads(line)["event"] for line in output.splitlines() if line.strip()]
    traffic = [e for e in examples if e["type"] in ("tollgate.request.v1", "tollgate.response.v1")]
    assert traffic, "no request/response examples"
    run = uuid.uuid4().hex
    producer = Producer({"bootstrap.servers": dev_broker, "partitioner": "murmur2_random",
                         "enable.idempotence": True, "acks": "all"})
    for event in traffic:
        event = dict(event, id=f"{event['id']}-{run}")
        producer.produce(TOPIC_OF_TYPE[event["type"]], key=event["data"]["team"].encode(),
                         value=json.dumps(event).encode(),
                         headers=[("content-type", CLOUDEVENTS_JSON), ("ce_type", event["type"])])
    assert producer.flush(30) == 0

    def ours(events: list[dict]) -> list[dict]:
        return [e for e in events if e["id"].endswith(run)]

    events = read_events(dev_broker, sorted({TOPIC_OF_TYPE[e["type"]] for e in traffic}),
                         done=lambda events: len(ours(events)) == len(traffic))
    assert sorted(e["type"] for e in ours(events)) == sorted(e["type"] for e in traffic)
