"""Fixtures for the evaluation tests: a scripted chat model with real token usage, a tiny real
knowledge base, and real strategies (FineTuned, RAG, Cascade) built around them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from ragft.answer import Usage
from ragft.eval.questions import Question
from ragft.metering.meter import Ledger, Meter
from ragft.tokens import count_chat_tokens, count_tokens
from ragft.models.base import Completion, Message
from ragft.models.context import split_question
from ragft.models.local import ABSTAIN_TEXT, HashingEmbedder
from ragft.rag.knowledge import KnowledgeBase
from ragft.strategies import RAG, Cascade, FineTuned

#: Fine-tuned id, priced at gpt-4.1-mini's fine-tuned rates ($0.80 in / $3.20 out per 1M).
FT_MODEL = "ft:gpt-4.1-mini-2025-04-14:acme:support:abc123"
#: Base model, priced at $0.40 in / $1.60 out per 1M.
BASE_MODEL = "gpt-4.1-mini"

CORPUS: dict[str, str] = {
    "policies/travel.md": (
        "# Travel Policy\n\n## Meals\n\nThe meal per diem is $75 per day. Alcohol is never "
        "reimbursed.\n"
    ),
    "policies/leave.md": "# Leave Policy\n\n## Parental leave\n\nNew parents get 20 weeks of paid leave.\n",
    "product/webhooks.md": (
        "# Webhooks\n\nFailed deliveries are retried with exponential backoff for up to 24 hours.\n"
    ),
}

QUESTIONS: tuple[Question, ...] = (
    Question("t1", "What is the meal per diem?", "$75 per day", (), ("policies/travel.md",), "factual"),
    Question("t2", "How many weeks of parental leave do new parents get?", "20 weeks",
             ("twenty weeks",), ("policies/leave.md",), "factual"),
    Question("t3", "Can I bring my dog to the office?", "", (), (), "out_of_scope"),
    Question("t4", "How are failed webhook deliveries retried?",
             "with exponential backoff for up to 24 hours", (), ("product/webhooks.md",), "procedural"),
)


class ScriptedChat:
    """A real ChatModel: replies are looked up by a keyword of the question; usage is what the
    API would report (tiktoken counts of the prompt and reply). A reply that is an exception
    instance is raised instead (a model failing on that question)."""

    def __init__(self, name: str, replies: Mapping[str, str | Exception], *,
                 confidences: Mapping[str, float] | None = None, default: str = ABSTAIN_TEXT):
        self._name = name
        self.replies = dict(replies)
        self.confidences = dict(confidences or {})
        self.default = default
        self.calls = 0

    @property
    def name(self) -> str:
        return self._name

    def _key(self, question: str) -> str | None:
        return next((k for k in self.replies if k in question.lower()), None)

    def complete(self, messages: Sequence[Message], *, max_tokens: int | None = None,
                 temperature: float = 0.0, logprobs: bool = False) -> Completion:
        self.calls += 1
        question = split_question(messages[-1]["content"])
        key = self._key(question)
        reply = self.replies.get(key, self.default) if key else self.default
        if isinstance(reply, Exception):
            raise reply
        usage = Usage(
            model=self._name,
            input_tokens=count_chat_tokens(messages, self._name),
            output_tokens=count_tokens(reply, self._name),
        )
        score = self.confidences.get(key) if key else None
        return Completion(text=reply, usage=usage, model=self._name, score=score)


def write_corpus(root: Path, files: Mapping[str, str] = CORPUS) -> Path:
    """Write ``files`` under ``root``."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def scripted_chat() -> type[ScriptedChat]:
    """The :class:`ScriptedChat` class (test modules get helpers through fixtures)."""
    return ScriptedChat


@pytest.fixture
def questions() -> list[Question]:
    """Two factual, one out-of-scope and one procedural question over :data:`CORPUS`."""
    return list(QUESTIONS)


@pytest.fixture
def meter(tmp_path: Path) -> Meter:
    """A meter writing to a ledger file under ``tmp_path``."""
    return Meter(ledger=Ledger(tmp_path / "ledger.jsonl"))


@pytest.fixture
def knowledge_base(tmp_path: Path, meter: Meter) -> KnowledgeBase:
    """A real knowledge base over :data:`CORPUS` with the (free, instant) hashing embedder."""
    corpus = write_corpus(tmp_path / "docs")
    kb = KnowledgeBase.open(tmp_path / "index", meter.embedder(HashingEmbedder(128)),
                            chunk_tokens=64, chunk_overlap=8)
    kb.sync(corpus, progress=False)
    return kb


def ft_chat() -> ScriptedChat:
    """The 'fine-tuned model': confident on t1 and the dog question, unsure on t2 and t4."""
    return ScriptedChat(
        FT_MODEL,
        {
            "per diem": "The meal per diem is $75 per day.",
            "parental": "20 weeks",
            "dog": "Yes, dogs are welcome on Fridays.",
            "webhook": "They are retried with exponential backoff.",
        },
        confidences={"per diem": 0.95, "parental": 0.5, "dog": 0.9, "webhook": 0.3},
    )


def rag_chat() -> ScriptedChat:
    """The RAG generator: cites passage 1, abstains on the dog, fails on the webhook question."""
    return ScriptedChat(
        BASE_MODEL,
        {
            "per diem": "$75 per day [1]",
            "parental": "New parents get 20 weeks of paid leave. [1]",
            "dog": ABSTAIN_TEXT,
            "webhook": RuntimeError("generator backend crashed"),
        },
    )


@pytest.fixture
def make_strategies(knowledge_base: KnowledgeBase, meter: Meter) -> Callable[..., dict[str, object]]:
    """``make_strategies()`` -> {"finetuned", "rag", "cascade"} built on the shared meter."""

    def build(m: Meter | None = None) -> dict[str, object]:
        m = m or meter
        retriever = knowledge_base.retriever(mode="bm25", top_k=2)
        rag = RAG(retriever, rag_chat(), meter=m)
        finetuned = FineTuned(ft_chat(), meter=m)
        cascade = Cascade(FineTuned(ft_chat(), meter=m), RAG(retriever, rag_chat(), meter=m),
                          meter=m, threshold=0.8)
        return {"finetuned": finetuned, "rag": rag, "cascade": cascade}

    return build
