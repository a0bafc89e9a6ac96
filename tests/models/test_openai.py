"""OpenAIChatModel / OpenAIEmbedder driving the real SDK against respx-mocked HTTP."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import httpx
import numpy as np
import openai
import pytest
import respx

from ragft.errors import (
    AuthenticationError,
    ConfigError,
    ModelError,
    ModelNotFoundError,
    ModelResponseError,
    ModelTimeoutError,
    ModelUnavailableError,
    RagftError,
    RateLimitError,
)
from ragft.models.base import ChatModel, Embedder, StreamingChatModel
from ragft.models.openai import (
    DEFAULT_BASE_URL,
    OpenAIChatModel,
    OpenAIEmbedder,
    make_async_client,
    make_client,
)

API = "https://api.openai.com/v1"  # the conftest's router base (tests/ is not a package)

MESSAGES = [
    {"role": "system", "content": "Answer from the context only."},
    {"role": "user", "content": "How long is the refund window?"},
]

# --------------------------------------------------------------------------- payloads


def chat_payload(
    content: str | None = "Refunds are accepted within 30 days.",
    *,
    model: str = "gpt-4.1-mini-2025-04-14",
    usage: Mapping[str, Any] | None | bool = True,
    logprobs: list[tuple[str, float]] | None = None,
    finish_reason: str = "stop",
    refusal: str | None = None,
) -> dict[str, Any]:
    """A full chat.completion object as the API returns it."""
    choice: dict[str, Any] = {
        "index": 0,
        "message": {
            "role": "assistant",
            "content": content,
            "refusal": refusal,
            "annotations": [],
        },
        "logprobs": None,
        "finish_reason": finish_reason,
    }
    if logprobs is not None:
        choice["logprobs"] = {
            "content": [
                {
                    "token": tok,
                    "logprob": lp,
                    "bytes": list(tok.encode()),
                    "top_logprobs": [],
                }
                for tok, lp in logprobs
            ],
            "refusal": None,
        }
    payload: dict[str, Any] = {
        "id": "chatcmpl-BXk2Qe1s9yVd7nJ0aJq3x",
        "object": "chat.completion",
        "created": 1747051234,
        "model": model,
        "choices": [choice],
        "service_tier": "default",
        "system_fingerprint": "fp_6f2eabb9a5",
    }
    if usage is True:
        payload["usage"] = {
            "prompt_tokens": 57,
            "completion_tokens": 12,
            "total_tokens": 69,
            "prompt_tokens_details": {"cached_tokens": 32, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
    elif isinstance(usage, Mapping):
        payload["usage"] = dict(usage)
    return payload


def chunk(
    delta: Mapping[str, Any] | None = None,
    *,
    finish_reason: str | None = None,
    usage: Mapping[str, Any] | None = None,
    empty_choices: bool = False,
) -> dict[str, Any]:
    """One chat.completion.chunk."""
    choices = (
        []
        if empty_choices
        else [
            {
                "index": 0,
                "delta": dict(delta or {}),
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ]
    )
    return {
        "id": "chatcmpl-BXk3stream",
        "object": "chat.completion.chunk",
        "created": 1747051300,
        "model": "gpt-4.1-mini-2025-04-14",
        "service_tier": "default",
        "system_fingerprint": "fp_6f2eabb9a5",
        "choices": choices,
        "usage": dict(usage) if usage is not None else None,
    }


def sse(*events: Mapping[str, Any], done: bool = True) -> httpx.Response:
    """A text/event-stream response: ``data: {...}\\n\\n`` per event, then ``data: [DONE]``."""
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events)
    if done:
        body += "data: [DONE]\n\n"
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body.encode())


STREAM_USAGE = {
    "prompt_tokens": 57,
    "completion_tokens": 6,
    "total_tokens": 63,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
}


def stream_events(*, with_usage: bool) -> list[dict[str, Any]]:
    events = [
        chunk({"role": "assistant", "content": "", "refusal": None}),
        chunk({"content": "Within"}),
        chunk({"content": " 30"}),
        chunk({"content": " days."}),
        chunk({}, finish_reason="stop"),
    ]
    if with_usage:
        events.append(chunk(empty_choices=True, usage=STREAM_USAGE))
    return events


def embedding_payload(
    vectors: list[list[float]],
    *,
    order: list[int] | None = None,
    prompt_tokens: int | None = 8,
    model: str = "text-embedding-3-small",
) -> dict[str, Any]:
    """A create-embedding response; ``order`` lists the indices in the order they are sent."""
    order = order if order is not None else list(range(len(vectors)))
    payload: dict[str, Any] = {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": vectors[i]} for i in order],
        "model": model,
    }
    if prompt_tokens is not None:
        payload["usage"] = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    return payload


def error_body(message: str, *, type_: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def sent(route: respx.Route, call: int = -1) -> dict[str, Any]:
    """The JSON body of one request a route received."""
    return json.loads(route.calls[call].request.content)


def retrying_client(max_retries: int) -> openai.OpenAI:
    """A client that lets the SDK retry (the ``client`` fixture never does)."""
    return openai.OpenAI(
        api_key="sk-test", base_url=API, http_client=httpx.Client(), max_retries=max_retries  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------- make_client


def test_make_client_uses_the_key_and_the_public_api(api: respx.MockRouter) -> None:
    route = api.post("/chat/completions").respond(json=chat_payload())
    client = make_client(api_key="sk-live", base_url=None, http_client=httpx.Client())
    assert str(client.base_url).rstrip("/") == DEFAULT_BASE_URL
    assert client.max_retries == 2
    OpenAIChatModel("gpt-4.1-mini", client=client).complete(MESSAGES)
    assert route.calls.last.request.headers["authorization"] == "Bearer sk-live"


def test_make_client_for_a_local_server_needs_no_key() -> None:
    with respx.mock(base_url="http://127.0.0.1:8080/v1") as local:
        route = local.post("/chat/completions").respond(json=chat_payload())
        client = make_client(
            api_key=None,
            base_url="http://127.0.0.1:8080/v1",
            timeout=5.0,
            max_retries=0,
            http_client=httpx.Client(),
        )
        OpenAIChatModel("local", client=client).complete(MESSAGES)
    assert route.calls.last.request.headers["authorization"] == "Bearer not-needed"
    assert client.timeout.read == 5.0 and client.timeout.connect == 5.0


def test_make_client_bounds_connecting_separately_from_reading() -> None:
    client = make_client(api_key="sk-test", base_url=None, timeout=60.0)
    # An unreachable host fails within the connect timeout; a slow generation may read for 60 s.
    assert client.timeout.connect == 5.0 and client.timeout.read == 60.0


def test_make_client_without_key_or_base_url_says_where_to_put_the_key() -> None:
    with pytest.raises(AuthenticationError, match=r"OPENAI_API_KEY.*\[backend\]"):
        make_client(api_key=None, base_url=None)
    with pytest.raises(AuthenticationError):
        make_async_client(api_key="", base_url=None)


def test_make_client_ignores_openai_base_url_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Only config reads the environment; the SDK must not redirect traffic on its own.
    monkeypatch.setenv("OPENAI_BASE_URL", "http://evil.example/v1")
    client = make_client(api_key="sk-test", base_url=None)
    assert str(client.base_url).rstrip("/") == DEFAULT_BASE_URL


def test_make_async_client_builds_an_async_sdk_client() -> None:
    client = make_async_client(api_key="sk-test", base_url=None, max_retries=0)
    assert isinstance(client, openai.AsyncOpenAI)
    assert client.max_retries == 0


# --------------------------------------------------------------------------- complete


def test_model_satisfies_the_chat_protocols(client: openai.OpenAI) -> None:
    model = OpenAIChatModel("gpt-4.1-mini", client=client)
    assert isinstance(model, ChatModel)
    assert isinstance(model, StreamingChatModel)
    assert model.name == "gpt-4.1-mini"


def test_complete_sends_the_request_and_reads_reported_usage(
    api: respx.MockRouter, client: openai.OpenAI
) -> None:
    route = api.post("/chat/completions").respond(json=chat_payload())
    model = OpenAIChatModel("gpt-4.1-mini", client=client)

    result = model.complete(MESSAGES, max_tokens=64, temperature=0.2)

    assert sent(route) == {
        "model": "gpt-4.1-mini",
        "messages": MESSAGES,
        "temperature": 0.2,
        "max_tokens": 64,
    }
    assert result.text == "Refunds are accepted within 30 days."
    assert result.finish_reason == "stop"
    assert result.logprobs is None
    # The id as given, not the dated snapshot the API echoes: pricing is keyed on it.
    assert result.model == "gpt-4.1-mini"
    usage = result.usage
    assert (usage.model, usage.kind, usage.source) == ("gpt-4.1-mini", "chat", "reported")
    assert (usage.input_tokens, usage.cached_input_tokens) == (57, 32)
    assert (usage.output_tokens, usage.reasoning_tokens) == (12, 0)


def test_complete_collects_token_logprobs_only_when_asked(
    api: respx.MockRouter, client: openai.OpenAI
) -> None:
    lps = [("Within", -0.01), (" 30", -0.2), (" days", -0.05), (".", 0.0)]
    route = api.post("/chat/completions").respond(
        json=chat_payload("Within 30 days.", logprobs=lps)
    )
    model = OpenAIChatModel("gpt-4.1-mini", client=client)

    result = model.complete(MESSAGES, logprobs=True)
    assert sent(route)["logprobs"] is True
    assert result.logprobs == (-0.01, -0.2, -0.05, 0.0)
    assert result.confidence == pytest.approx(math.exp(-0.26 / 4))

    result = model.complete(MESSAGES)
    assert "logprobs" not in sent(route)
    assert result.logprobs is None and result.confidence is None


def test_default_max_tokens_applies_when_the_call_gives_none(
    api: respx.MockRouter, client: openai.OpenAI
) -> None:
    route = api.post("/chat/completions").respond(json=chat_payload())
    OpenAIChatModel("gpt-4.1-mini", client=client, default_max_tokens=300).complete(MESSAGES)
    assert sent(route)["max_tokens"] == 300
    OpenAIChatModel("gpt-4.1-mini", client=client).complete(MESSAGES)
    assert "max_tokens" not in sent(route)


def test_reasoning_models_get_max_completion_tokens_and_no_temperature(
    api: respx.MockRouter, client: openai.OpenAI
) -> None:
    usage = {
        "prompt_tokens": 40,
        "completion_tokens": 150,
        "total_tokens": 190,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 128},
    }
    route = api.post("/chat/completions").respond(json=chat_payload(model="o4-mini", usage=usage))
    result = OpenAIChatModel("o4-mini", client=client).complete(MESSAGES, max_tokens=500)
    body = sent(route)
    assert body["max_completion_tokens"] == 500
    assert "max_tokens" not in body and "temperature" not in body
    assert (result.usage.output_tokens, result.usage.reasoning_tokens) == (150, 128)


def test_usage_without_details_counts_no_cached_or_reasoning_tokens(
    api: respx.MockRouter, client: openai.OpenAI
) -> None:
    # What llama.cpp and other compatible servers send.
    usage = {
        "prompt_tokens": 20,
        "completion_tokens": 5,
        "total_tokens": 25,
        "prompt_tokens_details": None,
    }
    api.post("/chat/completions").respond(json=chat_payload(usage=usage))
    result = OpenAIChatModel("local", client=client).complete(MESSAGES)
    assert (result.usage.input_tokens, result.usage.cached_input_tokens) == (20, 0)
    assert (result.usage.output_tokens, result.usage.reasoning_tokens) == (5, 0)
    assert result.usage.source == "reported"


def test_missing_usage_is_estimated_with_tiktoken(
    api: respx.MockRouter, client: openai.OpenAI, tokens: ModuleType
) -> None:
    api.post("/chat/completions").respond(json=chat_payload("Thirty days.", usage=None))
    result = OpenAIChatModel("gpt-4.1-mini", client=client).complete(MESSAGES)
    assert result.usage.source == "estimated"
    assert result.usage.input_tokens == tokens.count_chat_tokens(MESSAGES, "gpt-4.1-mini")
    assert result.usage.output_tokens == tokens.count_tokens("Thirty days.", "gpt-4.1-mini")
    assert result.usage.input_tokens > 0 and result.usage.output_tokens > 0


def test_acomplete_uses_the_async_client(api: respx.MockRouter, client: openai.OpenAI) -> None:
    route = api.post("/chat/completions").respond(json=chat_payload())

    async def run() -> Any:
        async with openai.AsyncOpenAI(
            api_key="sk-test", base_url=API, http_client=httpx.AsyncClient(), max_retries=0  # type: ignore[arg-type]
        ) as async_client:
            model = OpenAIChatModel("gpt-4.1-mini", client=client, async_client=async_client)
            return await model.acomplete(MESSAGES, max_tokens=10, logprobs=True)

    result = asyncio.run(run())
    assert result.text == "Refunds are accepted within 30 days."
    assert result.usage.input_tokens == 57
    assert sent(route)["max_tokens"] == 10 and sent(route)["logprobs"] is True


def test_acomplete_errors_are_translated(api: respx.MockRouter, client: openai.OpenAI) -> None:
    api.post("/chat/completions").respond(
        401,
        json=error_body(
            "Incorrect API key provided", type_="invalid_request_error", code="invalid_api_key"
        ),
    )

    async def run() -> None:
        async with openai.AsyncOpenAI(
            api_key="sk-bad", base_url=API, http_client=httpx.AsyncClient(), max_retries=0  # type: ignore[arg-type]
        ) as async_client:
            await OpenAIChatModel(
                "gpt-4.1-mini", client=client, async_client=async_client
            ).acomplete(MESSAGES)

    with pytest.raises(AuthenticationError):
        asyncio.run(run())


def test_acomplete_without_async_client_is_a_config_error(client: openai.OpenAI) -> None:
    model = OpenAIChatModel("gpt-4.1-mini", client=client)
    with pytest.raises(ConfigError, match="async_client=make_async_client"):
        asyncio.run(model.acomplete(MESSAGES))


def test_constructor_rejects_bad_settings(client: openai.OpenAI) -> None:
    with pytest.raises(ConfigError):
        OpenAIChatModel("", client=client)
    with pytest.raises(ConfigError):
        OpenAIChatModel("gpt-4.1-mini", client=client, default_max_tokens=0)


# --------------------------------------------------------------------------- stream


def test_stream_yields_deltas_then_reported_usage(
    api: respx.MockRouter, client: openai.OpenAI
) -> None:
    route = api.post("/chat/completions").mock(return_value=sse(*stream_events(with_usage=True)))
    stream = OpenAIChatModel("gpt-4.1-mini", client=client).stream(MESSAGES, max_tokens=32)

    assert stream.completion is None
    assert list(stream) == ["Within", " 30", " days."]

    body = sent(route)
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 32 and body["model"] == "gpt-4.1-mini"
    completion = stream.completion
    assert completion is not None
    assert completion.text == "Within 30 days."
    assert completion.finish_reason == "stop"
    assert completion.usage.source == "reported"
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (57, 6)


def test_stream_without_usage_chunk_is_estimated(
    api: respx.MockRouter, client: openai.OpenAI, tokens: ModuleType
) -> None:
    api.post("/chat/completions").mock(return_value=sse(*stream_events(with_usage=False)))
    stream = OpenAIChatModel("gpt-4.1-mini", client=client).stream(MESSAGES)
    assert "".join(stream) == "Within 30 days."
    assert stream.completion is not None
    usage = stream.completion.usage
    assert usage.source == "estimated"
    assert usage.input_tokens == tokens.count_chat_tokens(MESSAGES, "gpt-4.1-mini")
    assert usage.output_tokens == tokens.count_tokens("Within 30 days.", "gpt-4.1-mini")


def test_stream_error_event_midway_is_a_model_error(
    api: respx.MockRouter, client: openai.OpenAI
) -> None:
    events = [
        chunk({"content": "Within"}),
        {
            "error": {
                "message": "The server had an error while processing your request.",
                "type": "server_error",
            }
        },
    ]
    api.post("/chat/completions").mock(return_value=sse(*events, done=False))
    stream = OpenAIChatModel("gpt-4.1-mini", client=client).stream(MESSAGES)
    received = []
    with pytest.raises(ModelError, match="server had an error"):
        for delta in stream:
            received.append(delta)
    assert received == ["Within"]
    assert stream.completion is None


def test_stream_http_error_surfaces_when_the_stream_starts(
    api: respx.MockRouter, client: openai.OpenAI
) -> None:
    api.post("/chat/completions").respond(
        429, json=error_body("Rate limit reached", type_="requests", code="rate_limit_exceeded")
    )
    with pytest.raises(RateLimitError):
        OpenAIChatModel("gpt-4.1-mini", client=client).stream(MESSAGES)


def test_stream_closed_early_leaves_no_completion(
    api: respx.MockRouter, client: openai.OpenAI
) -> None:
    api.post("/chat/completions").mock(return_value=sse(*stream_events(with_usage=True)))
    with OpenAIChatModel("gpt-4.1-mini", client=client).stream(MESSAGES) as stream:
        assert next(iter(stream)) == "Within"
    assert stream.completion is None
    assert list(stream) == []


def test_stream_with_malformed_chunk_is_a_response_error(
    api: respx.MockRouter, client: openai.OpenAI
) -> None:
    body = b'data: {"id": "x", "choices": [\n\n'
    api.post("/chat/completions").respond(
        200, headers={"content-type": "text/event-stream"}, content=body
    )
    stream = OpenAIChatModel("gpt-4.1-mini", client=client).stream(MESSAGES)
    with pytest.raises(ModelResponseError):
        list(stream)


# --------------------------------------------------------------------------- errors


def test_401_is_an_authentication_error_that_names_the_fix(
    api: respx.MockRouter, client: openai.OpenAI
) -> None:
    api.post("/chat/completions").respond(
        401,
        json=error_body(
            "Incorrect API key provided: sk-test. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            type_="invalid_request_error",
            code="invalid_api_key",
        ),
    )
    with pytest.raises(AuthenticationError) as info:
        OpenAIChatModel("gpt-4.1-mini", client=client).complete(MESSAGES)
    err = info.value
    assert err.status_code == 401 and err.model == "gpt-4.1-mini"
    assert "OPENAI_API_KEY" in str(err) and "api_key_env" in str(err) and "[backend]" in str(err)
    assert "Incorrect API key" in str(err)
    assert isinstance(err.__cause__, openai.AuthenticationError)


def test_404_model_not_found_names_the_model(api: respx.MockRouter, client: openai.OpenAI) -> None:
    api.post("/chat/completions").respond(
        404,
        json=error_body(
            "The model `gpt-9-turbo` does not exist or you do not have access to it.",
            type_="invalid_request_error",
            code="model_not_found",
        ),
    )
    with pytest.raises(ModelNotFoundError) as info:
        OpenAIChatModel("gpt-9-turbo", client=client).complete(MESSAGES)
    err = info.value
    assert isinstance(err, KeyError)  # callers may treat it as a missing name
    assert str(err).startswith("model 'gpt-9-turbo' was not found")  # not KeyError's repr
    assert (err.status_code, err.model) == (404, "gpt-9-turbo")


def test_model_not_found_code_on_a_400_is_still_model_not_found(
    api: respx.MockRouter, client: openai.OpenAI
) -> None:
    api.post("/chat/completions").respond(
        400,
        json=error_body(
            "Model not found ft:gpt-4.1-mini:acme::x1",
            type_="invalid_request_error",
            code="model_not_found",
        ),
    )
    with pytest.raises(ModelNotFoundError):
        OpenAIChatModel("ft:gpt-4.1-mini:acme::x1", client=client).complete(MESSAGES)


def test_429_without_retries_is_a_rate_limit_error(
    api: respx.MockRouter, client: openai.OpenAI
) -> None:
    route = api.post("/chat/completions").respond(
        429,
        headers={"retry-after-ms": "1"},
        json=error_body(
            "Rate limit reached for gpt-4.1-mini on tokens per min (TPM)",
            type_="tokens",
            code="rate_limit_exceeded",
        ),
    )
    with pytest.raises(RateLimitError) as info:
        OpenAIChatModel("gpt-4.1-mini", client=client).complete(MESSAGES)
    assert info.value.status_code == 429
    assert "Rate limit reached" in str(info.value)
    assert route.call_count == 1


def test_429_is_retried_by_the_sdk_then_succeeds(api: respx.MockRouter) -> None:
    route = api.post("/chat/completions").mock(
        side_effect=[
            httpx.Response(
                429,
                headers={"retry-after-ms": "1"},
                json=error_body("Rate limit reached", type_="requests", code="rate_limit_exceeded"),
            ),
            httpx.Response(200, json=chat_payload()),
        ]
    )
    with retrying_client(1) as client:
        result = OpenAIChatModel("gpt-4.1-mini", client=client).complete(MESSAGES)
    assert result.text.startswith("Refunds")
    assert route.call_count == 2


def test_insufficient_quota_says_to_add_credits(
    api: respx.MockRouter, client: openai.OpenAI
) -> None:
    api.post("/chat/completions").respond(
        429,
        json=error_body(
            "You exceeded your current quota.",
            type_="insufficient_quota",
            code="insufficient_quota",
        ),
    )
    with pytest.raises(RateLimitError, match="add credits"):
        OpenAIChatModel("gpt-4.1-mini", client=client).complete(MESSAGES)


def test_500_after_retries_is_unavailable(api: respx.MockRouter) -> None:
    route = api.post("/chat/completions").respond(
        500,
        headers={"retry-after-ms": "1"},
        json=error_body(
            "The server had an error while processing your request.",
            type_="server_error",
            code=None,
        ),
    )
    with retrying_client(1) as client, pytest.raises(ModelUnavailableError) as info:
        OpenAIChatModel("gpt-4.1-mini", client=client).complete(MESSAGES)
    assert info.value.status_code == 500
    assert route.call_count == 2


def test_501_not_implemented_is_not_reported_as_transient(
    api: respx.MockRouter, client: openai.OpenAI
) -> None:
    api.post("/chat/completions").respond(
        501,
        json={
            "error": {
                "code": 501,
                "message": "This server does not support embeddings.",
                "type": "not_supported_error",
            }
        },
    )
    with pytest.raises(ModelError) as info:
        OpenAIChatModel("local", client=client).complete(MESSAGES)
    assert type(info.value) is ModelError
    assert "does not implement" in str(info.value)


def test_timeout_is_a_model_timeout_error(api: respx.MockRouter, client: openai.OpenAI) -> None:
    api.post("/chat/completions").mock(side_effect=httpx.ReadTimeout("read timed out"))
    with pytest.raises(ModelTimeoutError) as info:
        OpenAIChatModel("gpt-4.1-mini", client=client).complete(MESSAGES)
    assert isinstance(info.value, TimeoutError)
    assert info.value.status_code is None and info.value.model == "gpt-4.1-mini"


def test_connection_failure_is_unavailable(api: respx.MockRouter, client: openai.OpenAI) -> None:
    api.post("/chat/completions").mock(side_effect=httpx.ConnectError("connection refused"))
    with pytest.raises(ModelUnavailableError, match="base_url"):
        OpenAIChatModel("gpt-4.1-mini", client=client).complete(MESSAGES)


def test_400_is_a_model_error_carrying_the_api_message(
    api: respx.MockRouter, client: openai.OpenAI
) -> None:
    message = (
        "This model's maximum context length is 128000 tokens. However, your messages "
        "resulted in 130012 tokens. Please reduce the length of the messages."
    )
    api.post("/chat/completions").respond(
        400, json=error_body(message, type_="invalid_request_error", code="context_length_exceeded")
    )
    with pytest.raises(ModelError) as info:
        OpenAIChatModel("gpt-4.1-mini", client=client).complete(MESSAGES)
    assert type(info.value) is ModelError
    assert message in str(info.value)
    assert info.value.status_code == 400


@pytest.mark.parametrize(
    ("response", "match"),
    [
        (
            httpx.Response(200, json={k: v for k, v in chat_payload().items() if k != "choices"}),
            "no choices",
        ),
        (httpx.Response(200, json={**chat_payload(), "choices": []}), "no choices"),
        (
            httpx.Response(
                200, json={**chat_payload(), "choices": [{"index": 0, "finish_reason": "stop"}]}
            ),
            "no message",
        ),
        (httpx.Response(200, json=chat_payload(None)), "no content"),
        (
            httpx.Response(200, json=chat_payload(None, refusal="I can't help with that.")),
            "refused: I can't help",
        ),
        (
            httpx.Response(
                200, json=chat_payload(usage={"prompt_tokens": "many", "completion_tokens": 3})
            ),
            "not a token count",
        ),
        (
            httpx.Response(
                200,
                json=chat_payload(
                    usage={
                        "prompt_tokens": 5,
                        "completion_tokens": 3,
                        "prompt_tokens_details": {"cached_tokens": 9},
                    }
                ),
            ),
            "inconsistent usage",
        ),
        (
            httpx.Response(
                200,
                headers={"content-type": "application/json"},
                content=b'{"id": "chatcmpl-1", "choi',
            ),
            "malformed",
        ),
        (
            httpx.Response(
                200, headers={"content-type": "text/html"}, content=b"<html>502 Bad Gateway</html>"
            ),
            "expected a chat.completion",
        ),
        (httpx.Response(200, json=[1, 2, 3]), "expected a chat.completion"),
    ],
    ids=[
        "no-choices",
        "empty-choices",
        "no-message",
        "null-content",
        "refusal",
        "bad-usage",
        "cached-over-prompt",
        "truncated-json",
        "html",
        "json-list",
    ],
)
def test_malformed_payloads_are_response_errors(
    api: respx.MockRouter, client: openai.OpenAI, response: httpx.Response, match: str
) -> None:
    api.post("/chat/completions").mock(return_value=response)
    with pytest.raises(ModelResponseError, match=match) as info:
        OpenAIChatModel("gpt-4.1-mini", client=client).complete(MESSAGES)
    assert info.value.model == "gpt-4.1-mini"


def test_every_error_is_a_ragft_error(api: respx.MockRouter, client: openai.OpenAI) -> None:
    api.post("/chat/completions").respond(
        403,
        json=error_body("Project does not have access", type_="invalid_request_error", code=None),
    )
    with pytest.raises(RagftError) as info:
        OpenAIChatModel("gpt-4.1-mini", client=client).complete(MESSAGES)
    assert info.value.status_code == 403  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- embeddings


def unit(i: int, dim: int) -> list[float]:
    """A distinct, deliberately unnormalised vector for input ``i``."""
    v = [0.0] * dim
    v[i % dim] = 3.0
    v[(i + 1) % dim] = 4.0
    return v


def test_embedder_satisfies_the_protocol(client: openai.OpenAI) -> None:
    embedder = OpenAIEmbedder("text-embedding-3-small", client=client)
    assert isinstance(embedder, Embedder)
    assert (embedder.name, embedder.dimension) == ("text-embedding-3-small", 1536)
    assert OpenAIEmbedder("text-embedding-3-large", client=client).dimension == 3072
    assert OpenAIEmbedder("text-embedding-ada-002", client=client).dimension == 1536


def test_embed_returns_normalised_float32_rows_in_input_order(
    api: respx.MockRouter, client: openai.OpenAI, tokens: ModuleType
) -> None:
    dim = 1536
    vectors = [unit(i, dim) for i in range(3)]
    route = api.post("/embeddings").respond(
        json=embedding_payload(vectors, order=[2, 0, 1], prompt_tokens=11)
    )
    texts = ["refund policy", "shipping times", "warranty terms"]

    result = OpenAIEmbedder("text-embedding-3-small", client=client).embed(texts, kind="query")

    assert sent(route) == {
        "model": "text-embedding-3-small",
        "input": texts,
        "encoding_format": "float",
    }
    assert result.vectors.dtype == np.float32 and result.vectors.shape == (3, dim)
    np.testing.assert_allclose(np.linalg.norm(result.vectors, axis=1), 1.0, rtol=1e-6)
    for i in range(3):
        expected = np.asarray(vectors[i]) / 5.0
        np.testing.assert_allclose(result.vectors[i], expected, rtol=1e-6)
    usage = result.usage
    assert (usage.model, usage.kind, usage.source) == (
        "text-embedding-3-small",
        "embedding",
        "reported",
    )
    assert usage.embedding_tokens == 11 and usage.input_tokens == 0


def test_smaller_dimension_is_requested_from_v3_models(
    api: respx.MockRouter, client: openai.OpenAI, tokens: ModuleType
) -> None:
    route = api.post("/embeddings").respond(
        json=embedding_payload([unit(0, 256)], model="text-embedding-3-large")
    )
    embedder = OpenAIEmbedder("text-embedding-3-large", client=client, dimension=256)
    result = embedder.embed(["hello"])
    assert sent(route)["dimensions"] == 256
    assert embedder.dimension == 256 and result.vectors.shape == (1, 256)


def test_native_dimension_is_not_sent(
    api: respx.MockRouter, client: openai.OpenAI, tokens: ModuleType
) -> None:
    route = api.post("/embeddings").respond(json=embedding_payload([unit(0, 1536)]))
    OpenAIEmbedder("text-embedding-3-small", client=client, dimension=1536).embed(["hello"])
    assert "dimensions" not in sent(route)


def test_unknown_models_need_a_dimension_and_do_not_get_dimensions_sent(
    client: openai.OpenAI, tokens: ModuleType
) -> None:
    with pytest.raises(ConfigError, match="pass dimension="):
        OpenAIEmbedder("nomic-embed-text", client=client)
    with respx.mock(base_url=API) as router:
        route = router.post("/embeddings").respond(
            json=embedding_payload([unit(0, 768)], model="nomic-embed-text")
        )
        result = OpenAIEmbedder("nomic-embed-text", client=client, dimension=768).embed(["hi"])
    assert "dimensions" not in sent(route)
    assert result.vectors.shape == (1, 768)


@pytest.mark.parametrize(
    ("model", "kwargs", "match"),
    [
        ("text-embedding-ada-002", {"dimension": 512}, "cannot shorten"),
        ("text-embedding-3-small", {"dimension": 2048}, "is larger"),
        ("text-embedding-3-small", {"dimension": 0}, "dimension must be"),
        ("text-embedding-3-small", {"batch_size": 0}, "batch_size"),
        ("text-embedding-3-small", {"batch_size": 4096}, "batch_size"),
        ("text-embedding-3-small", {"max_tokens_per_input": 0}, "max_tokens_per_input"),
        ("text-embedding-3-small", {"max_tokens_per_request": 100}, "max_tokens_per_request"),
        ("", {}, "model id"),
    ],
)
def test_embedder_rejects_bad_settings(
    client: openai.OpenAI, model: str, kwargs: dict[str, int], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        OpenAIEmbedder(model, client=client, **kwargs)


def test_inputs_are_split_into_batches_by_count(
    api: respx.MockRouter, client: openai.OpenAI, tokens: ModuleType
) -> None:
    dim = 8
    texts = [f"document number {i}" for i in range(5)]
    replies = [
        httpx.Response(
            200,
            json=embedding_payload(
                [unit(0, dim), unit(1, dim)], order=[1, 0], prompt_tokens=6, model="m"
            ),
        ),
        httpx.Response(
            200, json=embedding_payload([unit(2, dim), unit(3, dim)], prompt_tokens=6, model="m")
        ),
        httpx.Response(200, json=embedding_payload([unit(4, dim)], prompt_tokens=3, model="m")),
    ]
    route = api.post("/embeddings").mock(side_effect=replies)

    # One request at a time: the replies above are handed out in order.
    result = OpenAIEmbedder("m", client=client, dimension=dim, batch_size=2, concurrency=1).embed(
        texts
    )

    assert [sent(route, i)["input"] for i in range(3)] == [texts[0:2], texts[2:4], texts[4:5]]
    for i in range(5):
        np.testing.assert_allclose(result.vectors[i], np.asarray(unit(i, dim)) / 5.0, rtol=1e-6)
    assert result.usage.embedding_tokens == 15 and result.usage.source == "reported"


def test_a_failed_later_batch_still_meters_the_batches_already_billed(
    api: respx.MockRouter, client: openai.OpenAI, tokens: ModuleType
) -> None:
    from ragft.metering.meter import Meter

    dim = 8
    api.post("/embeddings").mock(side_effect=[
        httpx.Response(200, json=embedding_payload([unit(0, dim), unit(1, dim)], prompt_tokens=6,
                                                   model="text-embedding-3-small")),
        httpx.Response(500, json={"error": {"message": "boom", "type": "server_error"}}),
    ])
    meter = Meter()
    embedder = meter.embedder(OpenAIEmbedder("text-embedding-3-small", client=client, dimension=dim,
                                             batch_size=2, concurrency=1))
    with pytest.raises(ModelUnavailableError) as err:
        embedder.embed(["a b", "c d", "e f"])
    assert err.value.partial_usage is not None
    (record,) = meter.records
    assert record.usage.embedding_tokens == 6 and record.cost_usd == pytest.approx(6 * 0.02 / 1e6)


def test_inputs_are_split_into_batches_by_tokens(
    api: respx.MockRouter, client: openai.OpenAI, tokens: ModuleType
) -> None:
    dim = 4
    texts = ["alpha beta gamma delta"] * 4  # same count each, whatever the encoding
    n = tokens.count_tokens(texts[0], "text-embedding-3-small")
    sizes: list[int] = []

    def reply(request: httpx.Request) -> httpx.Response:
        inputs = json.loads(request.content)["input"]
        sizes.append(len(inputs))
        return httpx.Response(
            200,
            json=embedding_payload(
                [unit(i, dim) for i in range(len(inputs))], prompt_tokens=n * len(inputs)
            ),
        )

    api.post("/embeddings").mock(side_effect=reply)
    embedder = OpenAIEmbedder(
        "text-embedding-3-small",
        client=client,
        dimension=dim,
        max_tokens_per_input=n,
        max_tokens_per_request=2 * n + 1,
    )
    # dimension=4 < 1536 for a v3 model is sent as dimensions=4; fine for the mock.
    result = embedder.embed(texts)
    assert sizes == [2, 2]
    assert result.usage.embedding_tokens == 4 * n


def test_over_long_input_raises_naming_index_and_count_without_calling_the_api(
    api: respx.MockRouter, client: openai.OpenAI, tokens: ModuleType
) -> None:
    route = api.post("/embeddings").respond(json=embedding_payload([unit(0, 1536)]))
    long_text = "refund " * 50
    n = tokens.count_tokens(long_text, "text-embedding-3-small")
    embedder = OpenAIEmbedder("text-embedding-3-small", client=client, max_tokens_per_input=20)
    with pytest.raises(ModelError, match=rf"input 1 has {n} tokens, over .* limit of 20") as info:
        embedder.embed(["short", long_text])
    assert info.value.model == "text-embedding-3-small"
    assert route.call_count == 0


def test_empty_input_raises_naming_its_index(client: openai.OpenAI, tokens: ModuleType) -> None:
    with pytest.raises(ModelError, match="input 2 is empty"):
        OpenAIEmbedder("text-embedding-3-small", client=client).embed(["a", "b", ""])


def test_a_single_string_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(TypeError, match="not a single str"):
        OpenAIEmbedder("text-embedding-3-small", client=client).embed("refund policy")


def test_no_texts_means_no_request(
    api: respx.MockRouter, client: openai.OpenAI, tokens: ModuleType
) -> None:
    route = api.post("/embeddings").respond(json=embedding_payload([]))
    result = OpenAIEmbedder("text-embedding-3-small", client=client).embed([])
    assert result.vectors.shape == (0, 1536) and result.vectors.dtype == np.float32
    assert result.usage.embedding_tokens == 0
    assert route.call_count == 0


def test_missing_embedding_usage_is_estimated(
    api: respx.MockRouter, client: openai.OpenAI, tokens: ModuleType
) -> None:
    api.post("/embeddings").respond(
        json=embedding_payload([unit(0, 1536), unit(1, 1536)], prompt_tokens=None)
    )
    texts = ["refund policy", "shipping"]
    result = OpenAIEmbedder("text-embedding-3-small", client=client).embed(texts)
    assert result.usage.source == "estimated"
    assert result.usage.embedding_tokens == sum(
        tokens.count_tokens(t, "text-embedding-3-small") for t in texts
    )


def test_zero_vectors_stay_zero(
    api: respx.MockRouter, client: openai.OpenAI, tokens: ModuleType
) -> None:
    api.post("/embeddings").respond(json=embedding_payload([[0.0] * 4], model="m"))
    result = OpenAIEmbedder("m", client=client, dimension=4).embed(["x"])
    assert np.array_equal(result.vectors, np.zeros((1, 4), dtype=np.float32))


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (embedding_payload([unit(0, 4)], model="m"), "sent 2 inputs, got 1"),
        (embedding_payload([unit(0, 3), unit(1, 3)], model="m"), "length 4"),
        (
            {
                **embedding_payload([unit(0, 4), unit(1, 4)], model="m"),
                "data": [
                    {"object": "embedding", "index": 0, "embedding": unit(0, 4)},
                    {"object": "embedding", "index": 0, "embedding": unit(1, 4)},
                ],
            },
            "indices",
        ),
        (
            {
                **embedding_payload([unit(0, 4), unit(1, 4)], model="m"),
                "data": [
                    {"object": "embedding", "index": 0, "embedding": unit(0, 4)},
                    {"object": "embedding", "index": 1, "embedding": "AAAA"},
                ],
            },
            "numeric",
        ),
        ({"object": "list", "model": "m"}, "got no embeddings"),
    ],
    ids=["too-few", "wrong-dimension", "duplicate-index", "base64-not-floats", "no-data"],
)
def test_malformed_embedding_responses(
    api: respx.MockRouter,
    client: openai.OpenAI,
    tokens: ModuleType,
    payload: dict[str, Any],
    match: str,
) -> None:
    api.post("/embeddings").respond(json=payload)
    with pytest.raises(ModelResponseError, match=match):
        OpenAIEmbedder("m", client=client, dimension=4).embed(["a", "b"])


def test_embedding_errors_are_translated(
    api: respx.MockRouter, client: openai.OpenAI, tokens: ModuleType
) -> None:
    api.post("/embeddings").respond(
        404,
        json=error_body(
            "The model `text-embedding-4` does not exist",
            type_="invalid_request_error",
            code="model_not_found",
        ),
    )
    with pytest.raises(ModelNotFoundError, match="text-embedding-4"):
        OpenAIEmbedder("text-embedding-4", client=client, dimension=8).embed(["x"])
