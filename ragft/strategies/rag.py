"""Retrieval-augmented generation: the baseline, and the fine-tuned generator over retrieval.

The prompt fences retrieved passages (see :mod:`ragft.models.context`) and the system prompt
tells the model that passage text is data, never instructions. Context is packed best-first
until the token budget is used. When the retriever finds nothing above its threshold the
strategy says it does not know without calling a model at all.
"""

from __future__ import annotations

import re
import time
from collections.abc import Generator, Sequence
from dataclasses import replace
from typing import Protocol

from ragft import defaults
from ragft.answer import Answer, Source
from ragft.metering.meter import Meter
from ragft.tokens import count_tokens
from ragft.models.base import ChatModel, Message
from ragft.models.context import Passage, format_context, pack_passages
from ragft.prompts import ABSTAIN_TEXT, RAG_SYSTEM
from ragft.rag.hits import Hit
from ragft.route import Route
from ragft.strategies.base import (
    AnswerStream,
    Draft,
    Strategy,
    checked_query,
    is_abstention,
    messages_for,
    metered,
)

__all__ = ["FineTunedGeneratorRAG", "RAG", "SupportsRetrieve"]

_CITATION = re.compile(r"\[(\d+)\]")


class SupportsRetrieve(Protocol):
    """What a strategy needs from a retriever (``ragft.rag.retriever.Retriever`` is one)."""

    def retrieve(self, query: str, *, top_k: int | None = None) -> Sequence[Hit]:
        """Ranked hits, best first."""
        ...


class RAG(Strategy):
    """Base model over retrieved context (the baseline).

    ``context_tokens`` caps the tokens of passage text put in the prompt (best hits first);
    ``min_confidence`` turns a low-confidence generation into an abstention when the model
    reports a confidence (local reader score, logprobs).
    """

    kind = "rag"

    def __init__(
        self,
        retriever: SupportsRetrieve,
        generator: ChatModel,
        *,
        meter: Meter,
        top_k: int | None = None,
        context_tokens: int = defaults.CONTEXT_TOKENS,
        max_tokens: int = defaults.MAX_TOKENS,
        min_confidence: float = 0.0,
        system_prompt: str = RAG_SYSTEM,
        name: str | None = None,
    ):
        super().__init__(meter=meter, name=name)
        self.retriever = retriever
        self.generator = metered(generator, meter, "generate")
        self.top_k = top_k
        self.context_tokens = context_tokens
        self.max_tokens = max_tokens
        self.min_confidence = min_confidence
        self.system_prompt = system_prompt

    # -- pieces reused by the hybrids ------------------------------------------------------
    def pack(self, hits: Sequence[Hit]) -> tuple[list[Passage], list[Source]]:
        """Passages (numbered from 1) and their sources, best first, within the token budget."""
        passages = pack_passages(
            [(hit.chunk.document_id, hit.chunk.text) for hit in hits],
            context_tokens=self.context_tokens,
            count=lambda text: count_tokens(text, self.generator.name),
        )
        return passages, [hit.source for hit in hits[: len(passages)]]

    def build_messages(
        self, query: str, passages: Sequence[Passage], search_query: str | None = None
    ) -> list[Message]:
        """System prompt plus the fenced context and question."""
        return messages_for(self.system_prompt, format_context(passages, query, search_query=search_query))

    def generate(
        self, query: str, hits: Sequence[Hit], kind: str, *, search_query: str | None = None
    ) -> Draft:
        """Generate an answer for ``query`` from ``hits`` (shared by RAG and its hybrids).
        ``kind`` names the strategy in the route; ``search_query``: the rewritten query the
        hits came from, shown to the generator."""
        if not hits:
            return Draft(
                text=ABSTAIN_TEXT,
                route=Route(kind, "abstain", "no passage above the retrieval threshold -> abstain"),
                abstained=True,
                confidence=0.0,
            )
        passages, sources = self.pack(hits)
        completion = self.generator.complete(
            self.build_messages(query, passages, search_query), max_tokens=self.max_tokens, logprobs=True
        )
        text, cited = self._cited(completion.text, completion.citations, sources)
        confidence = completion.confidence
        abstained = is_abstention(text)
        route = self._route(kind, passages, sources)
        if not abstained and confidence is not None and confidence < self.min_confidence:
            text, abstained = ABSTAIN_TEXT, True
            route = replace(route, decision="abstain", detail=route.detail + (
                f" (confidence {confidence:.2f} < {self.min_confidence:.2f} -> abstain)"))
        return Draft(
            text=text,
            route=route,
            sources=() if abstained else cited,
            confidence=confidence,
            abstained=abstained,
            retrieved=tuple(hit.source for hit in hits),
            packed=len(passages),
        )

    def _route(self, kind: str, passages: Sequence[Passage], sources: Sequence[Source]) -> Route:
        n_docs = len({s.document for s in sources})
        return Route(kind, detail=(
            f"{len(passages)} passage{'s' * (len(passages) != 1)} from "
            f"{n_docs} document{'s' * (n_docs != 1)} -> {self.generator.name}"
        ))

    @staticmethod
    def _cited(text: str, citations: Sequence[str], sources: Sequence[Source]) -> tuple[str, tuple[Source, ...]]:
        """The passages the answer cites, in citation order, and the text with its ``[n]``
        markers renumbered to match them (so ``[1]`` is the first listed source). Without
        citations, every passage shown is returned and the text is unchanged."""
        ids = list(citations) or _CITATION.findall(text)
        picked: list[int] = []
        for raw in ids:
            index = int(raw) - 1 if str(raw).isdigit() else -1
            if 0 <= index < len(sources) and index not in picked:
                picked.append(index)
        if not picked:
            return text, tuple(sources)
        new_number = {old + 1: new + 1 for new, old in enumerate(picked)}

        def renumber(m: re.Match[str]) -> str:
            n = int(m.group(1))
            return f"[{new_number[n]}]" if n in new_number else m.group(0)

        return _CITATION.sub(renumber, text), tuple(sources[i] for i in picked)

    def retrieve(self, query: str) -> Sequence[Hit]:
        """Hits for ``query`` (metered through the retriever's embedder)."""
        return self.retriever.retrieve(query, top_k=self.top_k)

    def _draft(self, query: str) -> Draft:
        return self.generate(query, self.retrieve(query), self.kind)

    def stream(self, query: str, *, query_id: str | None = None) -> AnswerStream:
        """Stream the generator's tokens; retrieval happens before the first token."""
        query = checked_query(query)
        return AnswerStream(self._streamed(query, query_id))

    def _streamed(self, query: str, query_id: str | None) -> Generator[str, None, Answer]:
        start = time.perf_counter()
        with self.meter.collect(strategy=self.name, query=query_id or query[:80]) as calls:
            hits = self.retrieve(query)
            retrieved = tuple(hit.source for hit in hits)
            if not hits:
                draft = self.generate(query, hits, self.kind)
                pieces = [draft.text]
                yield draft.text
                sources: tuple[Source, ...] = ()
                route = draft.route
            else:
                passages, all_sources = self.pack(hits)
                pieces = []
                for delta in self.generator.stream(
                    self.build_messages(query, passages), max_tokens=self.max_tokens
                ):
                    pieces.append(delta)
                    yield delta
                # The streamed text is already out with the passages' own numbers in its
                # [n] markers, so list every passage shown, in that numbering.
                sources = tuple(all_sources)
                shown = self._route(self.kind, passages, all_sources)
                route = replace(shown, detail=shown.detail + " (streamed)")
        text = "".join(pieces)
        abstained = is_abstention(text)
        return Answer(
            text=text,
            query=query,
            sources=() if abstained else sources,
            route=route,
            strategy=self.name,
            calls=tuple(calls.records),
            latency_s=time.perf_counter() - start,
            abstained=abstained,
            retrieved=retrieved,
        )


class FineTunedGeneratorRAG(RAG):
    """Pattern 1: retrieval, with the fine-tuned model as the generator.

    The fine-tuned model brings the house style and domain phrasing; retrieval brings current
    facts and citations. Identical to :class:`RAG` but for the model and its label.
    """

    kind = "ft_rag"
