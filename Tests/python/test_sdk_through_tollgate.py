"""The official OpenAI, Anthropic and Google GenAI SDKs through Tollgate, against the fake provider.

Each client is configured only with Tollgate's base URL and a Tollgate virtual key. For every call we
find its `tollgate.response.v1` event in the log (each call carries a unique `x-tollgate-tags: call=<id>`
header, which Tollgate records as a tag) and check that the event's usage equals what the provider
reported to the SDK, class by class. The error cases check the SDK's own exception classes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as gtypes

from conftest import start_fake_provider, stop, tollgate_binary

UPSTREAM_SECRET = "sk-upstream-" + uuid.uuid4().hex
ADMIN_KEY = "admin-" + uuid.uuid4().hex
SERVING = re.compile(r"tollgate\.port=(\d+).*tollgate is serving")


@dataclass
class Tollgate:
    url: str
    data_dir: Path
    key: str
    limited_key: str
    log: list[str] = field(default_factory=list)

    def events(self, topic: str = "tollgate.responses") -> list[dict]:
        output = subprocess.run(
            [str(tollgate_binary()), "log", "consume", "--data-dir", str(self.data_dir), "--topic", topic,
             "--group", f"test-{uuid.uuid4().hex}", "--from", "beginning", "--idle-exit-ms", "300", "--json",
             "--no-commit"],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout
        return [json.loads(json.loads(line)["value"]) for line in output.splitlines() if line.strip()]

    def response_event(self, call: str, timeout: float = 10.0) -> dict:
        """The response event tagged `call=<call>`, waiting for the publisher to write it."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events():
                if event["data"]["tags"].get("call") == call:
                    return event["data"]
            if time.monotonic() > deadline:
                raise AssertionError(f"no response event tagged call={call}")
            time.sleep(0.05)


def start_serve(data_dir: Path, upstream: str, *extra: str) -> tuple[subprocess.Popen, int, list[str]]:
    env = dict(os.environ)
    env.update({
        "OPENAI_API_KEY": UPSTREAM_SECRET, "ANTHROPIC_API_KEY": UPSTREAM_SECRET, "GEMINI_API_KEY": UPSTREAM_SECRET,
        "TOLLGATE_OPENAI_BASE_URL": upstream, "TOLLGATE_ANTHROPIC_BASE_URL": upstream,
        "TOLLGATE_GEMINI_BASE_URL": upstream, "TOLLGATE_ADMIN_KEY": ADMIN_KEY, "TOLLGATE_LOG_LEVEL": "debug",
    })
    process = subprocess.Popen(
        [str(tollgate_binary()), "serve", "--port", "0", "--data-dir", str(data_dir), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env,
    )
    log: list[str] = []
    port: list[int] = []
    ready = threading.Event()

    def drain() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            log.append(line.rstrip("\n"))
            match = SERVING.search(line)
            if match and not port:
                port.append(int(match.group(1)))
                ready.set()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    ready.wait(60)
    if not port:
        stop(process)
        raise RuntimeError("tollgate serve did not start:\n" + "\n".join(log))
    return process, port[0], log


def create_key(data_dir: Path, *extra: str) -> str:
    output = subprocess.run(
        [str(tollgate_binary()), "keys", "create", "--data-dir", str(data_dir), "--team", "search",
         "--project", "answers", "--json", *extra],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    return json.loads(output)["secret"]


@pytest.fixture(scope="module")
def tollgate():
    fake_process, fake = start_fake_provider(key=UPSTREAM_SECRET)
    try:
        with tempfile.TemporaryDirectory(prefix="tollgate-sdk-") as directory:
            data_dir = Path(directory)
            key = create_key(data_dir)
            limited = create_key(data_dir, "--models", "gpt-4o-mini")
            process, port, log = start_serve(data_dir, fake.url, "--max-request-bytes", "200000",
                                             "--upstream-read-timeout", "2")
            try:
                yield Tollgate(url=f"http://127.0.0.1:{port}", data_dir=data_dir, key=key, limited_key=limited,
                               log=log)
            finally:
                stop(process)
    finally:
        stop(fake_process)


def tag() -> tuple[str, dict]:
    call = uuid.uuid4().hex[:12]
    return call, {"x-tollgate-tags": f"call={call},suite=sdk"}


def oai(t: Tollgate, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{t.url}/v1", api_key=key or t.key, max_retries=0)


def claude(t: Tollgate, key: str | None = None) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=t.url, api_key=key or t.key, max_retries=0)


def gem(t: Tollgate, version: str = "v1beta", headers: dict | None = None, key: str | None = None) -> genai.Client:
    return genai.Client(api_key=key or t.key,
                        http_options=gtypes.HttpOptions(base_url=t.url, api_version=version, headers=headers))


def assert_openai_usage(event: dict, usage) -> None:
    """The event's disjoint classes add up to OpenAI's inclusive counts, class by class."""
    u = event["usage"]
    prompt_details = getattr(usage, "prompt_tokens_details", None)
    completion_details = getattr(usage, "completion_tokens_details", None)
    cached = (prompt_details.cached_tokens or 0) if prompt_details else 0
    audio_in = (prompt_details.audio_tokens or 0) if prompt_details else 0
    reasoning = (completion_details.reasoning_tokens or 0) if completion_details else 0
    audio_out = (completion_details.audio_tokens or 0) if completion_details else 0
    assert u["cached_input_read_tokens"] == cached
    assert u["audio_input_tokens"] == audio_in
    assert u["input_tokens"] == usage.prompt_tokens - cached - audio_in
    if usage.completion_tokens is not None:
        assert u["reasoning_tokens"] == reasoning
        assert u["audio_output_tokens"] == audio_out
        assert u["output_tokens"] == usage.completion_tokens - reasoning - audio_out
    assert event["usage_source"] == "provider"


def assert_anthropic_usage(event: dict, usage) -> None:
    u = event["usage"]
    assert u["input_tokens"] == usage.input_tokens
    assert u["cached_input_read_tokens"] == (usage.cache_read_input_tokens or 0)
    creation = usage.cache_creation
    assert u["cache_write_5m_tokens"] == (creation.ephemeral_5m_input_tokens if creation else usage.cache_creation_input_tokens or 0)
    assert u["cache_write_1h_tokens"] == (creation.ephemeral_1h_input_tokens if creation else 0)
    # Thinking is billed as output; Tollgate records it in the reasoning class (priced like output).
    details = getattr(usage, "output_tokens_details", None)
    thinking = (getattr(details, "thinking_tokens", None) or 0) if details else 0
    assert u["reasoning_tokens"] == thinking
    assert u["output_tokens"] + u["reasoning_tokens"] == usage.output_tokens
    assert event["usage_source"] == "provider"


def assert_gemini_usage(event: dict, usage) -> None:
    u = event["usage"]
    cached = usage.cached_content_token_count or 0
    thoughts = usage.thoughts_token_count or 0
    assert u["cached_input_read_tokens"] == cached
    assert u["input_tokens"] + u["audio_input_tokens"] == usage.prompt_token_count - cached + (usage.tool_use_prompt_token_count or 0)
    assert u["output_tokens"] + u["audio_output_tokens"] == (usage.candidates_token_count or 0)
    assert u["reasoning_tokens"] == thoughts
    assert event["usage_source"] == "provider"


QUESTION = "What is the capital of France, in one word please?"
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
}


# --------------------------------------------------------------------------------------------------
# OpenAI


def test_openai_chat(tollgate):
    call, headers = tag()
    response = oai(tollgate).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": QUESTION}], extra_headers=headers)
    assert response.choices[0].message.content.startswith("Echo:")
    event = tollgate.response_event(call)
    assert_openai_usage(event, response.usage)
    assert event["outcome"] == "success" and event["status"] == 200
    assert event["team"] == "search" and event["project"] == "answers"
    assert event["served_model"] == response.model


def test_openai_chat_stream_without_include_usage(tollgate):
    """Tollgate asks for usage, meters it, and the client never sees the usage chunk."""
    call, headers = tag()
    chunks = list(oai(tollgate).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": QUESTION}], stream=True, extra_headers=headers))
    assert chunks and all(chunk.usage is None for chunk in chunks)
    assert all(chunk.choices for chunk in chunks)
    twin = oai(tollgate).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": QUESTION}])
    assert_openai_usage(tollgate.response_event(call), twin.usage)


def test_openai_chat_stream_with_include_usage(tollgate):
    call, headers = tag()
    chunks = list(oai(tollgate).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": QUESTION}], stream=True,
        stream_options={"include_usage": True}, extra_headers=headers))
    usage = chunks[-1].usage
    assert usage is not None and chunks[-1].choices == []
    assert_openai_usage(tollgate.response_event(call), usage)


def test_openai_reasoning_and_cache(tollgate):
    call, headers = tag()
    long_prompt = "word " * 1200
    response = oai(tollgate).chat.completions.create(
        model="o4-mini", messages=[{"role": "user", "content": long_prompt}], reasoning_effort="low",
        prompt_cache_key="k1", extra_headers=headers)
    assert response.usage.completion_tokens_details.reasoning_tokens > 0
    assert response.usage.prompt_tokens_details.cached_tokens > 0
    assert_openai_usage(tollgate.response_event(call), response.usage)


def test_openai_tool_call_streaming(tollgate):
    call, headers = tag()
    chunks = list(oai(tollgate).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER_TOOL],
        stream=True, stream_options={"include_usage": True}, extra_headers=headers))
    names = [tc.function.name for c in chunks for choice in c.choices for tc in (choice.delta.tool_calls or [])
             if tc.function and tc.function.name]
    assert names == ["get_weather"]
    assert_openai_usage(tollgate.response_event(call), chunks[-1].usage)


def test_openai_responses_api(tollgate):
    call, headers = tag()
    response = oai(tollgate).responses.create(model="gpt-4o-mini", input=QUESTION, extra_headers=headers)
    event = tollgate.response_event(call)
    u = event["usage"]
    cached = response.usage.input_tokens_details.cached_tokens
    reasoning = response.usage.output_tokens_details.reasoning_tokens
    assert u["input_tokens"] == response.usage.input_tokens - cached
    assert u["output_tokens"] == response.usage.output_tokens - reasoning

    call, headers = tag()
    with oai(tollgate).responses.stream(model="gpt-4o-mini", input=QUESTION, extra_headers=headers) as stream:
        final = stream.get_final_response()
    streamed = tollgate.response_event(call)
    assert streamed["stream"] is True
    assert streamed["usage"]["input_tokens"] == final.usage.input_tokens - final.usage.input_tokens_details.cached_tokens
    assert streamed["usage"]["output_tokens"] == final.usage.output_tokens - final.usage.output_tokens_details.reasoning_tokens


def test_openai_embeddings_and_models(tollgate):
    call, headers = tag()
    embedded = oai(tollgate).embeddings.create(model="text-embedding-3-small", input=["hello", "world"],
                                               extra_headers=headers)
    assert len(embedded.data) == 2
    event = tollgate.response_event(call)
    assert event["usage"]["input_tokens"] == embedded.usage.prompt_tokens
    assert [m.id for m in oai(tollgate, tollgate.limited_key).models.list()] == ["gpt-4o-mini"]


def test_openai_errors(tollgate):
    with pytest.raises(openai.AuthenticationError) as missing:
        oai(tollgate, "tg-not-a-key").chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.status_code == 401
    with pytest.raises(openai.PermissionDeniedError):
        oai(tollgate, tollgate.limited_key).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError):
        oai(tollgate).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                              extra_body={"max_tokens": "ten"})
    with pytest.raises(openai.APIStatusError) as large:
        oai(tollgate).chat.completions.create(model="gpt-4o-mini",
                                              messages=[{"role": "user", "content": "x" * 300_000}])
    assert large.value.status_code == 413
    with pytest.raises(openai.NotFoundError):
        oai(tollgate).get("/nothing/here", cast_to=object)
    call, headers = tag()
    with pytest.raises(openai.RateLimitError) as limited:
        oai(tollgate).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                              extra_headers={**headers, "x-fake-mode": "rate_limit"})
    assert limited.value.response.headers.get("retry-after") == "1"
    assert tollgate.response_event(call)["outcome"] == "provider_error"
    with pytest.raises(openai.InternalServerError):
        oai(tollgate).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                              extra_headers={"x-fake-mode": "server_error"})
    call, headers = tag()
    with pytest.raises(openai.APIStatusError) as timeout:
        oai(tollgate).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                              extra_headers={**headers, "x-fake-mode": "timeout"})
    assert timeout.value.status_code == 504
    assert tollgate.response_event(call)["status"] == 504


# --------------------------------------------------------------------------------------------------
# Anthropic


CACHED_SYSTEM = [
    {"type": "text", "text": "Five minute context " * 20, "cache_control": {"type": "ephemeral"}},
    {"type": "text", "text": "One hour context " * 20, "cache_control": {"type": "ephemeral", "ttl": "1h"}},
    {"type": "text", "text": "Be brief."},
]


def test_anthropic_messages_with_cache_classes(tollgate):
    call, headers = tag()
    message = claude(tollgate).messages.create(
        model="claude-sonnet-4-6", max_tokens=64, system=CACHED_SYSTEM,
        messages=[{"role": "user", "content": QUESTION}], extra_headers=headers)
    assert message.usage.cache_creation.ephemeral_5m_input_tokens > 0
    assert message.usage.cache_creation.ephemeral_1h_input_tokens > 0
    assert_anthropic_usage(tollgate.response_event(call), message.usage)

    call, headers = tag()
    read = claude(tollgate).messages.create(
        model="claude-sonnet-4-6", max_tokens=64, system=CACHED_SYSTEM,
        messages=[{"role": "user", "content": QUESTION}], extra_headers={**headers, "x-fake-cache": "read"})
    assert read.usage.cache_read_input_tokens > 0
    assert_anthropic_usage(tollgate.response_event(call), read.usage)


def test_anthropic_stream_and_tools(tollgate):
    call, headers = tag()
    with claude(tollgate).messages.stream(
        model="claude-sonnet-4-6", max_tokens=64, messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[{"name": "get_weather", "input_schema": WEATHER_TOOL["function"]["parameters"]}],
        extra_headers=headers,
    ) as stream:
        final = stream.get_final_message()
    assert final.content[-1].type == "tool_use" and final.content[-1].name == "get_weather"
    event = tollgate.response_event(call)
    assert event["stream"] is True
    assert_anthropic_usage(event, final.usage)


def test_anthropic_count_tokens(tollgate):
    call, headers = tag()
    counted = claude(tollgate).messages.count_tokens(
        model="claude-sonnet-4-6", messages=[{"role": "user", "content": QUESTION}], extra_headers=headers)
    assert counted.input_tokens > 0
    event = tollgate.response_event(call)
    assert event["outcome"] == "success"
    assert event["usage"]["input_tokens"] == 0 and event["usage_source"] == "none"  # counting is free


def test_anthropic_errors(tollgate):
    with pytest.raises(anthropic.AuthenticationError):
        claude(tollgate, "tg-wrong").messages.create(model="claude-sonnet-4-6", max_tokens=5,
                                                    messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(anthropic.PermissionDeniedError):
        claude(tollgate, tollgate.limited_key).messages.create(model="claude-sonnet-4-6", max_tokens=5,
                                                              messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(anthropic.BadRequestError):
        claude(tollgate).messages.create(model="claude-sonnet-4-6", max_tokens=5,
                                         messages=[{"role": "user", "content": "hi"}],
                                         extra_body={"max_tokens": "five"})
    with pytest.raises(anthropic.RateLimitError):
        claude(tollgate).messages.create(model="claude-sonnet-4-6", max_tokens=5,
                                         messages=[{"role": "user", "content": "hi"}],
                                         extra_headers={"x-fake-mode": "rate_limit"})
    with pytest.raises(anthropic.APIStatusError) as large:
        claude(tollgate).messages.create(model="claude-sonnet-4-6", max_tokens=5,
                                         messages=[{"role": "user", "content": "x" * 300_000}])
    assert large.value.status_code == 413


# --------------------------------------------------------------------------------------------------
# Gemini


@pytest.mark.parametrize("version", ["v1beta", "v1"])
def test_gemini_generate_and_stream(tollgate, version):
    # Keep each client referenced: google-genai closes its HTTP client when the Client is collected.
    call, headers = tag()
    client = gem(tollgate, version, headers)
    response = client.models.generate_content(model="gemini-2.5-flash", contents=QUESTION)
    assert_gemini_usage(tollgate.response_event(call), response.usage_metadata)

    call, headers = tag()
    client = gem(tollgate, version, headers)
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents=QUESTION))
    event = tollgate.response_event(call)
    assert event["stream"] is True
    assert_gemini_usage(event, chunks[-1].usage_metadata)


def test_gemini_thinking_and_cache(tollgate):
    call, headers = tag()
    client = gem(tollgate, headers=headers)
    response = client.models.generate_content(
        model="gemini-2.5-pro", contents="Explain the plan",
        config=gtypes.GenerateContentConfig(cached_content="cachedContents/fake",
                                            thinking_config=gtypes.ThinkingConfig(thinking_budget=40)))
    assert response.usage_metadata.thoughts_token_count == 40
    assert_gemini_usage(tollgate.response_event(call), response.usage_metadata)


def test_gemini_function_call_count_tokens_and_embeddings(tollgate):
    call, headers = tag()
    declaration = gtypes.FunctionDeclaration(
        name="get_weather",
        parameters=gtypes.Schema(type="OBJECT", properties={"city": gtypes.Schema(type="STRING")}, required=["city"]))
    client = gem(tollgate, headers=headers)
    response = client.models.generate_content(
        model="gemini-2.5-flash", contents="Weather?",
        config=gtypes.GenerateContentConfig(tools=[gtypes.Tool(function_declarations=[declaration])]))
    assert response.function_calls[0].name == "get_weather"
    assert_gemini_usage(tollgate.response_event(call), response.usage_metadata)

    call, headers = tag()
    client = gem(tollgate, headers=headers)
    counted = client.models.count_tokens(model="gemini-2.5-flash", contents=QUESTION)
    assert counted.total_tokens > 0
    assert tollgate.response_event(call)["outcome"] == "success"

    call, headers = tag()
    client = gem(tollgate, headers=headers)
    embedded = client.models.embed_content(model="gemini-embedding-001", contents=["hello", "world"])
    assert len(embedded.embeddings) == 2
    event = tollgate.response_event(call)
    assert event["outcome"] == "success"
    assert event["usage"]["input_tokens"] > 0  # reported, or estimated when the API reports none


def test_gemini_errors(tollgate):
    wrong = gem(tollgate, key="tg-wrong")
    with pytest.raises(genai_errors.ClientError) as unauthenticated:
        wrong.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert unauthenticated.value.code == 401
    limited_client = gem(tollgate, headers={"x-fake-mode": "rate_limit"})
    with pytest.raises(genai_errors.ClientError) as limited:
        limited_client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert limited.value.code == 429
    failing = gem(tollgate, headers={"x-fake-mode": "server_error"})
    with pytest.raises(genai_errors.ServerError) as server:
        failing.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert server.value.code == 500


def test_stream_cut_by_provider_is_estimated(tollgate):
    call, headers = tag()
    with pytest.raises(Exception):
        list(oai(tollgate).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": QUESTION}], stream=True,
            extra_headers={**headers, "x-fake-mode": "cut_stream"}))
    event = tollgate.response_event(call)
    assert event["outcome"] == "provider_error"
    assert event["usage_source"] == "estimated"
    assert event["usage"]["input_tokens"] > 0


def test_unreachable_provider_is_502():
    with tempfile.TemporaryDirectory(prefix="tollgate-sdk-502-") as directory:
        key = create_key(Path(directory))
        process, port, _ = start_serve(Path(directory), "http://127.0.0.1:9", "--upstream-connect-timeout", "1")
        try:
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
            with pytest.raises(openai.APIStatusError) as unreachable:
                client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            assert unreachable.value.status_code == 502
        finally:
            stop(process)


def test_secrets_never_written(tollgate):
    """After every call above: neither the provider secret nor a virtual key's secret is in an event, a log
    line or any file of the data directory (only the key's SHA-256 is)."""
    secrets = [UPSTREAM_SECRET, tollgate.key, tollgate.limited_key]
    for path in tollgate.data_dir.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in content, f"a secret is in {path}"
    log = "\n".join(tollgate.log)
    assert "tollgate is serving" in log and len(tollgate.log) > 10  # debug logging was on
    for secret in secrets:
        assert secret not in log
    for event in tollgate.events() + tollgate.events("tollgate.requests") + tollgate.events("tollgate.control"):
        text = json.dumps(event)
        for secret in secrets:
            assert secret not in text


# --------------------------------------------------------------------------------------------------
# Cost: the usage events priced by the cost service, checked against an independent reading of the
# catalog (pricing.py) applied to the token counts the SDK itself received from the provider.

from pricing import expected_nano_usd  # noqa: E402


def usage_event(t: Tollgate, call: str, timeout: float = 15.0) -> dict:
    """The usage event of the call tagged `call=<call>`, waiting for the cost service to publish it."""
    deadline = time.monotonic() + timeout
    while True:
        for event in t.events("tollgate.usage"):
            if event["data"]["response"]["tags"].get("call") == call:
                assert event["id"] == "usage:" + event["data"]["response"]["request_id"]
                return event["data"]
        if time.monotonic() > deadline:
            raise AssertionError(f"no usage event tagged call={call}")
        time.sleep(0.1)


def assert_priced(usage: dict, provider: str, model: str, tokens: dict[str, int]) -> None:
    day = usage["response"]["timings"]["received_at"][:10]
    expected = expected_nano_usd(provider, model, day, tokens, usage["response"].get("service_tier"))
    assert expected is not None and expected > 0, f"{model} should be in the catalog"
    assert usage["priced"] is True and "unpriced_reason" not in usage
    assert usage["cost_nano_usd"]["total"] == expected, (tokens, usage["cost_nano_usd"])
    assert sum(v for k, v in usage["cost_nano_usd"].items() if k != "total") == expected
    assert usage["catalog_version"] and usage["price_effective_date"] <= day


def openai_tokens(usage) -> dict[str, int]:
    cached = (usage.prompt_tokens_details.cached_tokens or 0) if usage.prompt_tokens_details else 0
    reasoning = (usage.completion_tokens_details.reasoning_tokens or 0) if usage.completion_tokens_details else 0
    return {"input": usage.prompt_tokens - cached, "cached_input_read": cached,
            "output": usage.completion_tokens - reasoning, "reasoning": reasoning}


def anthropic_tokens(usage) -> dict[str, int]:
    creation = usage.cache_creation
    return {"input": usage.input_tokens, "cached_input_read": usage.cache_read_input_tokens or 0,
            "cache_write_5m": creation.ephemeral_5m_input_tokens if creation else usage.cache_creation_input_tokens or 0,
            "cache_write_1h": creation.ephemeral_1h_input_tokens if creation else 0,
            "output": usage.output_tokens}


def gemini_tokens(usage) -> dict[str, int]:
    cached = usage.cached_content_token_count or 0
    return {"input": usage.prompt_token_count - cached, "cached_input_read": cached,
            "output": usage.candidates_token_count or 0, "reasoning": usage.thoughts_token_count or 0}


def test_costs_openai(tollgate):
    call, headers = tag()
    response = oai(tollgate).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": QUESTION}], extra_headers=headers)
    assert_priced(usage_event(tollgate, call), "openai", response.model, openai_tokens(response.usage))

    call, headers = tag()
    chunks = list(oai(tollgate).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": QUESTION}], stream=True,
        stream_options={"include_usage": True}, extra_headers=headers))
    assert_priced(usage_event(tollgate, call), "openai", chunks[-1].model, openai_tokens(chunks[-1].usage))

    call, headers = tag()
    response = oai(tollgate).chat.completions.create(
        model="o4-mini", messages=[{"role": "user", "content": "word " * 1200}], reasoning_effort="low",
        prompt_cache_key="k1", extra_headers=headers)
    tokens = openai_tokens(response.usage)
    assert tokens["reasoning"] > 0 and tokens["cached_input_read"] > 0
    assert_priced(usage_event(tollgate, call), "openai", response.model, tokens)

    call, headers = tag()
    embedded = oai(tollgate).embeddings.create(model="text-embedding-3-small", input=["hello"], extra_headers=headers)
    assert_priced(usage_event(tollgate, call), "openai", embedded.model, {"input": embedded.usage.prompt_tokens})


def test_costs_anthropic(tollgate):
    call, headers = tag()
    message = claude(tollgate).messages.create(
        model="claude-sonnet-4-6", max_tokens=64, system=CACHED_SYSTEM,
        messages=[{"role": "user", "content": QUESTION}], extra_headers=headers)
    tokens = anthropic_tokens(message.usage)
    assert tokens["cache_write_5m"] > 0 or tokens["cache_write_1h"] > 0 or tokens["cached_input_read"] > 0
    assert_priced(usage_event(tollgate, call), "anthropic", message.model, tokens)

    call, headers = tag()
    with claude(tollgate).messages.stream(model="claude-sonnet-4-6", max_tokens=64,
                                          messages=[{"role": "user", "content": QUESTION}],
                                          extra_headers=headers) as stream:
        final = stream.get_final_message()
    assert_priced(usage_event(tollgate, call), "anthropic", final.model, anthropic_tokens(final.usage))


def test_costs_gemini(tollgate):
    call, headers = tag()
    client = gem(tollgate, headers=headers)  # keep a reference: the client closes its connection when collected
    response = client.models.generate_content(model="gemini-2.5-flash", contents=QUESTION)
    assert_priced(usage_event(tollgate, call), "gemini", response.model_version or "gemini-2.5-flash",
                  gemini_tokens(response.usage_metadata))

    call, headers = tag()
    client = gem(tollgate, headers=headers)
    chunks = list(client.models.generate_content_stream(
        model="gemini-2.5-pro", contents="Explain the plan",
        config=gtypes.GenerateContentConfig(thinking_config=gtypes.ThinkingConfig(thinking_budget=128))))
    final = chunks[-1]
    assert (final.usage_metadata.thoughts_token_count or 0) > 0
    assert_priced(usage_event(tollgate, call), "gemini", final.model_version or "gemini-2.5-pro",
                  gemini_tokens(final.usage_metadata))


def test_costs_unknown_model_is_loud(tollgate):
    """A model the catalog does not know is published unpriced, never as $0, and `tollgate prices
    --unpriced` lists it."""
    call, headers = tag()
    oai(tollgate).chat.completions.create(model="gpt-unknown-2099", messages=[{"role": "user", "content": "hi"}],
                                          extra_headers=headers)
    usage = usage_event(tollgate, call)
    assert usage["priced"] is False and usage["unpriced_reason"] == "model_not_in_catalog"
    assert usage["cost_nano_usd"]["total"] == 0
    listed = subprocess.run(
        [str(tollgate_binary()), "prices", "--unpriced", "--json", "--data-dir", str(tollgate.data_dir)],
        capture_output=True, text=True, timeout=60, check=True).stdout
    rows = json.loads(listed)
    assert any(row["model"] == "gpt-unknown-2099" and row["reason"] == "model_not_in_catalog" for row in rows)
    assert any("model without a price" in line and "gpt-unknown-2099" in line for line in tollgate.log)


# --------------------------------------------------------------------------------------------------
# Budgets: a downgrade and a block, seen through the official SDK.


def set_budget(t: Tollgate, budget_id: str, *args: str) -> None:
    subprocess.run([str(tollgate_binary()), "budgets", "set", budget_id, "--data-dir", str(t.data_dir), *args],
                   capture_output=True, text=True, timeout=60, check=True)


def call_until(predicate, timeout: float = 15.0):
    """Calls `predicate()` until it returns a value (the ingress folds the budget from the control topic
    within milliseconds; this bounds the wait without assuming how many)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("the budget did not take effect in time")
        time.sleep(0.1)


def test_budget_downgrade_with_the_openai_sdk(tollgate):
    feature = "downgrade-" + uuid.uuid4().hex[:6]
    # A tiny budget whose only level is a downgrade: any gpt-4o call would cross it.
    set_budget(tollgate, feature, "--scope", f"tag:feature={feature}", "--limit-usd", "0.00001", "--period", "day",
               "--levels", "50:downgrade", "--downgrade", "gpt-4o=gpt-4o-mini")

    def downgraded():
        call, headers = tag()
        raw = oai(tollgate).chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": QUESTION}],
            extra_headers={**headers, "x-tollgate-tags": f"call={call},feature={feature}"})
        return (raw, call) if raw.headers.get("x-tollgate-downgraded-from") == "gpt-4o" else None

    raw, call = call_until(downgraded)
    completion = raw.parse()
    assert completion.model.startswith("gpt-4o-mini"), completion.model
    assert completion.choices[0].message.content.startswith("Echo:")
    event = tollgate.response_event(call)
    assert event["requested_model"] == "gpt-4o" and event["served_model"].startswith("gpt-4o-mini")
    assert event["routing"] == {"policy": f"budget:{feature}", "reason": "downgrade", "downgraded_from": "gpt-4o"}
    usage = usage_event(tollgate, call)
    assert usage["priced"] and usage["response"]["served_model"].startswith("gpt-4o-mini")


def test_budget_block_in_each_providers_quota_shape(tollgate):
    feature = "block-" + uuid.uuid4().hex[:6]
    set_budget(tollgate, feature, "--scope", f"tag:feature={feature}", "--limit-usd", "0.00001", "--period", "month",
               "--time-zone", "Europe/Berlin", "--levels", "100:block")
    tags = {"x-tollgate-tags": f"feature={feature}"}

    def blocked():
        try:
            oai(tollgate).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                                  extra_headers=tags)
            return None
        except openai.RateLimitError as error:
            return error

    error = call_until(blocked)
    assert error.status_code == 429
    assert error.body["type"] == "insufficient_quota" and error.body["code"] == "budget_exceeded"
    assert feature in error.body["message"] and "resets at" in error.body["message"]
    headers = error.response.headers
    assert headers["x-tollgate-budget-id"] == feature
    assert headers["x-tollgate-budget-scope"] == f"tag:feature={feature}"
    assert headers["x-tollgate-budget-reset"].endswith("Z") and int(headers["retry-after"]) >= 1

    with pytest.raises(anthropic.RateLimitError) as refused:
        claude(tollgate).messages.create(model="claude-sonnet-4-6", max_tokens=16,
                                         messages=[{"role": "user", "content": "hi"}], extra_headers=tags)
    assert refused.value.status_code == 429 and "budget_exceeded" in str(refused.value)

    client = gem(tollgate, headers=tags)
    with pytest.raises(genai_errors.ClientError) as gemini_refused:
        client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert gemini_refused.value.code == 429 and gemini_refused.value.status == "RESOURCE_EXHAUSTED"


def test_budgets_through_the_admin_api(tollgate):
    import urllib.error
    import urllib.request

    def admin(method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"{tollgate.url}/admin{path}", method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    budget_id = "admin-" + uuid.uuid4().hex[:6]
    status, created = admin("PUT", f"/budgets/{budget_id}", {
        "scope": "project:answers", "limit_usd": "25.50", "period": "week", "time_zone": "America/New_York",
        "levels": "80:alert,100:block", "downgrade": {"gpt-4o": "gpt-4o-mini"}})
    assert status == 200, created
    assert created["budget_id"] == budget_id and created["limit_nano_usd"] == 25_500_000_000
    assert created["levels"] == ["80:alert", "100:block"] and created["time_zone"] == "America/New_York"
    status, listed = admin("GET", "/budgets")
    assert status == 200 and any(b["budget_id"] == budget_id for b in listed["budgets"])
    # Bad input: a clear error, nothing stored.
    status, error = admin("PUT", "/budgets/bad", {"scope": "planet:earth", "limit_usd": "1"})
    assert status == 400 and "scope kind 'planet'" in error["error"]["message"]
    status, error = admin("PUT", "/budgets/bad", {"scope": "team:x", "limit_usd": "1", "time_zone": "Mars/Base"})
    assert status == 400 and "unknown time zone" in error["error"]["message"]
    status, _ = admin("DELETE", f"/budgets/{budget_id}")
    assert status == 200
    status, error = admin("DELETE", "/budgets/never-existed")
    assert status == 404


# --- Projections: SDK calls through the ingress, read back from the query API ---------------------------

TOKEN_CLASSES = ["input", "cached_input_read", "cache_write_5m", "cache_write_1h", "output", "reasoning",
                 "audio_input", "audio_output"]


def api(t: Tollgate, path: str, key: str = ADMIN_KEY) -> tuple[int, dict]:
    import urllib.error
    import urllib.request
    request = urllib.request.Request(t.url + path, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_usage_api_matches_usage_events_to_the_nano_dollar(tollgate):
    run = uuid.uuid4().hex[:10]
    headers = {"x-tollgate-tags": f"run={run},suite=projections"}
    oai(tollgate).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": QUESTION}], extra_headers=headers)
    list(oai(tollgate).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": QUESTION}], stream=True,
        stream_options={"include_usage": True}, extra_headers=headers))
    claude(tollgate).messages.create(
        model="claude-sonnet-4-5", max_tokens=64, system=CACHED_SYSTEM,
        messages=[{"role": "user", "content": QUESTION}], extra_headers=headers)
    gemini = gem(tollgate, headers=headers)
    gemini.models.generate_content(model="gemini-2.5-flash", contents=QUESTION)
    calls = 4

    deadline = time.monotonic() + 20
    while True:
        events = [e["data"] for e in tollgate.events("tollgate.usage")
                  if e["data"]["response"]["tags"].get("run") == run]
        if len(events) == calls or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(events) == calls, f"{len(events)} usage events for {calls} calls"

    # The projector applies them shortly after: wait for the query API to see all of them.
    path = f"/api/usage?since=1h&tag=run%3D{run}&group_by=provider,model"
    deadline = time.monotonic() + 20
    while True:
        status, body = api(tollgate, path)
        assert status == 200, body
        if body["totals"]["requests"] == calls or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert body["totals"]["requests"] == calls

    expected: dict[tuple[str, str], dict] = {}
    for usage in events:
        response = usage["response"]
        group = expected.setdefault((response["provider"], response["served_model"]),
                                    {"requests": 0, "cost": {}, "tokens": {}})
        group["requests"] += 1
        for name, value in usage["cost_nano_usd"].items():
            group["cost"][name] = group["cost"].get(name, 0) + value
        for name, value in response["usage"].items():
            group["tokens"][name] = group["tokens"].get(name, 0) + value
    assert len(body["rows"]) == len(expected)
    for row in body["rows"]:
        want = expected[(row["group"]["provider"], row["group"]["model"])]
        assert row["figures"]["requests"] == want["requests"]
        for name, value in want["cost"].items():
            assert row["figures"]["cost_nano_usd"][name] == value, (row["group"], name)
        for name, value in want["tokens"].items():
            assert row["figures"]["tokens"][name] == value, (row["group"], name)
    total = sum(usage["cost_nano_usd"]["total"] for usage in events)
    assert total > 0
    assert body["totals"]["cost_nano_usd"]["total"] == total

    # One request by id carries its event's exact figures.
    first = events[0]
    status, record = api(tollgate, "/api/requests/" + first["response"]["request_id"])
    assert status == 200
    assert record["cost_nano_usd"] == first["cost_nano_usd"]
    assert record["tags"]["run"] == run

    # A read-only key may read; a key for model calls may not; no key, no data.
    read_only = create_key(tollgate.data_dir, "--read-only")
    deadline = time.monotonic() + 10
    while (status := api(tollgate, path, key=read_only)[0]) != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status == 200
    assert api(tollgate, path, key=tollgate.key)[0] == 401
    assert api(tollgate, path, key="nope")[0] == 401
    status, error = api(tollgate, "/api/usage?group_by=colour")
    assert status == 400 and error["error"]["parameter"] == "group_by"


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(tollgate_binary()), *args], capture_output=True, text=True, timeout=timeout,
                          check=True)


def test_replay_rebuilds_the_same_projections_and_the_cli_reports_them(tollgate):
    # Traffic of its own, so there is something to compare even when this test runs alone.
    run = uuid.uuid4().hex[:10]
    for model in ["gpt-4o-mini", "gpt-4o", "gpt-4o-mini"]:
        oai(tollgate).chat.completions.create(model=model, messages=[{"role": "user", "content": QUESTION}],
                                              extra_headers={"x-tollgate-tags": f"run={run}"})
    live = str(tollgate.data_dir / "projections.sqlite")
    deadline = time.monotonic() + 20
    while True:
        status, body = api(tollgate, f"/api/usage?since=1h&tag=run%3D{run}")
        if body.get("totals", {}).get("requests") == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert body["totals"]["requests"] == 3

    rebuilt = str(tollgate.data_dir / "rebuilt.sqlite")
    replay = run_cli("replay", "projector", "--data-dir", str(tollgate.data_dir), "--output", rebuilt, "--json")
    summary = json.loads(replay.stdout)
    assert summary["messages"] > 0 and summary["requests"] >= 3
    assert "replay projector" in replay.stderr  # the progress line

    def usage(database: str) -> dict:
        return json.loads(run_cli("usage", "--projections", database, "--by", "team,model", "--since", "2h",
                                  "--json").stdout)
    # Everything the live projector holds, the rebuilt database holds too, to the nano-dollar. (The live one
    # may hold more only if traffic arrived after the replay read the log; none does here.)
    assert usage(rebuilt)["rows"] == usage(live)["rows"]
    assert usage(rebuilt)["totals"] == usage(live)["totals"]

    table = run_cli("usage", "--projections", rebuilt, "--by", "model", "--since", "2h").stdout.splitlines()
    header = next(index for index, line in enumerate(table) if line.startswith("model"))
    assert set(table[header + 1].replace(" ", "")) == {"-"}
    # The last column (cost) is right-aligned: an aligned table has every line, rule and total included, the
    # same length, and each cost ends where the header's "cost" ends.
    total = next(index for index, line in enumerate(table) if line.startswith("total"))
    rows = table[header:total + 1]  # a note about unpriced models may follow the table
    assert len(rows) >= 4 and len({len(line) for line in rows}) == 1, rows
    assert rows[0].endswith("cost") and all(line.split()[-1].startswith("$") for line in rows[2:]), rows
    assert any(line.startswith("gpt-4o-mini ") for line in rows)

    top = json.loads(run_cli("top", "--projections", rebuilt, "--since", "2h", "--limit", "3", "--json").stdout)
    costs = [request["cost_nano_usd"]["total"] for request in top["requests"]]
    assert len(costs) == 3 and costs == sorted(costs, reverse=True)
    assert "request" in run_cli("top", "--projections", rebuilt, "--since", "2h").stdout.splitlines()[0]

    budgets = json.loads(run_cli("budgets", "--projections", rebuilt, "--json").stdout)
    assert isinstance(budgets["budgets"], list)

    bad = subprocess.run([str(tollgate_binary()), "usage", "--projections", rebuilt, "--by", "colour"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "--by" in bad.stderr and "colour" in bad.stderr
    missing = subprocess.run([str(tollgate_binary()), "usage", "--projections", str(tollgate.data_dir / "nope.sqlite")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "no projections database" in missing.stderr
