"""Fixtures for strategy tests: a real knowledge base over the sample corpus (hashing embedder,
so it builds in about a second), real local models, and real OpenAI SDK clients on respx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import respx

from ragft.metering.meter import Meter
from ragft.models.local import ExtractiveReader, HashingEmbedder
from ragft.models.local_ft import LocalGeneratorModel
from ragft.rag.knowledge import KnowledgeBase
from ragft.rag.retriever import Retriever

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "corpus" / "docs"
API = "https://api.openai.com/v1"


@pytest.fixture(scope="session")
def embedder() -> HashingEmbedder:
    return HashingEmbedder(256)


@pytest.fixture(scope="session")
def kb(tmp_path_factory: pytest.TempPathFactory, embedder: HashingEmbedder) -> KnowledgeBase:
    base = KnowledgeBase.open(tmp_path_factory.mktemp("kb") / "index", embedder)
    base.sync(CORPUS, progress=False)
    return base


@pytest.fixture
def meter() -> Meter:
    return Meter()


@pytest.fixture
def retriever(kb: KnowledgeBase, meter: Meter) -> Retriever:
    """Hybrid retriever whose query embeddings are metered by the test's meter."""
    return Retriever(kb.index, meter.embedder(kb.embedder), kb.bm25, mode="hybrid", top_k=4)


@pytest.fixture(scope="session")
def reader(embedder: HashingEmbedder) -> ExtractiveReader:
    return ExtractiveReader(embedder)


@pytest.fixture(scope="session")
def memory(embedder: HashingEmbedder) -> LocalGeneratorModel:
    """A local fine-tuned generator over a few trained Q/A pairs (calibration fixed by hand:
    a near-exact match scores ~0.95, an unrelated question ~0.05)."""
    questions = [
        "How do I request a new laptop?",
        "How do I rotate an API key?",
        "What should I do in my first week?",
    ]
    answers = [
        "Open a Hardware Request ticket in the IT portal; your manager approves it. (See: procedures/request_hardware.md)",
        "Create a new key, deploy it, then revoke the old key in Settings. (See: procedures/rotate_api_keys.md)",
        "Follow the onboarding checklist with your buddy. (See: procedures/onboarding_checklist.md)",
    ]
    vectors = embedder.embed(questions).vectors
    return LocalGeneratorModel(
        "local-ft:generator:test:job1", embedder, vectors, questions, answers, slope=12.0, intercept=-9.0
    )


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=API, assert_all_called=False, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
def client() -> Iterator[openai.OpenAI]:
    with openai.OpenAI(api_key="sk-test", base_url=API, http_client=httpx.Client(), max_retries=0) as c:  # type: ignore[arg-type]
        yield c


@pytest.fixture
def payload():
    """Builder of realistic chat.completion bodies (see :func:`chat_payload`)."""
    return chat_payload


def chat_payload(model: str, text: str, *, prompt: int, completion: int, cached: int = 0,
                 logprobs: list[float] | None = None) -> dict:
    """A realistic chat.completion response body."""
    content_lp = None
    if logprobs is not None:
        words = text.split() or [text]
        content_lp = [
            {"token": w, "logprob": lp, "bytes": list(w.encode()), "top_logprobs": []}
            for w, lp in zip(words, logprobs, strict=False)
        ]
    return {
        "id": "chatcmpl-AbC123",
        "object": "chat.completion",
        "created": 1764400000,
        "model": model,
        "system_fingerprint": "fp_1234abcd",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None, "annotations": []},
                "logprobs": None if content_lp is None else {"content": content_lp, "refusal": None},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        },
        "service_tier": "default",
    }


