"""The value objects every layer returns: :class:`Usage`, :class:`CallRecord`, :class:`Source`
and :class:`Answer`.

They are frozen dataclasses with plain fields so they serialise to JSON (``to_dict``, through
:mod:`ragft.serialize`) for the ledger, evaluation results and the CLI without a schema library.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ragft.route import Route
from ragft.serialize import from_record, to_record

__all__ = ["Answer", "CallKind", "CallRecord", "Source", "Usage", "UsageSource", "sum_cost"]

CallKind = Literal["chat", "embedding", "training", "rerank"]
#: ``reported``: counted by the backend that ran the model (API ``usage`` field or the local
#: engine's own tokenizer). ``estimated``: counted by ragft with tiktoken because the backend
#: gave nothing (e.g. a stream whose final usage chunk was lost).
UsageSource = Literal["reported", "estimated"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage of one model call.

    ``cached_input_tokens`` is a *subset* of ``input_tokens`` (as in OpenAI's
    ``prompt_tokens_details.cached_tokens``), and ``reasoning_tokens`` a subset of
    ``output_tokens``: both are billed inside those totals, never added to them.
    ``compute_seconds`` is wall-clock time on self-hosted hardware (a local LoRA training
    run), billed only when the price table has a GPU price per hour.
    """

    model: str
    kind: CallKind = "chat"
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    embedding_tokens: int = 0
    training_tokens: int = 0
    compute_seconds: float = 0.0
    source: UsageSource = "reported"
    batch: bool = False

    def __post_init__(self) -> None:
        for name in (
            "input_tokens",
            "cached_input_tokens",
            "output_tokens",
            "reasoning_tokens",
            "embedding_tokens",
            "training_tokens",
            "compute_seconds",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"Usage.{name} must be >= 0, got {getattr(self, name)}")
        if self.cached_input_tokens > self.input_tokens:
            raise ValueError(
                f"cached_input_tokens ({self.cached_input_tokens}) cannot exceed "
                f"input_tokens ({self.input_tokens}): cached tokens are a subset of input"
            )
        if self.reasoning_tokens > self.output_tokens:
            raise ValueError(
                f"reasoning_tokens ({self.reasoning_tokens}) cannot exceed "
                f"output_tokens ({self.output_tokens}): reasoning tokens are part of output"
            )

    @property
    def total_tokens(self) -> int:
        """All tokens the call consumed (input + output + embedding + training)."""
        return self.input_tokens + self.output_tokens + self.embedding_tokens + self.training_tokens

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``compute_seconds`` only when set: older ledger lines keep their
        shape)."""
        record = to_record(self)
        if not self.compute_seconds:
            del record["compute_seconds"]
        return record

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        """Inverse of :meth:`to_dict`; unknown keys are ignored so old ledgers stay readable."""
        return from_record(cls, data)


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One metered model call: its usage, what it cost, how long it took and why it was made.

    ``cost_usd`` is ``None`` when the model is explicitly unpriced (never a silent 0).
    ``tags`` carries the roll-up keys: ``run``, ``strategy``, ``query``.
    ``nested`` marks a call made while another metered call was running (a local model's own
    embedding lookup): its tokens and cost count, but its time is inside the outer call's.
    """

    usage: Usage
    cost_usd: float | None
    latency_s: float
    purpose: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    timestamp: float = field(default_factory=time.time)
    nested: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (one ledger line)."""
        return to_record(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CallRecord:
        """Inverse of :meth:`to_dict` (a line missing cost, latency or time reads as unpriced,
        0 s, at time 0)."""
        return from_record(cls, {"cost_usd": None, "latency_s": 0.0, "timestamp": 0.0, **data})


def sum_cost(records: Iterable[CallRecord]) -> float:
    """Total cost of priced records (unpriced ones contribute nothing; see ``unpriced`` counts)."""
    return sum(r.cost_usd for r in records if r.cost_usd is not None)


@dataclass(frozen=True, slots=True)
class Source:
    """A retrieved chunk cited by an answer."""

    chunk_id: str
    document: str
    score: float
    snippet: str
    title: str = ""
    position: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return to_record(self)


@dataclass(frozen=True, slots=True)
class Answer:
    """What every strategy returns from ``answer(query)``.

    ``route`` says which strategy/sub-step answered and why: a :class:`~ragft.route.Route`
    whose ``str()`` reads e.g. ``"cascade: finetuned confidence 0.62 < 0.80 -> rag | rag: ..."``
    and whose fields programs read. ``calls`` holds every metered
    model call made for this answer, so ``cost_usd`` and the token totals are exact sums.
    ``abstained`` is true when the strategy declined to answer (nothing relevant found,
    out-of-scope route). ``retrieved`` lists every passage retrieval returned for the answer,
    best first (``sources`` are the ones the answer cites); retrieval recall@k is measured on it.
    ``packed`` is how many of them (the first ones) fitted in the model's context, when known.
    """

    text: str
    query: str = ""
    sources: tuple[Source, ...] = ()
    route: Route = Route()
    strategy: str = ""
    confidence: float | None = None
    calls: tuple[CallRecord, ...] = ()
    latency_s: float = 0.0
    abstained: bool = False
    retrieved: tuple[Source, ...] = ()
    packed: int | None = None

    @property
    def cost_usd(self) -> float:
        """Sum of the priced calls' cost."""
        return sum_cost(self.calls)

    @property
    def unpriced_calls(self) -> int:
        """How many calls had no price (their cost is unknown, not zero)."""
        return sum(1 for c in self.calls if c.cost_usd is None)

    @property
    def model_latency_s(self) -> float:
        """Wall time spent inside model calls (nested calls are inside their outer call)."""
        return sum(c.latency_s for c in self.calls if not c.nested)

    @property
    def input_tokens(self) -> int:
        """Input tokens over all chat calls."""
        return sum(c.usage.input_tokens for c in self.calls)

    @property
    def output_tokens(self) -> int:
        """Output tokens over all chat calls."""
        return sum(c.usage.output_tokens for c in self.calls)

    @property
    def embedding_tokens(self) -> int:
        """Tokens embedded for this answer (the query, rewrites)."""
        return sum(c.usage.embedding_tokens for c in self.calls)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the fields (the route as its text) and the derived cost."""
        return {**to_record(self), "route": str(self.route), "cost_usd": self.cost_usd}
