"""An independent reading of the price catalog, for checking Tollgate's usage events from outside.

It follows the rules of schemas/catalog.schema.json with Python's `decimal` module: the entry in force on
the request's UTC day; long-context prices when the prompt exceeds the threshold, else service-tier prices
(each falling back per class to the standard ones); reasoning at the output price unless given; the total
is Σ tokens × $/M, in nano-USD rounded half up once per request. It shares no code with the Swift pricer.
"""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

from conftest import REPO_ROOT

CLASSES = ["input", "cached_input_read", "cache_write_5m", "cache_write_1h", "output", "reasoning",
           "audio_input", "audio_output"]
PROMPT_CLASSES = ["input", "cached_input_read", "cache_write_5m", "cache_write_1h", "audio_input"]


@lru_cache(maxsize=1)
def catalog() -> dict:
    return json.loads((REPO_ROOT / "Sources" / "TollgatePricing" / "catalog.json").read_text())


def find_model(provider: str, name: str) -> dict | None:
    for candidate in (name, name.removeprefix("models/")):
        for model in catalog()["models"]:
            if model["provider"] == provider and (model["id"] == candidate or candidate in model.get("aliases", [])):
                return model
    return None


def expected_nano_usd(provider: str, model_name: str, day: str, tokens: dict[str, int],
                      service_tier: str | None = None) -> int | None:
    """The cost of a request in nano-USD, or None when the catalog cannot price it."""
    if all(count == 0 for count in tokens.values()):
        return 0
    model = find_model(provider, model_name)
    if model is None:
        return None
    entries = sorted((e for e in model["prices"] if e["effective_from"] <= day), key=lambda e: e["effective_from"])
    if not entries:
        return None
    entry = entries[-1]
    prices = dict(entry["per_million"])
    prompt = sum(tokens.get(name, 0) for name in PROMPT_CLASSES)
    long_context = entry.get("long_context")
    if long_context and prompt > long_context["above_input_tokens"]:
        prices.update(long_context["per_million"])
    elif service_tier and service_tier in entry.get("service_tiers", {}):
        prices.update(entry["service_tiers"][service_tier])
    prices.setdefault("reasoning", prices.get("output"))
    dollars = Decimal(0)
    for name in CLASSES:
        count = tokens.get(name, 0)
        if count == 0:
            continue
        if prices.get(name) is None:
            return None
        dollars += Decimal(count) * Decimal(prices[name]) / Decimal(1_000_000)
    return int((dollars * Decimal(1_000_000_000)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def tokens_of(usage: dict) -> dict[str, int]:
    """A usage.v1/response.v1 `usage` object ({class}_tokens) as counts by class."""
    return {name: usage[f"{name}_tokens"] for name in CLASSES}
