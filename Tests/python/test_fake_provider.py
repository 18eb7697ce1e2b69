"""The official OpenAI, Anthropic and Google GenAI SDKs against `tollgate fake-provider`.

Every client is configured only with a base URL and an API key, as a team pointing its SDK at
Tollgate would be. Expected usage is computed here from the fake provider's documented rules, so a
change of rule or of wire format fails these tests.
"""

from __future__ import annotations

import json
import math
import re
import time

import anthropic
import httpx2 as httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as gtypes

# ---------------------------------------------------------------------------------------------------
# The documented rules, in Python.


def tokens(*texts: str) -> int:
    """ceil(UTF-8 bytes / 4) over the sum of the texts' bytes."""
    return math.ceil(sum(len(t.encode("utf-8")) for t in texts) / 4)


def words(text: str) -> list[str]:
    return [w for w in re.split(r"[ \t\n\r\x0c\x0b]+", text) if w]


def reply(text: str, max_tokens: int | None = None) -> tuple[str, int, bool]:
    """(reply text, output tokens, truncated)."""
    natural = (["Echo:"] + words(text))[:32]
    if max_tokens is not None and max_tokens < len(natural):
        kept = natural[: max(1, max_tokens)]
        return " ".join(kept), len(kept), True
    return " ".join(natural), len(natural), False


def compact(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


EFFORT = {"minimal": 8, "low": 32, "medium": 64, "high": 128, "xhigh": 256, "none": 0}

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer"},
        "note": {"type": "string"},
    },
    "required": ["city", "unit", "days"],
}
WEATHER_ARGS = {"city": "fake", "unit": "celsius", "days": 1}


# ---------------------------------------------------------------------------------------------------
# Clients


@pytest.fixture
def oai(fake_provider):
    return openai.OpenAI(base_url=f"{fake_provider.url}/v1", api_key=fake_provider.key, max_retries=0)


@pytest.fixture
def claude(fake_provider):
    return anthropic.Anthropic(base_url=fake_provider.url, api_key=fake_provider.key, max_retries=0)


def gemini_client(server, version: str = "v1beta", headers: dict | None = None, timeout_ms: int | None = None):
    options = gtypes.HttpOptions(base_url=server.url, api_version=version, headers=headers, timeout=timeout_ms)
    return genai.Client(api_key=server.key, http_options=options)


@pytest.fixture
def gem(fake_provider):
    return gemini_client(fake_provider)


# ---------------------------------------------------------------------------------------------------
# OpenAI


SYSTEM = "You are a terse assistant."
QUESTION = "What is the capital of France?"


def test_openai_chat_non_streaming(oai):
    completion = oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}],
    )
    text, out, _ = reply(QUESTION)
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    assert completion.choices[0].message.content == text
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens == tokens(SYSTEM, QUESTION)
    assert completion.usage.completion_tokens == out
    assert completion.usage.total_tokens == tokens(SYSTEM, QUESTION) + out
    assert completion.usage.prompt_tokens_details.cached_tokens == 0
    assert completion.usage.completion_tokens_details.reasoning_tokens == 0


def test_openai_chat_content_parts_and_max_tokens(oai):
    completion = oai.chat.completions.create(
        model="gpt-4o",
        max_completion_tokens=4,
        messages=[{"role": "user", "content": [{"type": "text", "text": "one two"}, {"type": "text", "text": "three four five"}]}],
    )
    assert completion.choices[0].message.content == "Echo: one two three"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.prompt_tokens == tokens("one two", "three four five")
    assert completion.usage.completion_tokens == 4


def test_openai_chat_stream_include_usage(oai):
    stream = oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": QUESTION}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text, out, _ = reply(QUESTION)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert chunks[-1].choices == []
    assert chunks[-1].usage.prompt_tokens == tokens(QUESTION)
    assert chunks[-1].usage.completion_tokens == out
    assert all(c.usage is None for c in chunks[:-1])
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_openai_chat_stream_without_usage(oai):
    chunks = list(
        oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True)
    )
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


def test_openai_chat_stream_helper_accumulates(oai):
    with oai.chat.completions.stream(
        model="gpt-4o", messages=[{"role": "user", "content": QUESTION}], stream_options={"include_usage": True}
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == reply(QUESTION)[0]
    assert final.usage.total_tokens == tokens(QUESTION) + reply(QUESTION)[1]


WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}


def test_openai_tool_call(oai):
    completion = oai.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER_TOOL]
    )
    call = completion.choices[0].message.tool_calls[0]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == WEATHER_ARGS
    assert completion.usage.completion_tokens == tokens(compact(WEATHER_ARGS))

    # The tool result gets a text answer.
    followup = oai.chat.completions.create(
        model="gpt-4o",
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            completion.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 degrees"},
        ],
    )
    assert followup.choices[0].message.content == "Echo: Sunny, 21 degrees"


def test_openai_tool_call_streaming(oai):
    with oai.chat.completions.stream(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Weather?"}],
        tools=[WEATHER_TOOL],
        stream_options={"include_usage": True},
    ) as stream:
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == WEATHER_ARGS
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.usage.completion_tokens == tokens(compact(WEATHER_ARGS))


@pytest.mark.parametrize("effort", ["low", "high"])
def test_openai_reasoning_effort(oai, effort):
    completion = oai.chat.completions.create(
        model="gpt-5", reasoning_effort=effort, messages=[{"role": "user", "content": "Why?"}]
    )
    assert completion.usage.completion_tokens_details.reasoning_tokens == EFFORT[effort]
    assert completion.usage.completion_tokens == EFFORT[effort] + reply("Why?")[1]


def test_openai_prompt_cache(oai):
    prompt = "lorem ipsum dolor " * 300  # 5400 bytes
    completion = oai.chat.completions.create(
        model="gpt-4o", prompt_cache_key="team-a", messages=[{"role": "user", "content": prompt}]
    )
    prompt_tokens = tokens(prompt)
    assert completion.usage.prompt_tokens == prompt_tokens
    assert completion.usage.prompt_tokens_details.cached_tokens == prompt_tokens // 128 * 128


def test_openai_legacy_completion(oai):
    completion = oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say this is a test")
    assert completion.choices[0].text == "Echo: Say this is a test"
    assert completion.usage.prompt_tokens == tokens("Say this is a test")
    assert completion.usage.completion_tokens == 6


def test_openai_embeddings_default_base64_and_float(oai):
    default = oai.embeddings.create(model="text-embedding-3-small", input=["hello world", "bye"])
    floats = oai.embeddings.create(model="text-embedding-3-small", input=["hello world", "bye"], encoding_format="float")
    assert len(default.data) == 2 and len(default.data[0].embedding) == 16
    assert default.data[0].embedding == floats.data[0].embedding  # base64 decoded by the SDK
    assert default.data[1].embedding == floats.data[1].embedding
    assert default.data[0].embedding != default.data[1].embedding
    assert default.usage.prompt_tokens == tokens("hello world", "bye")
    sized = oai.embeddings.create(model="text-embedding-3-large", input="x", dimensions=64)
    assert len(sized.data[0].embedding) == 64


def test_openai_models(oai):
    ids = [model.id for model in oai.models.list()]
    assert "gpt-4o-mini" in ids


def test_openai_responses_non_streaming(oai):
    response = oai.responses.create(model="gpt-4.1", instructions=SYSTEM, input=QUESTION)
    text, out, _ = reply(QUESTION)
    assert response.status == "completed"
    assert response.output_text == text
    assert response.usage.input_tokens == tokens(SYSTEM, QUESTION)
    assert response.usage.output_tokens == out
    assert response.usage.total_tokens == tokens(SYSTEM, QUESTION) + out


def test_openai_responses_streaming_events(oai):
    events = list(oai.responses.create(model="gpt-4.1", input="one two", stream=True))
    types = [e.type for e in events]
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].response.usage.input_tokens == tokens("one two")
    assert events[-1].response.usage.output_tokens == 3


def test_openai_responses_stream_helper_reasoning_and_tools(oai):
    with oai.responses.stream(model="o4-mini", input="Think first", reasoning={"effort": "high"}) as stream:
        final = stream.get_final_response()
    assert final.output[0].type == "reasoning"
    assert final.output_text == "Echo: Think first"
    assert final.usage.output_tokens_details.reasoning_tokens == 128
    assert final.usage.output_tokens == 128 + 3

    tool = {"type": "function", "name": "get_weather", "parameters": WEATHER_SCHEMA}
    with oai.responses.stream(model="gpt-4.1", input="Weather?", tools=[tool]) as stream:
        final = stream.get_final_response()
    call = final.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == WEATHER_ARGS
    assert final.usage.output_tokens == tokens(compact(WEATHER_ARGS))


def test_openai_errors(oai, fake_provider):
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.RateLimitError) as rate:
        oai.chat.completions.create(model="gpt-4o", messages=messages, extra_headers={"x-fake-mode": "rate_limit"})
    assert rate.value.status_code == 429
    assert rate.value.response.headers["retry-after"] == "1"
    assert rate.value.code == "rate_limit_exceeded"
    with pytest.raises(openai.InternalServerError) as server:
        oai.chat.completions.create(model="gpt-4o", messages=messages, extra_headers={"x-fake-mode": "server_error"})
    assert server.value.status_code == 500
    with pytest.raises(openai.InternalServerError) as overloaded:
        oai.chat.completions.create(model="gpt-4o", messages=messages, extra_headers={"x-fake-mode": "overloaded"})
    assert overloaded.value.status_code == 503
    wrong = openai.OpenAI(base_url=f"{fake_provider.url}/v1", api_key="sk-virtual", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as auth:
        wrong.chat.completions.create(model="gpt-4o", messages=messages)
    assert auth.value.code == "invalid_api_key"
    with pytest.raises(openai.BadRequestError) as bad:
        oai.chat.completions.create(model="gpt-4o", messages=[])
    assert bad.value.code == "empty_array"


def test_openai_missing_key_and_malformed_json(fake_provider):
    response = httpx.post(f"{fake_provider.url}/v1/chat/completions", content=b"{}")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"
    response = httpx.post(
        f"{fake_provider.url}/v1/chat/completions",
        content=b"{nope",
        headers={"authorization": f"Bearer {fake_provider.key}"},
    )
    assert response.status_code == 400
    assert "could not parse the JSON body" in response.json()["error"]["message"]


def test_openai_stream_failure_modes(oai):
    messages = [{"role": "user", "content": "one two three four five six seven"}]
    start = time.monotonic()
    chunks = list(
        oai.chat.completions.create(
            model="gpt-4o",
            messages=messages,
            stream=True,
            extra_headers={"x-fake-mode": "slow_stream", "x-fake-delay-ms": "40"},
        )
    )
    assert time.monotonic() - start >= 0.04 * (len(chunks) - 1)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == reply(messages[0]["content"])[0]

    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in oai.chat.completions.create(
            model="gpt-4o", messages=messages, stream=True, extra_headers={"x-fake-mode": "cut_stream"}
        ):
            received.append(chunk)
    assert received, "part of the stream arrives before the cut"
    assert all(c.choices[0].finish_reason is None for c in received)

    with pytest.raises(openai.APIConnectionError):
        oai.chat.completions.create(model="gpt-4o", messages=messages, extra_headers={"x-fake-mode": "cut_stream"})

    with pytest.raises(openai.APITimeoutError):
        oai.with_options(timeout=0.5).chat.completions.create(
            model="gpt-4o", messages=messages, extra_headers={"x-fake-mode": "timeout"}
        )


# ---------------------------------------------------------------------------------------------------
# Anthropic


def test_anthropic_message(claude):
    message = claude.messages.create(
        model="claude-sonnet-4-6", max_tokens=100, system=SYSTEM, messages=[{"role": "user", "content": QUESTION}]
    )
    text, out, _ = reply(QUESTION)
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text" and message.content[0].text == text
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == tokens(SYSTEM, QUESTION)
    assert message.usage.output_tokens == out
    assert message.usage.cache_creation_input_tokens == 0
    assert message.usage.cache_read_input_tokens == 0
    assert message.usage.cache_creation.ephemeral_5m_input_tokens == 0


def test_anthropic_max_tokens(claude):
    message = claude.messages.create(
        model="claude-haiku-4-5", max_tokens=2, messages=[{"role": "user", "content": "a b c"}]
    )
    assert message.content[0].text == "Echo: a"
    assert message.stop_reason == "max_tokens"


CACHED_SYSTEM = [
    {"type": "text", "text": "A long policy document. " * 20, "cache_control": {"type": "ephemeral"}},
    {"type": "text", "text": "Hourly context. " * 10, "cache_control": {"type": "ephemeral", "ttl": "1h"}},
    {"type": "text", "text": "Uncached tail."},
]


def test_anthropic_cache_write_and_read(claude):
    five, hour, tail = (block["text"] for block in CACHED_SYSTEM)
    message = claude.messages.create(
        model="claude-sonnet-4-6", max_tokens=50, system=CACHED_SYSTEM, messages=[{"role": "user", "content": QUESTION}]
    )
    usage = message.usage
    assert usage.input_tokens == tokens(tail, QUESTION)
    assert usage.cache_creation.ephemeral_5m_input_tokens == tokens(five)
    assert usage.cache_creation.ephemeral_1h_input_tokens == tokens(hour)
    assert usage.cache_creation_input_tokens == tokens(five) + tokens(hour)
    assert usage.cache_read_input_tokens == 0

    read = claude.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=50,
        system=CACHED_SYSTEM,
        messages=[{"role": "user", "content": QUESTION}],
        extra_headers={"x-fake-cache": "read"},
    ).usage
    assert read.cache_read_input_tokens == tokens(five) + tokens(hour)
    assert read.cache_creation_input_tokens == 0
    assert read.input_tokens == tokens(tail, QUESTION)


def test_anthropic_stream(claude):
    events = list(
        claude.messages.create(
            model="claude-haiku-4-5", max_tokens=100, stream=True, messages=[{"role": "user", "content": "hi there"}]
        )
    )
    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]  # the SDK drops `ping`
    assert events[-2].usage.output_tokens == 3
    assert events[0].message.usage.input_tokens == tokens("hi there")

    with claude.messages.stream(
        model="claude-haiku-4-5",
        max_tokens=100,
        system=CACHED_SYSTEM,
        messages=[{"role": "user", "content": QUESTION}],
    ) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed == reply(QUESTION)[0]
    assert final.usage.output_tokens == reply(QUESTION)[1]
    assert final.usage.cache_creation_input_tokens == tokens(CACHED_SYSTEM[0]["text"]) + tokens(CACHED_SYSTEM[1]["text"])


ANTHROPIC_TOOL = {"name": "get_weather", "description": "Weather", "input_schema": WEATHER_SCHEMA}


def test_anthropic_tool_use(claude):
    message = claude.messages.create(
        model="claude-sonnet-4-6", max_tokens=200, tools=[ANTHROPIC_TOOL], messages=[{"role": "user", "content": "Weather?"}]
    )
    block = message.content[0]
    assert block.type == "tool_use" and block.name == "get_weather"
    assert block.input == WEATHER_ARGS
    assert message.stop_reason == "tool_use"
    assert message.usage.output_tokens == tokens(compact(WEATHER_ARGS))

    with claude.messages.stream(
        model="claude-sonnet-4-6", max_tokens=200, tools=[ANTHROPIC_TOOL], messages=[{"role": "user", "content": "Weather?"}]
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].input == WEATHER_ARGS

    answer = claude.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=200,
        tools=[ANTHROPIC_TOOL],
        messages=[
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": [block.model_dump(exclude_none=True)]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "Rain later"}]},
        ],
    )
    assert answer.content[0].text == "Echo: Rain later"
    assert answer.usage.input_tokens == tokens("Weather?", "Rain later")


def test_anthropic_thinking(claude):
    with claude.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "Ponder this"}],
    ) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].signature
    assert final.usage.output_tokens == 64 + reply("Ponder this")[1]


def test_anthropic_count_tokens_and_models(claude):
    count = claude.messages.count_tokens(
        model="claude-sonnet-4-6", system=CACHED_SYSTEM, messages=[{"role": "user", "content": QUESTION}]
    )
    five, hour, tail = (block["text"] for block in CACHED_SYSTEM)
    assert count.input_tokens == tokens(five) + tokens(hour) + tokens(tail, QUESTION)
    assert any(model.id == "claude-sonnet-4-6" for model in claude.models.list())


def test_anthropic_errors(claude, fake_provider):
    args = dict(model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(anthropic.RateLimitError) as rate:
        claude.messages.create(**args, extra_headers={"x-fake-mode": "rate_limit"})
    assert rate.value.response.headers["retry-after"] == "1"
    assert rate.value.body["error"]["type"] == "rate_limit_error"
    with pytest.raises(anthropic.InternalServerError) as server:
        claude.messages.create(**args, extra_headers={"x-fake-mode": "server_error"})
    assert server.value.status_code == 500
    with pytest.raises(anthropic.OverloadedError):
        claude.messages.create(**args, extra_headers={"x-fake-mode": "overloaded"})
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=fake_provider.url, api_key="virtual", max_retries=0).messages.create(**args)
    with pytest.raises(anthropic.BadRequestError):
        claude.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=[])

    # Unlike openai, the anthropic SDK lets the transport's error through when a stream breaks.
    received = []
    with pytest.raises(httpx.RemoteProtocolError):
        with claude.messages.stream(**args, extra_headers={"x-fake-mode": "cut_stream"}) as stream:
            for event in stream:
                received.append(event.type)
    assert received[0] == "message_start" and "message_stop" not in received
    with pytest.raises(anthropic.APITimeoutError):
        claude.with_options(timeout=0.5).messages.create(**args, extra_headers={"x-fake-mode": "timeout"})


# ---------------------------------------------------------------------------------------------------
# Gemini


@pytest.mark.parametrize("version", ["v1beta", "v1"])
def test_gemini_generate_content(fake_provider, version):
    client = gemini_client(fake_provider, version)
    response = client.models.generate_content(
        model="gemini-2.5-flash", contents=QUESTION, config=gtypes.GenerateContentConfig(system_instruction=SYSTEM)
    )
    text, out, _ = reply(QUESTION)
    assert response.text == text
    assert response.candidates[0].finish_reason == gtypes.FinishReason.STOP
    assert response.model_version == "gemini-2.5-flash"
    assert response.response_id
    usage = response.usage_metadata
    assert usage.prompt_token_count == tokens(SYSTEM, QUESTION)
    assert usage.candidates_token_count == out
    assert usage.total_token_count == tokens(SYSTEM, QUESTION) + out
    assert usage.thoughts_token_count is None
    assert usage.prompt_tokens_details[0].modality == gtypes.MediaModality.TEXT


@pytest.mark.parametrize("version", ["v1beta", "v1"])
def test_gemini_stream(fake_provider, version):
    client = gemini_client(fake_provider, version)
    chunks = list(client.models.generate_content_stream(model="gemini-2.0-flash", contents=QUESTION))
    text, out, _ = reply(QUESTION)
    assert len(chunks) == out
    assert "".join(c.text for c in chunks) == text
    assert chunks[-1].candidates[0].finish_reason == gtypes.FinishReason.STOP
    assert chunks[-1].usage_metadata.candidates_token_count == out
    assert chunks[-1].usage_metadata.prompt_token_count == tokens(QUESTION)


def test_gemini_thinking_cache_and_max_tokens(gem):
    response = gem.models.generate_content(
        model="gemini-2.5-pro",
        contents="Explain the plan",
        config=gtypes.GenerateContentConfig(
            max_output_tokens=2,
            cached_content="cachedContents/fake-cache",
            thinking_config=gtypes.ThinkingConfig(thinking_budget=40, include_thoughts=True),
        ),
    )
    usage = response.usage_metadata
    assert usage.cached_content_token_count == 1024
    assert usage.prompt_token_count == tokens("Explain the plan") + 1024
    assert usage.thoughts_token_count == 40
    assert usage.candidates_token_count == 2
    assert usage.total_token_count == usage.prompt_token_count + 2 + 40
    assert response.candidates[0].finish_reason == gtypes.FinishReason.MAX_TOKENS
    assert response.candidates[0].content.parts[0].thought is True
    assert response.candidates[0].content.parts[1].text == "Echo: Explain"


def test_gemini_function_call(gem):
    declaration = gtypes.FunctionDeclaration(
        name="get_weather",
        parameters=gtypes.Schema(
            type="OBJECT",
            properties={
                "city": gtypes.Schema(type="STRING"),
                "unit": gtypes.Schema(type="STRING", enum=["celsius", "fahrenheit"]),
                "days": gtypes.Schema(type="INTEGER"),
            },
            required=["city", "unit", "days"],
        ),
    )
    config = gtypes.GenerateContentConfig(tools=[gtypes.Tool(function_declarations=[declaration])])
    response = gem.models.generate_content(model="gemini-2.5-flash", contents="Weather?", config=config)
    call = response.function_calls[0]
    assert call.name == "get_weather"
    assert call.args == WEATHER_ARGS
    assert response.usage_metadata.candidates_token_count == tokens(compact(WEATHER_ARGS))

    chunks = list(gem.models.generate_content_stream(model="gemini-2.5-flash", contents="Weather?", config=config))
    assert chunks[-1].function_calls[0].args == WEATHER_ARGS


def test_gemini_count_tokens_and_embeddings(gem, fake_provider):
    count = gem.models.count_tokens(model="gemini-2.5-flash", contents=QUESTION)
    assert count.total_tokens == tokens(QUESTION)

    embedded = gem.models.embed_content(model="gemini-embedding-001", contents=["hello", "world"])
    assert len(embedded.embeddings) == 2
    assert len(embedded.embeddings[0].values) == 16
    sized = gem.models.embed_content(
        model="gemini-embedding-001", contents="hello", config=gtypes.EmbedContentConfig(output_dimensionality=8)
    )
    assert len(sized.embeddings[0].values) == 8
    assert sized.embeddings[0].values == embedded.embeddings[0].values[:8]

    # Keep the client referenced: google-genai closes its HTTP client when the Client is collected.
    v1_client = gemini_client(fake_provider, "v1")
    v1 = v1_client.models.embed_content(model="gemini-embedding-001", contents="hello")
    assert v1.embeddings[0].values == embedded.embeddings[0].values


@pytest.mark.parametrize(
    ("mode", "error", "code"),
    [
        ("rate_limit", genai_errors.ClientError, 429),
        ("server_error", genai_errors.ServerError, 500),
        ("overloaded", genai_errors.ServerError, 503),
    ],
)
def test_gemini_failure_modes(fake_provider, mode, error, code):
    client = gemini_client(fake_provider, headers={"x-fake-mode": mode})
    with pytest.raises(error) as raised:
        client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert raised.value.code == code


def test_gemini_auth_cut_and_timeout(fake_provider):
    wrong = genai.Client(api_key="virtual-key", http_options=gtypes.HttpOptions(base_url=fake_provider.url, api_version="v1beta"))
    with pytest.raises(genai_errors.ClientError) as raised:
        wrong.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert raised.value.code == 400 and raised.value.status == "INVALID_ARGUMENT"

    cut = gemini_client(fake_provider, headers={"x-fake-mode": "cut_stream"})
    received = []
    with pytest.raises(Exception) as broken:
        for chunk in cut.models.generate_content_stream(model="gemini-2.5-flash", contents="one two three four five"):
            received.append(chunk)
    assert not isinstance(broken.value, genai_errors.APIError)
    assert received and all(c.candidates[0].finish_reason is None for c in received)

    slow = gemini_client(fake_provider, headers={"x-fake-mode": "timeout"}, timeout_ms=500)
    start = time.monotonic()
    with pytest.raises(Exception):
        slow.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert time.monotonic() - start < 10
