"""OpenAIEmbedder sending its batches concurrently: the real SDK against respx-mocked HTTP.

Requests are held in the mock with barriers and events, so the tests observe overlap and
completion order directly; the waits' timeouts only stop a broken build from hanging.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import numpy as np
import openai
import pytest
import respx

from ragft.components import build_base_embedder
from ragft.config import load_config
from ragft.errors import ConfigError, ModelUnavailableError, RateLimitError
from ragft.metering.meter import Meter
from ragft.models.openai import OpenAIEmbedder
from ragft.rag.documents import Document
from ragft.rag.knowledge import EMBED_BATCH, KnowledgeBase

API = "https://api.openai.com/v1"
DIM = 8
GUARD_S = 10.0  # a deadlock guard, not a speed target


def unit(i: int) -> list[float]:
    """A distinct, unnormalised vector for text number ``i``."""
    v = [0.0] * DIM
    v[i % DIM] = 3.0
    v[(i + 1) % DIM] = 4.0
    return v


def texts(n: int) -> list[str]:
    return [f"text {i}" for i in range(n)]


def numbers(request: httpx.Request) -> list[int]:
    """The text numbers one embeddings request carries."""
    inputs = json.loads(request.content)["input"]
    return [int(re.search(r"text (\d+)$", t).group(1)) for t in inputs]  # type: ignore[union-attr]


def reply(nums: list[int], tokens_per_text: int = 3) -> httpx.Response:
    """Vectors for ``nums``, listed in reverse (the API may answer out of order)."""
    data = [{"object": "embedding", "index": j, "embedding": unit(n)} for j, n in enumerate(nums)]
    return httpx.Response(200, json={
        "object": "list", "data": data[::-1], "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": tokens_per_text * len(nums),
                  "total_tokens": tokens_per_text * len(nums)},
    })


def assert_rows(vectors: np.ndarray, n: int) -> None:
    assert vectors.shape == (n, DIM)
    for i in range(n):
        np.testing.assert_allclose(vectors[i], np.asarray(unit(i)) / 5.0, rtol=1e-6)


def embedder(client: openai.OpenAI, **kwargs: Any) -> OpenAIEmbedder:
    return OpenAIEmbedder("text-embedding-3-small", client=client, dimension=DIM, **kwargs)


def retrying_client(max_retries: int) -> openai.OpenAI:
    return openai.OpenAI(
        api_key="sk-test", base_url=API, http_client=httpx.Client(), max_retries=max_retries  # type: ignore[arg-type]
    )


def test_batches_overlap_up_to_the_limit_and_never_beyond(
    api: respx.MockRouter, client: openai.OpenAI, tokens: ModuleType
) -> None:
    # Each request waits until three are in flight: with fewer the barrier would break, and a
    # fourth concurrent request would show in the high-water mark.
    barrier = threading.Barrier(3, timeout=GUARD_S)
    lock = threading.Lock()
    in_flight, most = 0, 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        barrier.wait()
        with lock:
            in_flight -= 1
        return reply(numbers(request))

    route = api.post("/embeddings").mock(side_effect=handler)
    result = embedder(client, batch_size=2, concurrency=3).embed(texts(18))

    assert route.call_count == 9 and most == 3
    assert_rows(result.vectors, 18)
    assert result.usage.embedding_tokens == 18 * 3 and result.usage.source == "reported"


def test_rows_keep_input_order_when_batches_finish_out_of_order(
    api: respx.MockRouter, client: openai.OpenAI, tokens: ModuleType
) -> None:
    # The first batch answers only after every other batch has.
    others_done = threading.Event()
    lock = threading.Lock()
    answered: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        nums = numbers(request)
        if nums[0] == 0:
            assert others_done.wait(GUARD_S)
        with lock:
            answered.append(nums[0])
            if len(answered) == 3:
                others_done.set()
        return reply(nums)

    api.post("/embeddings").mock(side_effect=handler)
    result = embedder(client, batch_size=3, concurrency=4).embed(texts(12))

    assert answered[-1] == 0 and sorted(answered) == [0, 3, 6, 9]
    assert_rows(result.vectors, 12)


def test_a_rate_limited_batch_is_retried_alone(
    api: respx.MockRouter, tokens: ModuleType
) -> None:
    lock = threading.Lock()
    sends: dict[int, int] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        first = numbers(request)[0]
        with lock:
            sends[first] = sends.get(first, 0) + 1
            limited = first == 4 and sends[first] == 1
        if limited:  # the SDK waits retry-after-ms, then resends this batch only
            return httpx.Response(
                429, headers={"retry-after-ms": "10"},
                json={"error": {"message": "Rate limit reached", "type": "requests",
                                "param": None, "code": "rate_limit_exceeded"}},
            )
        return reply(numbers(request))

    api.post("/embeddings").mock(side_effect=handler)
    with retrying_client(2) as client:
        result = embedder(client, batch_size=2, concurrency=4).embed(texts(8))

    assert sends == {0: 1, 2: 1, 4: 2, 6: 1}
    assert_rows(result.vectors, 8)
    assert result.usage.embedding_tokens == 8 * 3  # the refused attempt is not billed


def test_a_batch_failing_for_good_stops_new_batches_and_meters_the_billed_ones(
    api: respx.MockRouter, tokens: ModuleType
) -> None:
    # Batch 1 stays rate limited through the SDK's retry; batch 0 answers only after that.
    failed = threading.Event()
    lock = threading.Lock()
    billed: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        nums = numbers(request)
        if nums[0] == 2:
            with lock:
                attempts = sum(1 for n in limited_attempts if n == 2)
                limited_attempts.append(2)
            if attempts == 1:
                failed.set()
            return httpx.Response(
                429, headers={"retry-after-ms": "1"},
                json={"error": {"message": "Rate limit reached", "type": "requests",
                                "param": None, "code": "rate_limit_exceeded"}},
            )
        if nums[0] == 0:
            assert failed.wait(GUARD_S)
        with lock:
            billed.append(3 * len(nums))
        return reply(nums)

    limited_attempts: list[int] = []
    route = api.post("/embeddings").mock(side_effect=handler)
    meter = Meter()
    with retrying_client(1) as client:
        metered = meter.embedder(embedder(client, batch_size=2, concurrency=2))
        with pytest.raises(RateLimitError, match="rate limited after retries") as err:
            metered.embed(texts(40))

    assert len(limited_attempts) == 2  # the failing batch: first try + one SDK retry
    assert route.call_count < 2 + 20 - 1  # not every remaining batch was sent
    partial = err.value.partial_usage
    assert partial is not None and partial.embedding_tokens == sum(billed) >= 6
    (record,) = meter.records
    assert record.usage.embedding_tokens == sum(billed)


def test_the_first_failed_batch_in_input_order_is_raised(
    api: respx.MockRouter, client: openai.OpenAI, tokens: ModuleType
) -> None:
    # Batches 1 and 2 both fail; batch 2 fails first, batch 1's error is the one raised.
    second_failed = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        first = numbers(request)[0]
        if first == 1:
            assert second_failed.wait(GUARD_S)
        elif first == 2:
            second_failed.set()
        else:
            return reply(numbers(request))
        return httpx.Response(500, json={"error": {"message": f"boom {first}",
                                                   "type": "server_error"}})

    api.post("/embeddings").mock(side_effect=handler)
    with pytest.raises(ModelUnavailableError, match="boom 1") as err:
        embedder(client, batch_size=1, concurrency=3).embed(texts(3))
    assert err.value.partial_usage is not None
    assert err.value.partial_usage.embedding_tokens == 3  # batch 0's


def test_concurrency_must_be_positive(client: openai.OpenAI) -> None:
    with pytest.raises(ConfigError, match="concurrency must be >= 1"):
        embedder(client, concurrency=0)
    assert embedder(client, batch_size=16, concurrency=5).texts_per_call == 80


def test_backend_concurrency_in_the_config_reaches_the_embedder() -> None:
    cfg = load_config(env={"OPENAI_API_KEY": "sk-test"},
                      overrides={"backend.concurrency": 7})
    built = build_base_embedder(cfg)
    assert isinstance(built, OpenAIEmbedder) and built.concurrency == 7


@pytest.mark.parametrize("metered", [False, True])
def test_a_knowledge_base_sync_keeps_every_concurrent_request_busy(
    api: respx.MockRouter, client: openai.OpenAI, tokens: ModuleType, tmp_path: Path, metered: bool
) -> None:
    # 4 requests of 64 texts are one embed() call's worth (texts_per_call = 256 > EMBED_BATCH):
    # all four must be in flight together.
    assert EMBED_BATCH < 256
    barrier = threading.Barrier(4, timeout=GUARD_S)

    def handler(request: httpx.Request) -> httpx.Response:
        barrier.wait()
        return reply(numbers(request))

    route = api.post("/embeddings").mock(side_effect=handler)
    inner = embedder(client, batch_size=64, concurrency=4)
    # As in a real run, the meter wraps the model (and the knowledge base its cache around that):
    # the slice size must still reach the knowledge base through both wrappers.
    wrapped = Meter().embedder(inner) if metered else inner
    kb = KnowledgeBase.open(tmp_path / "kb", wrapped, kind="flat", chunk_tokens=64, chunk_overlap=8)
    docs = [Document(id=f"d{i}", title="", text=f"text {i}") for i in range(256)]
    report = kb.sync_documents(docs, progress=False)

    assert route.call_count == 4 and len(kb) == 256
    assert report.usage.embedding_tokens == 256 * 3
