"""The strategy contract: ``answer(query) -> Answer``.

:class:`Strategy` has one abstract method, :meth:`Strategy._draft`, which does the work and
returns a :class:`Draft`; the concrete :meth:`Strategy.answer` wraps it with what every strategy
must do the same way: open a meter scope so each model call made for this query is collected
(and tagged with strategy and query), time it, and assemble the :class:`~ragft.answer.Answer`.

Composite strategies (router, cascade) call their parts' public :meth:`Strategy.draft` inside
their own scope, so a sub-strategy's calls count once, under the strategy the user asked for.
"""

from __future__ import annotations

import abc
import asyncio
import re
import time
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Self

from ragft.answer import Answer, Source
from ragft.errors import QueryError
from ragft.metering.meter import Meter, MeteredChatModel
from ragft.models.base import ChatModel, Message, SupportsClose
from ragft.prompts import ABSTAIN_TEXT, REFUSAL_TEXT
from ragft.route import Route

__all__ = [
    "ABSTAIN_TEXT",
    "AnswerStream",
    "Draft",
    "REFUSAL_TEXT",
    "Strategy",
    "is_abstention",
]

_ABSTAIN = re.compile(
    r"^\W*(i\s+(do\s+not|don'?t|cannot|can'?t)\s+(know|answer|find|say)|"
    r"(the\s+)?(provided\s+)?(documents|context|passages)\s+(do|does)\s+not\s+(answer|contain|say)|"
    r"i'?m\s+not\s+sure|not\s+enough\s+information|no\s+information)",
    re.IGNORECASE,
)


def is_abstention(text: str) -> bool:
    """True when a model's reply declines to answer (``"I don't know ..."`` and kin)."""
    return bool(_ABSTAIN.search(text.strip())) or text.strip() in (ABSTAIN_TEXT, REFUSAL_TEXT)


@dataclass(frozen=True)
class Draft:
    """What a strategy's work produced, before the common fields are attached."""

    text: str
    route: Route
    sources: tuple[Source, ...] = ()
    confidence: float | None = None
    abstained: bool = False
    retrieved: tuple[Source, ...] = ()
    packed: int | None = None  # how many of ``retrieved`` went into the model's context


class AnswerStream:
    """Iterate to receive the answer's text as it is generated; afterwards ``answer`` holds
    the complete :class:`Answer` (usage and cost included).

    Built from the generator that produces it: ``run`` yields the text deltas and *returns*
    the finished :class:`Answer`. Iterate once (a second iteration yields nothing); ``answer``
    stays ``None`` when iteration stops early.
    """

    def __init__(self, run: Generator[str, None, Answer]):
        self.answer: Answer | None = None
        self._iterator = self._consume(run)

    def _consume(self, run: Generator[str, None, Answer]) -> Iterator[str]:
        self.answer = yield from run

    def __iter__(self) -> Iterator[str]:
        """Yield text deltas as they arrive."""
        return self._iterator


class Strategy(abc.ABC):
    """Base of every strategy. Subclasses implement :meth:`_draft` and set :attr:`kind`.

    ``name`` labels this instance in routes, roll-ups and evaluation tables (defaults to
    ``kind``).
    """

    #: Registry name of the strategy class (``rag``, ``finetuned``, ``cascade`` ...).
    kind: str = "strategy"

    def __init__(self, *, meter: Meter, name: str | None = None):
        self.meter = meter
        self.name = name or self.kind
        self._owned: list[SupportsClose] = []

    # -- the one abstract method --------------------------------------------------------------
    @abc.abstractmethod
    def _draft(self, query: str) -> Draft:
        """Answer ``query``; every model call must go through a metered model."""

    # -- concrete behaviour shared by all strategies ---------------------------------------
    def draft(self, query: str) -> Draft:
        """This strategy's work on ``query``, inside the caller's meter scope: what a composite
        strategy (router, cascade) calls on its parts. Use :meth:`answer` for an
        :class:`Answer` of its own (own scope, calls, latency)."""
        return self._draft(query)

    def answer(self, query: str, *, query_id: str | None = None) -> Answer:
        """Answer one query. Every model call made is in ``Answer.calls``."""
        query = checked_query(query)
        start = time.perf_counter()
        with self.meter.collect(strategy=self.name, query=query_id or query[:80]) as calls:
            draft = self._draft(query)
        return Answer(
            text=draft.text,
            query=query,
            sources=draft.sources,
            route=draft.route,
            strategy=self.name,
            confidence=draft.confidence,
            calls=tuple(calls.records),
            latency_s=time.perf_counter() - start,
            abstained=draft.abstained,
            retrieved=draft.retrieved,
            packed=draft.packed,
        )

    def answer_many(
        self,
        queries: Sequence[str],
        *,
        query_ids: Sequence[str] | None = None,
        concurrency: int = 1,
    ) -> list[Answer]:
        """Answer a batch, in input order. ``concurrency > 1`` runs queries on threads (worth
        it for network-bound backends; the local backend is CPU-bound and gains little)."""
        ids = list(query_ids) if query_ids is not None else [None] * len(queries)
        if len(ids) != len(queries):
            raise ValueError("query_ids must have one id per query")
        if concurrency <= 1:
            return [self.answer(q, query_id=i) for q, i in zip(queries, ids, strict=True)]
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            return list(pool.map(lambda qi: self.answer(qi[0], query_id=qi[1]), zip(queries, ids, strict=True)))

    async def aanswer(self, query: str, *, query_id: str | None = None) -> Answer:
        """Async :meth:`answer`; runs the (blocking) pipeline in a worker thread so an event
        loop stays responsive. Meter scopes are context-local, so concurrent calls stay apart."""
        return await asyncio.to_thread(self.answer, query, query_id=query_id)

    async def aanswer_many(self, queries: Sequence[str], *, concurrency: int = 4) -> list[Answer]:
        """Answer a batch concurrently from async code, at most ``concurrency`` at a time."""
        gate = asyncio.Semaphore(concurrency)

        async def one(q: str) -> Answer:
            async with gate:
                return await self.aanswer(q)

        return list(await asyncio.gather(*(one(q) for q in queries)))

    def stream(self, query: str, *, query_id: str | None = None) -> AnswerStream:
        """Stream the answer text. Strategies whose final step is one generator call stream
        it token by token; the others yield the finished text once."""

        def run() -> Generator[str, None, Answer]:
            answer = self.answer(query, query_id=query_id)
            yield answer.text
            return answer

        return AnswerStream(run())

    # -- lifetime --------------------------------------------------------------------------
    def own(self, resource: SupportsClose) -> None:
        """Make :meth:`close` close ``resource`` too (``from_config`` hands a strategy the
        :class:`~ragft.components.Components` it built for it)."""
        self._owned.append(resource)

    def close(self) -> None:
        """Close what this strategy owns, newest first (e.g. a local model server its
        components started). Calling it twice is harmless; a strategy given its parts by the
        caller owns nothing, and the caller closes them."""
        owned, self._owned = self._owned, []
        for resource in reversed(owned):
            resource.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def checked_query(query: str) -> str:
    """``query`` stripped; :class:`~ragft.errors.QueryError` when nothing is left."""
    query = query.strip()
    if not query:
        raise QueryError("query is empty: pass the question text")
    return query


def metered(model: ChatModel, meter: Meter, purpose: str) -> MeteredChatModel:
    """``model`` metered by ``meter``, its calls labelled ``purpose``."""
    return meter.chat_model(model).with_purpose(purpose)


def messages_for(system: str, user: str) -> list[Message]:
    """A two-message chat."""
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def with_route(draft: Draft, route: Route) -> Draft:
    """``draft`` with its route replaced (composite strategies put their decision first)."""
    return replace(draft, route=route)
