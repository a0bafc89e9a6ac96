"""Training and serving prompts are one contract: the messages a fine-tuning example teaches
are exactly the messages the strategy sends the tuned model (real OpenAI SDK, HTTP on respx)."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import respx

from ragft import prompts
from ragft.finetune.data import generator_examples, rewriter_examples, router_examples
from ragft.metering.meter import Meter
from ragft.models.openai import OpenAIChatModel
from ragft.strategies import RAG, FineTuned, RewriteRAG, TrainedClassifier

API = "https://api.openai.com/v1"
FT = "ft:gpt-4.1-mini-2025-04-14:northwind:tuned:abc123"


@pytest.fixture
def sent() -> Iterator[list[dict]]:
    """Every chat request body the SDK sends; the model replies ``"creative"``."""
    bodies: list[dict] = []

    def reply(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json={
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1764400000, "model": FT,
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": "creative"}}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 1, "total_tokens": 31},
        })

    with respx.mock(base_url=API, assert_all_mocked=True) as router:
        router.post("/chat/completions").mock(side_effect=reply)
        yield bodies


@pytest.fixture
def model() -> Iterator[OpenAIChatModel]:
    with openai.OpenAI(api_key="sk-test", base_url=API, http_client=httpx.Client(),  # type: ignore[arg-type]
                       max_retries=0) as client:
        yield OpenAIChatModel(FT, client=client)


def _prompt_of(example: dict) -> list[dict]:
    """A training example's messages without the reply it teaches."""
    assert example["messages"][-1]["role"] == "assistant"
    return example["messages"][:-1]


class _NoRetrieval:
    def retrieve(self, query: str, *, top_k: int | None = None) -> list:
        return []


def test_the_finetuned_strategy_sends_the_generator_training_prompt(sent, model) -> None:
    question = "How do I request a new laptop?"
    trained = generator_examples([{"question": question, "answer": "Open a ticket."}])[0]
    FineTuned(model, meter=Meter()).answer(question)
    assert sent[0]["messages"] == _prompt_of(trained)


def test_the_rewriter_is_sent_its_training_prompt(sent, model) -> None:
    query = "cab money back?"
    trained = rewriter_examples([{"query": query, "rewrite": "taxi reimbursement"}])[0]
    meter = Meter()
    RewriteRAG(model, RAG(_NoRetrieval(), model, meter=meter), meter=meter).answer(query)
    assert sent[0]["messages"] == _prompt_of(trained)


def test_the_trained_router_is_sent_its_training_prompt(sent, model) -> None:
    labels = ["factual", "procedural", "creative", "out_of_scope"]
    query = "Write a haiku about Mondays"
    trained = router_examples([{"query": query, "label": "creative"}], labels)[0]
    verdict = TrainedClassifier(model, meter=Meter(), labels=labels).classify(query)
    assert sent[0]["messages"] == _prompt_of(trained)
    assert verdict.label == "creative"


def test_the_rag_prompt_asks_for_the_exact_abstention_text() -> None:
    assert f'reply exactly: "{prompts.ABSTAIN_TEXT}"' in prompts.RAG_SYSTEM


def test_the_prompts_module_imports_nothing() -> None:
    tree = ast.parse(Path(prompts.__file__).read_text("utf-8"))
    assert not [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]
