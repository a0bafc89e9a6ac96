"""Context size: how `rag`'s answer quality and cost move as more passages are packed.

The guide's third RAG failure is "context too long, key info lost". Here it is a curve: the
same questions are answered with ``top_k`` = 1, 2, 3, 5, 8, 12, 20 ... passages (each point a
full :func:`~ragft.eval.harness.run_eval` of a `rag` strategy at that depth, so quality, tokens
and cost are measured as in ``ragft eval``), and for every answerable question the rank of the
first gold passage is recorded. Two views:

* per depth (:class:`ContextPoint`): contains-answer, token F1, false abstentions, prompt
  tokens and cost per query, the share of questions whose gold passage was retrieved and the
  share where it was packed into the context (the context budget can cut deep passages off);
* per gold position (:attr:`ContextCurve.by_position`): contains-answer of the questions whose
  gold passage sat at rank 1, 2, 3, 4-5, 6-10, 11+, over every depth that packed it — whether a
  passage deep in the context is used as well as the first one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ragft.eval.failure_modes import gold_rank
from ragft.eval.harness import EvalResult, QuestionRecord, run_eval
from ragft.eval.questions import Question
from ragft.metering.meter import Meter
from ragft.storage import atomic_write_bytes
from ragft.strategies.base import Strategy

__all__ = ["DEFAULT_DEPTHS", "ContextCurve", "ContextPoint", "measure_context_curve", "position_bucket"]

DEFAULT_DEPTHS: tuple[int, ...] = (1, 2, 3, 5, 8, 12, 20)
_BUCKETS = ("1", "2", "3", "4-5", "6-10", "11+")


def position_bucket(rank: int) -> str:
    """The reporting bucket of a 1-based rank."""
    if rank <= 3:
        return str(rank)
    return "4-5" if rank <= 5 else "6-10" if rank <= 10 else "11+"


@dataclass(frozen=True, slots=True)
class ContextPoint:
    """Measurements at one retrieval depth (rates over answerable questions)."""

    top_k: int
    n: int
    contains: float
    f1: float
    false_abstention: float
    gold_retrieved: float
    gold_in_context: float
    mean_gold_rank: float | None
    context_tokens: float
    cost_per_query: float
    latency_p50: float | None


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _in_context(record: QuestionRecord) -> int | None:
    rank = gold_rank(record)
    if rank is None or (record.packed is not None and rank > record.packed):
        return None
    return rank


def _point(k: int, result: EvalResult, name: str) -> ContextPoint:
    records = [r for r in result.records_for(name) if r.answerable and not r.error]
    with_gold = [r for r in records if r.gold_sources]
    ranks = [gold_rank(r) for r in with_gold]
    packed = [_in_context(r) for r in with_gold]
    summary = result.summaries[name]
    return ContextPoint(
        top_k=k, n=len(records),
        contains=_mean([r.contains or 0.0 for r in records]),
        f1=_mean([r.f1 or 0.0 for r in records]),
        false_abstention=_mean([1.0 if r.abstained else 0.0 for r in records]),
        gold_retrieved=_mean([1.0 if x is not None else 0.0 for x in ranks]),
        gold_in_context=_mean([1.0 if x is not None else 0.0 for x in packed]),
        mean_gold_rank=_mean([float(x) for x in packed if x is not None]) if any(packed) else None,
        context_tokens=_mean([float(r.input_tokens) for r in records]),
        cost_per_query=summary.cost_per_query,
        latency_p50=summary.latency_p50,
    )


@dataclass
class ContextCurve:
    """Every depth's :class:`ContextPoint`, quality by gold position, and the price basis."""

    points: list[ContextPoint]
    n_questions: int
    by_position: dict[str, dict[str, float]] = field(default_factory=dict)
    simulated_prices: str | None = None
    context_budget: int | None = None

    def summary(self) -> str:
        """A text table for the terminal."""
        lines = []
        if self.simulated_prices:
            lines.append(f"SIMULATED PRICES: local models charged as {self.simulated_prices}; not real costs")
        head = ("top_k", "contains", "F1", "false abst.", "gold retrieved", "gold in context",
                "mean gold rank", "prompt tokens", "cost/query", "p50")
        rows = [(str(p.top_k), f"{p.contains:.3f}", f"{p.f1:.3f}", f"{p.false_abstention:.0%}",
                 f"{p.gold_retrieved:.0%}", f"{p.gold_in_context:.0%}",
                 "n/a" if p.mean_gold_rank is None else f"{p.mean_gold_rank:.2f}",
                 f"{p.context_tokens:,.0f}", f"${p.cost_per_query:.6f}",
                 "n/a" if p.latency_p50 is None else f"{p.latency_p50 * 1000:.0f} ms") for p in self.points]
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
        lines.append("  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
        lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        if self.by_position:
            lines.append("contains answer by the gold passage's rank in the context (all depths):")
            lines.append("  " + ", ".join(f"rank {b}: {v['contains']:.3f} (n={int(v['n'])})"
                                          for b, v in self.by_position.items()))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"format": "ragft-context-curve", "n_questions": self.n_questions,
                "simulated_prices": self.simulated_prices, "context_budget": self.context_budget,
                "points": [asdict(p) for p in self.points], "by_position": self.by_position}

    def to_json(self, path: str | Path) -> Path:
        """Write the curve, atomically."""
        atomic_write_bytes(path, (json.dumps(self.to_dict(), indent=2) + "\n").encode("utf-8"))
        return Path(path)


def measure_context_curve(
    build: Callable[[int], Strategy],
    questions: Sequence[Question],
    *,
    meter: Meter,
    depths: Sequence[int] = DEFAULT_DEPTHS,
    progress: bool = False,
    context_budget: int | None = None,
) -> ContextCurve:
    """Answer ``questions`` with ``build(k)`` (a `rag` strategy retrieving ``k`` passages) for
    every ``k`` in ``depths`` and measure each depth (see the module docstring)."""
    if not depths or any(k < 1 for k in depths):
        raise ValueError(f"depths must be positive, got {list(depths)}")
    strategies = {f"rag@{k}": build(k) for k in depths}
    result = run_eval(strategies, questions, meter=meter, progress=progress)
    points = [_point(k, result, f"rag@{k}") for k in depths]
    buckets: dict[str, list[float]] = {b: [] for b in _BUCKETS}
    for name in strategies:
        for r in result.records_for(name):
            rank = _in_context(r) if r.answerable and not r.error and r.gold_sources else None
            if rank is not None:
                buckets[position_bucket(rank)].append(r.contains or 0.0)
    by_position = {b: {"contains": _mean(v), "n": float(len(v))} for b, v in buckets.items() if v}
    simulated = meter.prices.simulated_as
    return ContextCurve(points, sum(1 for q in questions if q.answerable), by_position,
                        f"{simulated[0]} / {simulated[1]}" if simulated else None, context_budget)
