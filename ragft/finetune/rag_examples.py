"""Training data for a generator over retrieved context (pattern 1, ``ft_rag``).

A tuned generator is only as good as the match between what it saw in training and what it is
sent at query time. Each example here is therefore built the way the RAG strategies build a
request: the question is retrieved against the knowledge base *at build time*, the hits are
packed with :func:`~ragft.models.context.pack_passages` and fenced with
:func:`~ragft.models.context.format_context` under the RAG system prompt. The assistant turn is

* a short answer citing the passage that contains it (``"10th and 11th centuries [2]"``), or
* exactly the abstention sentence, when the question is unanswerable **or** retrieval did not
  bring a passage holding the answer — so the model learns to say so instead of guessing.

``tests/finetune/test_rag_examples.py`` checks that the messages equal what ``RAG`` sends.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ragft.errors import TrainingDataError
from ragft.tokens import count_tokens
from ragft.models.context import Passage, format_context, pack_passages
from ragft.prompts import ABSTAIN_TEXT, RAG_SYSTEM
from ragft.metrics import normalize_answer

__all__ = [
    "RAG_GENERATOR_SYSTEM",
    "RagExampleStats",
    "SupportsRetrieve",
    "citing_passage",
    "rag_generator_examples",
]

#: The RAG strategies' system prompt (one contract in :mod:`ragft.prompts`).
RAG_GENERATOR_SYSTEM = RAG_SYSTEM

_SEE = re.compile(r"\s*\(See:\s*(?P<doc>[^)]+)\)\s*$")


class SupportsRetrieve(Protocol):
    """A retriever: ``retrieve(query, top_k=...)`` returns hits with ``.chunk.document_id``
    and ``.chunk.text`` (``ragft.rag.retriever.Retriever`` is one)."""

    def retrieve(self, query: str, *, top_k: int | None = None) -> Sequence[Any]:
        """Ranked hits for ``query``."""
        ...


@dataclass
class RagExampleStats:
    """What the build did: how many answers were cited, and why the others abstain."""

    answered: int = 0
    unanswerable: int = 0
    not_retrieved: int = 0
    lines_not_retrieved: list[int] = field(default_factory=list)

    @property
    def abstentions(self) -> int:
        """Examples whose assistant turn is the abstention sentence."""
        return self.unanswerable + self.not_retrieved

    def summary(self) -> str:
        """One line for the CLI."""
        return (
            f"{self.answered} cited answers, {self.abstentions} abstentions "
            f"({self.unanswerable} unanswerable, {self.not_retrieved} whose answer retrieval missed)"
        )


def _same_doc(a: str, b: str) -> bool:
    a, b = a.strip().lstrip("./"), b.strip().lstrip("./")
    return a == b or a.endswith("/" + b) or b.endswith("/" + a)


def citing_passage(
    passages: Sequence[Passage], golds: Sequence[str], sources: Sequence[str] = ()
) -> Passage | None:
    """The first passage that holds an answer: one whose text contains a gold answer
    (normalised as SQuAD scores), else one from a gold source document; ``None`` if none."""
    wanted = [f" {normalize_answer(g)} " for g in golds if normalize_answer(g)]
    for passage in passages:
        text = f" {normalize_answer(passage.text)} "  # padded: "10" must not match "100"
        if any(w in text for w in wanted):
            return passage
    for passage in passages:
        if any(_same_doc(passage.source, s) for s in sources):
            return passage
    return None


def _row(number: int, row: Mapping[str, Any]) -> tuple[str, str, list[str], list[str]]:
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise TrainingDataError(f"line {number}: 'question' is missing or empty")
    answer = row.get("answer") or ""
    if not isinstance(answer, str):
        raise TrainingDataError(f"line {number}: 'answer' must be a string ('' when unanswerable)")
    sources = [str(s) for s in row.get("sources") or ()]
    see = _SEE.search(answer)
    if see:  # corpus/finetune/qa_train.jsonl style: "... (See: policies/x.md)"
        sources.append(see["doc"].strip())
        answer = answer[: see.start()]
    aliases = [str(a) for a in row.get("aliases") or ()]
    unanswerable = not answer.strip() or row.get("kind") == "out_of_scope"
    golds = [] if unanswerable else [answer.strip(), *aliases]
    return question.strip(), answer.strip(), golds, sources


def rag_generator_examples(
    rows: Iterable[Mapping[str, Any]],
    retriever: SupportsRetrieve,
    *,
    top_k: int | None = None,
    context_tokens: int = 2000,
    token_model: str = "gpt-4o-mini",
    system: str = RAG_GENERATOR_SYSTEM,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[dict[str, Any]], RagExampleStats]:
    """Chat examples for a generator over retrieved context, and what the build found.

    ``rows`` are ``{"question", "answer", "aliases"?, "sources"?, "kind"?}`` (an empty answer
    or ``kind: out_of_scope`` means unanswerable; a trailing ``(See: path)`` names the source).
    ``top_k``, ``context_tokens`` and ``token_model`` must be the values the serving
    strategy uses (its ``[retrieval]`` settings and generator model id): they decide which
    passages the prompt holds. ``progress`` is called with the number of rows done.
    """
    stats = RagExampleStats()
    examples: list[dict[str, Any]] = []
    for number, row in enumerate(rows, start=1):
        question, answer, golds, sources = _row(number, row)
        hits = retriever.retrieve(question, top_k=top_k)
        passages = pack_passages(
            [(hit.chunk.document_id, hit.chunk.text) for hit in hits],
            context_tokens=context_tokens,
            count=lambda text: count_tokens(text, token_model),
        )
        cited = citing_passage(passages, golds, sources) if golds else None
        if not golds:
            reply = ABSTAIN_TEXT
            stats.unanswerable += 1
        elif cited is None:
            reply = ABSTAIN_TEXT
            stats.not_retrieved += 1
            stats.lines_not_retrieved.append(number)
        else:
            reply = f"{answer} [{cited.id}]"
            stats.answered += 1
        examples.append(
            {
                "messages": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": format_context(passages, question)},
                    {"role": "assistant", "content": reply},
                ]
            }
        )
        if progress is not None:
            progress(number)
    if not examples:
        raise TrainingDataError("no rows to build examples from")
    return examples, stats
