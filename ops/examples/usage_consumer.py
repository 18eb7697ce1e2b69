#!/usr/bin/env python3
"""A consumer of Tollgate's `usage` topic that Tollgate did not write: spend per team, from Kafka.

Every priced call is one `tollgate.usage.v1` CloudEvent (schemas/usage.v1.schema.json) on the topic
`tollgate.usage`, keyed by team. Money is integer nano-USD (`cost_nano_usd.total`); sum integers, never
floats. A response the catalog could not price has `priced: false` and an `unpriced_reason`; it is listed
separately, never counted as $0. Delivery is at least once: drop duplicates by the event `id`.

    pip install "confluent-kafka>=2.3,<3"
    python3 ops/examples/usage_consumer.py --brokers 127.0.0.1:9092 [--group my-reports] [--from-beginning]

With `tollgate dev-broker --address-file broker.txt` and `tollgate serve --brokers "$(cat broker.txt)"`,
this prints one line per call and a table per team when it stops (Ctrl-C, --max-messages or --idle-seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections import defaultdict

from confluent_kafka import Consumer, KafkaError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brokers", required=True, help="Kafka bootstrap servers, host:port[,...]")
    parser.add_argument("--topic", default="tollgate.usage")
    parser.add_argument("--group", default=None, help="consumer group (default: a fresh one)")
    parser.add_argument("--from-beginning", action="store_true", help="read the topic from its start")
    parser.add_argument("--max-messages", type=int, default=0, help="stop after this many (0: no limit)")
    parser.add_argument("--idle-seconds", type=float, default=0, help="stop after this long without a message")
    args = parser.parse_args()

    consumer = Consumer({
        "bootstrap.servers": args.brokers,
        "group.id": args.group or f"usage-report-{uuid.uuid4().hex[:8]}",
        "auto.offset.reset": "earliest" if args.from_beginning else "latest",
        "enable.auto.commit": True,
    })
    count = 0
    last = time.monotonic()

    def assigned(_consumer, _partitions) -> None:
        nonlocal last
        last = time.monotonic()  # --idle-seconds counts from when partitions are assigned

    consumer.subscribe([args.topic], on_assign=assigned)
    seen: set[str] = set()
    spend: dict[str, int] = defaultdict(int)
    calls: dict[str, int] = defaultdict(int)
    unpriced: dict[tuple[str, str], int] = defaultdict(int)
    try:
        while not args.max_messages or count < args.max_messages:
            message = consumer.poll(0.5)
            if message is None:
                if args.idle_seconds and time.monotonic() - last > args.idle_seconds:
                    break
                continue
            if message.error():
                if message.error().code() != KafkaError._PARTITION_EOF:
                    print(f"kafka error: {message.error()}", file=sys.stderr)
                continue
            last = time.monotonic()
            event = json.loads(message.value())
            if event["type"] != "tollgate.usage.v1" or event["id"] in seen:
                continue
            seen.add(event["id"])
            count += 1
            usage = event["data"]
            response = usage["response"]
            team, model = response["team"], response["served_model"]
            if usage["priced"]:
                total = usage["cost_nano_usd"]["total"]
                spend[team] += total
                calls[team] += 1
                print(f"{response['timings']['received_at']}  {team:<16} {model:<28} "
                      f"${total // 1_000_000_000}.{total % 1_000_000_000:09d}", flush=True)
            else:
                unpriced[(model, usage["unpriced_reason"])] += 1
                print(f"{response['timings']['received_at']}  {team:<16} {model:<28} "
                      f"UNPRICED ({usage['unpriced_reason']})", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()

    print(f"\n{'team':<16} {'calls':>6} {'spend (USD)':>20}")
    for team in sorted(spend):
        total = spend[team]
        print(f"{team:<16} {calls[team]:>6} {total // 1_000_000_000:>10}.{total % 1_000_000_000:09d}")
    for (model, reason), n in sorted(unpriced.items()):
        print(f"unpriced: {model} ({reason}) x{n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
