"""Checks of the JSON Schemas in schemas/ (the public event contract).

Run from the repository root:

    tollgate events examples --json > /tmp/examples.jsonl
    TOLLGATE_EVENT_EXAMPLES=/tmp/examples.jsonl .venv/bin/pytest Tests/python

The examples file holds one JSON object per line, {"type": ..., "event": {...}}, as printed by
`tollgate events examples --json` (built from the Swift types in TollgateEvents). Validating
them here proves that the Swift types and the schemas describe the same JSON.
"""

import copy
import json
import os
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = "https://tollgate.dev/schemas/"
SHARED = {"common.schema.json", "topics.schema.json", "catalog.schema.json", "service-config.schema.json"}  # not event types
EXAMPLES_ENV = "TOLLGATE_EVENT_EXAMPLES"


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


ALL_SCHEMA_FILES = sorted(p.name for p in SCHEMAS.glob("*.schema.json"))
EVENT_SCHEMA_FILES = [name for name in ALL_SCHEMA_FILES if name not in SHARED]
SCHEMA_DOCS = {name: load(SCHEMAS / name) for name in ALL_SCHEMA_FILES}
REGISTRY = Registry().with_resources(
    (doc["$id"], Resource.from_contents(doc, default_specification=DRAFT202012))
    for doc in SCHEMA_DOCS.values()
)


def event_type_of(file_name):
    """tollgate.usage.v1 for usage.v1.schema.json."""
    return "tollgate." + file_name[: -len(".schema.json")]


def schema_file_of(event_type):
    """usage.v1.schema.json for tollgate.usage.v1."""
    assert event_type.startswith("tollgate."), event_type
    return event_type[len("tollgate.") :] + ".schema.json"


def validator_for(file_name):
    return Draft202012Validator(
        SCHEMA_DOCS[file_name], registry=REGISTRY, format_checker=FormatChecker()
    )


def declared_paths(node, resolver, prefix=""):
    """Every property path a schema declares, following $ref and combinators.

    Paths look like `data.response.timings.first_byte_ms`; array items add `[]`
    (`data.levels[].percent`). Free maps (tags, downgrade, observed: additionalProperties with
    a schema) declare no property names, so their keys are not required to appear.
    """
    paths = set()
    if not isinstance(node, dict):
        return paths
    if "$ref" in node:
        resolved = resolver.lookup(node["$ref"])
        paths |= declared_paths(resolved.contents, resolved.resolver, prefix)
    for keyword in ("allOf", "anyOf", "oneOf"):
        for sub in node.get(keyword, []):
            paths |= declared_paths(sub, resolver, prefix)
    for keyword in ("then", "else"):
        if keyword in node:
            paths |= declared_paths(node[keyword], resolver, prefix)
    for name, sub in node.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        paths.add(path)
        paths |= declared_paths(sub, resolver, path)
    if isinstance(node.get("items"), dict):
        paths |= declared_paths(node["items"], resolver, prefix + "[]")
    return paths


def present_paths(value, prefix=""):
    """Every property path present in a JSON value (free map keys included)."""
    paths = set()
    if isinstance(value, dict):
        for name, sub in value.items():
            path = f"{prefix}.{name}" if prefix else name
            paths.add(path)
            paths |= present_paths(sub, path)
    elif isinstance(value, list):
        for item in value:
            paths |= present_paths(item, prefix + "[]")
    return paths


def missing_properties(file_name, events):
    schema = SCHEMA_DOCS[file_name]
    declared = declared_paths(schema, REGISTRY.resolver(base_uri=schema["$id"]))
    present = set()
    for event in events:
        present |= present_paths(event)
    return sorted(declared - present)


def all_dicts(value, path="$"):
    """Every JSON object inside a value, with a JSONPath-like location."""
    if isinstance(value, dict):
        yield path, value
        for name, sub in value.items():
            yield from all_dicts(sub, f"{path}.{name}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from all_dicts(item, f"{path}[{index}]")


# (a) every schema is a valid draft 2020-12 schema whose references resolve


def test_schema_files_exist():
    assert "common.schema.json" in ALL_SCHEMA_FILES
    assert "topics.schema.json" in ALL_SCHEMA_FILES
    assert len(EVENT_SCHEMA_FILES) >= 11, EVENT_SCHEMA_FILES


@pytest.mark.parametrize("file_name", ALL_SCHEMA_FILES)
def test_schema_is_valid_draft_2020_12(file_name):
    schema = SCHEMA_DOCS[file_name]
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == DRAFT
    assert schema["$id"] == ID_BASE + file_name
    assert schema.get("title"), "every schema has a title"
    assert schema.get("description"), "every schema has a description"


@pytest.mark.parametrize("file_name", ALL_SCHEMA_FILES)
def test_every_reference_resolves(file_name):
    schema = SCHEMA_DOCS[file_name]

    def walk(node, resolver):
        if isinstance(node, dict):
            if "$ref" in node:
                resolved = resolver.lookup(node["$ref"])  # raises if unresolvable
                assert resolved.contents is not None
            for key, sub in node.items():
                if key not in ("examples", "const", "enum"):
                    walk(sub, resolver)
        elif isinstance(node, list):
            for sub in node:
                walk(sub, resolver)

    walk(schema, REGISTRY.resolver(base_uri=schema["$id"]))


@pytest.mark.parametrize("file_name", EVENT_SCHEMA_FILES)
def test_event_schema_fixes_its_type(file_name):
    schema = SCHEMA_DOCS[file_name]
    assert schema["title"] == event_type_of(file_name)
    assert schema["properties"]["type"] == {"const": event_type_of(file_name)}
    assert schema["$ref"] == "common.schema.json#/$defs/envelope"


# (b) every schema's own examples validate, and together use every declared property


@pytest.mark.parametrize("file_name", EVENT_SCHEMA_FILES)
def test_own_examples_validate(file_name):
    examples = SCHEMA_DOCS[file_name].get("examples", [])
    assert examples, f"{file_name} has no examples"
    validator = validator_for(file_name)
    for example in examples:
        validator.validate(example)


@pytest.mark.parametrize("file_name", EVENT_SCHEMA_FILES)
def test_own_examples_cover_every_property(file_name):
    missing = missing_properties(file_name, SCHEMA_DOCS[file_name]["examples"])
    assert not missing, f"{file_name}: no example has {missing}"


# Properties that no single example can hold together (the schema makes them exclusive).
EXCLUSIVE = {
    "usage.v1.schema.json": {"data.unpriced_reason"},
    # Kind-specific parameters: the full example is an error-rate rule; these belong to other kinds.
    "control.alert_rule.set.v1.schema.json": {
        "data.levels_percent", "data.min_nano_usd", "data.baseline_hours", "data.min_latency_ms",
        "data.lead_ms", "data.min_elapsed_bp",
    },
}


@pytest.mark.parametrize("file_name", EVENT_SCHEMA_FILES)
def test_one_own_example_is_complete(file_name):
    """At least one example sets every optional field (the "full" example)."""
    allowed = EXCLUSIVE.get(file_name, set())
    best = min(
        (set(missing_properties(file_name, [example])) - allowed
         for example in SCHEMA_DOCS[file_name]["examples"]),
        key=len,
    )
    assert not best, f"{file_name}: no single example has {sorted(best)}"


def test_usage_schema_has_an_unpriced_example():
    examples = SCHEMA_DOCS["usage.v1.schema.json"]["examples"]
    assert any(e["data"]["priced"] is False for e in examples)
    assert any(e["data"]["priced"] is True for e in examples)


# The schemas must be able to fail: mutated examples are rejected.


@pytest.mark.parametrize("file_name", EVENT_SCHEMA_FILES)
def test_schema_rejects_unknown_fields_everywhere(file_name):
    """Adding an object-valued key to any object of an example must be invalid: fixed objects
    have additionalProperties false, free maps only take scalar values."""
    validator = validator_for(file_name)
    example = SCHEMA_DOCS[file_name]["examples"][0]
    locations = [path for path, _ in all_dicts(example)]
    for location in locations:
        mutated = copy.deepcopy(example)
        target = dict(all_dicts(mutated))[location]
        target["unexpected_field"] = {"x": 1}
        with pytest.raises(ValidationError):
            validator.validate(mutated)
        assert location  # keeps the location in the traceback


@pytest.mark.parametrize("file_name", EVENT_SCHEMA_FILES)
def test_schema_rejects_missing_required_fields(file_name):
    validator = validator_for(file_name)
    example = SCHEMA_DOCS[file_name]["examples"][0]
    schema = SCHEMA_DOCS[file_name]
    resolver = REGISTRY.resolver(base_uri=schema["$id"])
    data_schema = resolver.lookup("#/$defs/data")
    if "$ref" in data_schema.contents:
        data_schema = data_schema.resolver.lookup(data_schema.contents["$ref"])
    required = data_schema.contents["required"]
    assert required
    for name in required:
        mutated = copy.deepcopy(example)
        del mutated["data"][name]
        with pytest.raises(ValidationError):
            validator.validate(mutated)
    for name in ("specversion", "id", "source", "type", "time", "datacontenttype", "data"):
        mutated = copy.deepcopy(example)
        del mutated[name]
        with pytest.raises(ValidationError):
            validator.validate(mutated)


@pytest.mark.parametrize("file_name", EVENT_SCHEMA_FILES)
def test_schema_rejects_other_type_and_spec_version(file_name):
    validator = validator_for(file_name)
    example = SCHEMA_DOCS[file_name]["examples"][0]
    for field, value in (("type", "tollgate.other.v1"), ("specversion", "0.3"), ("time", "2026-11-29 08:00:00")):
        mutated = copy.deepcopy(example)
        mutated[field] = value
        with pytest.raises(ValidationError):
            validator.validate(mutated)


def test_contract_specific_rules():
    usage = validator_for("usage.v1.schema.json")
    example = next(e for e in SCHEMA_DOCS["usage.v1.schema.json"]["examples"] if e["data"]["priced"])
    bad = copy.deepcopy(example)
    bad["data"]["response"]["usage"]["input_tokens"] = -1
    pytest.raises(ValidationError, usage.validate, bad)
    bad = copy.deepcopy(example)
    bad["data"]["cost_nano_usd"]["total"] = 1.5
    pytest.raises(ValidationError, usage.validate, bad)
    bad = copy.deepcopy(example)
    bad["data"]["priced"] = False  # unpriced needs unpriced_reason, no price_effective_date
    pytest.raises(ValidationError, usage.validate, bad)

    key = validator_for("control.key.created.v1.schema.json")
    example = SCHEMA_DOCS["control.key.created.v1.schema.json"]["examples"][0]
    for sha in ("A" * 64, "a" * 63, "tg-secret-key-material"):
        bad = copy.deepcopy(example)
        bad["data"]["key_sha256"] = sha
        pytest.raises(ValidationError, key.validate, bad)

    decision = validator_for("budget.decision.v1.schema.json")
    for example in SCHEMA_DOCS["budget.decision.v1.schema.json"]["examples"]:
        bad = copy.deepcopy(example)
        period = bad["data"]["period"]
        if period["kind"] == "lifetime":
            period["end"] = "2027-01-01T00:00:00.000Z"
        else:
            del period["end"]
        pytest.raises(ValidationError, decision.validate, bad)
        bad = copy.deepcopy(example)
        bad["data"]["scope"] = {"kind": "global", "id": "everything"}
        pytest.raises(ValidationError, decision.validate, bad)
        ok = copy.deepcopy(example)
        ok["data"]["remaining_nano_usd"] = -5  # overshoot is allowed
        decision.validate(ok)


def test_alert_rule_parameters_only_on_their_kinds():
    """Like AlertRuleSetData's decoding: a parameter on a kind it does not apply to is invalid."""
    rule = validator_for("control.alert_rule.set.v1.schema.json")
    examples = SCHEMA_DOCS["control.alert_rule.set.v1.schema.json"]["examples"]
    for example in examples:
        rule.validate(example)
    spike = next(e for e in examples if e["data"]["kind"] == "spend_spike")
    for field, value in (("levels_percent", [50]), ("lead_ms", 1), ("error_rate_bp", 100), ("min_latency_ms", 5)):
        bad = copy.deepcopy(spike)
        bad["data"][field] = value
        pytest.raises(ValidationError, rule.validate, bad)
    for field, value in (("kind", "events_dropped"), ("factor_bp", 10000), ("baseline_hours", 0), ("rule_id", "a|b")):
        bad = copy.deepcopy(spike)
        bad["data"][field] = value
        pytest.raises(ValidationError, rule.validate, bad)


# (c) the examples printed from the Swift types validate and cover every declared property


def load_swift_examples():
    path = os.environ.get(EXAMPLES_ENV)
    if not path:
        pytest.fail(
            f"{EXAMPLES_ENV} is not set. Write the Swift examples with "
            f"`tollgate events examples --json > /tmp/examples.jsonl` and run "
            f"`{EXAMPLES_ENV}=/tmp/examples.jsonl pytest Tests/python`.",
            pytrace=False,
        )
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    examples = [json.loads(line) for line in lines if line.strip()]
    if not examples:
        pytest.fail(f"{path} holds no examples", pytrace=False)
    return examples


def test_swift_examples_validate_against_their_schemas():
    by_type = {}
    for number, line in enumerate(load_swift_examples(), start=1):
        event_type, event = line["type"], line["event"]
        assert event["type"] == event_type, f"line {number}"
        file_name = schema_file_of(event_type)
        assert file_name in EVENT_SCHEMA_FILES, f"line {number}: no schema for {event_type}"
        errors = sorted(validator_for(file_name).iter_errors(event), key=lambda e: list(e.path))
        assert not errors, f"line {number} ({event_type}): " + "; ".join(
            f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors
        )
        by_type.setdefault(file_name, []).append(event)
    assert sorted(by_type) == EVENT_SCHEMA_FILES, "every event schema has Swift examples and no more"
    for file_name, events in by_type.items():
        missing = missing_properties(file_name, events)
        assert not missing, (
            f"{event_type_of(file_name)}: the schema declares {missing}, "
            "which no Swift example emits"
        )


# (d) the topic catalog


def test_topics_json_validates():
    Draft202012Validator(SCHEMA_DOCS["topics.schema.json"]).validate(load(SCHEMAS / "topics.json"))


def test_topics_carry_every_event_type_exactly_once():
    topics = load(SCHEMAS / "topics.json")["topics"]
    carried = [t for topic in topics for t in topic["event_types"]]
    assert len(carried) == len(set(carried)), "an event type is on two topics"
    assert sorted(carried) == sorted(event_type_of(f) for f in EVENT_SCHEMA_FILES)
    names = [topic["name"] for topic in topics]
    assert len(names) == len(set(names))


# (e) the price catalog


def test_built_in_catalog_validates():
    catalog = load(REPO / "Sources" / "TollgatePricing" / "catalog.json")
    Draft202012Validator(SCHEMA_DOCS["catalog.schema.json"], format_checker=FormatChecker()).validate(catalog)
    assert len(catalog["models"]) >= 40


@pytest.mark.parametrize("price", [0.15, "0.1234567891", "-1", "1e3", "", "1,5"])
def test_catalog_schema_rejects_inexact_prices(price):
    """Prices are exact decimal strings: no floats, no exponents, at most 9 fractional digits."""
    catalog = {"catalog_version": "x", "models": [{
        "provider": "openai", "id": "m", "kind": "chat",
        "prices": [{"effective_from": "2025-01-01", "source": "https://example.com",
                    "per_million": {"input": price, "output": "1"}}]}]}
    with pytest.raises(ValidationError):
        Draft202012Validator(SCHEMA_DOCS["catalog.schema.json"]).validate(catalog)
