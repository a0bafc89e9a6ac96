"""Pattern 4: try the fine-tuned model first; fall back to RAG when it is not confident.

Off-the-shelf fallbacks (LangChain's ``with_fallbacks``) switch only on errors. Here the switch
is also confidence-gated: the first model's confidence (token logprobs from the API, or the
local model's own score) must reach ``threshold``, otherwise the query escalates. Errors
(timeouts, 5xx, refusals), abstentions and unknown confidence escalate too. Both attempts are
metered, so the cost of a fallback is visible.

:func:`calibrate_threshold` picks the threshold from a labelled set and reports the whole
trade-off curve, so the number in the config is measured, not guessed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ragft.errors import ConfigError, ModelError
from ragft.metering.meter import Meter
from ragft.route import Route
from ragft.strategies.base import Draft, Strategy, with_route

__all__ = ["Cascade", "ThresholdChoice", "ThresholdPoint", "calibrate_threshold"]


class Cascade(Strategy):
    """``first`` answers unless its confidence is below ``threshold``; then ``fallback`` does."""

    kind = "cascade"

    def __init__(
        self,
        first: Strategy,
        fallback: Strategy,
        *,
        meter: Meter,
        threshold: float,
        name: str | None = None,
    ):
        super().__init__(meter=meter, name=name)
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"cascade threshold must be in [0, 1], got {threshold}")
        self.first = first
        self.fallback = fallback
        self.threshold = threshold

    def _escalate(self, query: str, why: str) -> Draft:
        inner = self.fallback.draft(query)
        return with_route(
            inner, Route(self.kind, "fallback", f"{why} -> {self.fallback.name}", inner=inner.route)
        )

    def _draft(self, query: str) -> Draft:
        label = self.first.name
        try:
            first = self.first.draft(query)
        except ModelError as exc:
            return self._escalate(query, f"{label} failed ({type(exc).__name__}: {str(exc)[:80]})")
        conf = first.confidence
        if first.abstained:
            return self._escalate(query, f"{label} abstained")
        if conf is None:
            return self._escalate(query, f"{label} confidence unknown")
        if conf < self.threshold:
            return self._escalate(query, f"{label} confidence {conf:.2f} < {self.threshold:.2f}")
        # Kept: not abstained and confident, so only the route changes.
        return with_route(first, Route(
            self.kind, "kept", f"{label} confidence {conf:.2f} >= {self.threshold:.2f} -> {label}"
        ))


@dataclass(frozen=True, slots=True)
class ThresholdPoint:
    """One point of the trade-off curve.

    ``accepted_accuracy``: accuracy of the first model on the queries it keeps.
    ``overall_accuracy``: accuracy of the whole cascade, when fallback outcomes are known.
    """

    threshold: float
    fallback_rate: float
    accepted_accuracy: float | None
    overall_accuracy: float | None


@dataclass(frozen=True, slots=True)
class ThresholdChoice:
    """The chosen threshold, the point it sits on, and the full curve."""

    threshold: float
    point: ThresholdPoint
    curve: tuple[ThresholdPoint, ...]
    reason: str


def _curve(
    confidences: Sequence[float | None],
    first_correct: Sequence[bool],
    fallback_correct: Sequence[bool] | None,
) -> list[ThresholdPoint]:
    n = len(confidences)
    conf = [-1.0 if c is None else float(c) for c in confidences]  # unknown always escalates
    candidates = sorted({0.0, *(c for c in conf if c >= 0.0)}) + [1.0 + 1e-9]
    points = []
    for t in candidates:
        keep = [i for i in range(n) if conf[i] >= t]
        kept_right = sum(1 for i in keep if first_correct[i])
        overall = None
        if fallback_correct is not None:
            right = kept_right + sum(1 for i in range(n) if conf[i] < t and fallback_correct[i])
            overall = right / n
        points.append(
            ThresholdPoint(
                threshold=min(t, 1.0),
                fallback_rate=1 - len(keep) / n,
                accepted_accuracy=kept_right / len(keep) if keep else None,
                overall_accuracy=overall,
            )
        )
    return points


def calibrate_threshold(
    confidences: Sequence[float | None],
    first_correct: Sequence[bool],
    *,
    fallback_correct: Sequence[bool] | None = None,
    target_accuracy: float | None = None,
    target_fallback_rate: float | None = None,
) -> ThresholdChoice:
    """Choose a cascade threshold from labelled outcomes of the first model.

    Give exactly one target:

    * ``target_accuracy``: the lowest threshold whose kept answers are at least this accurate
      (fewest fallbacks, so lowest cost, at the accuracy you need);
    * ``target_fallback_rate``: the threshold that escalates at most this share of queries,
      the highest such (most accurate kept answers within the fallback budget).

    ``fallback_correct`` (RAG's outcome on the same queries) adds the cascade's overall
    accuracy to every point of the curve.
    """
    n = len(confidences)
    if n == 0 or len(first_correct) != n or (fallback_correct is not None and len(fallback_correct) != n):
        raise ValueError("confidences, first_correct (and fallback_correct) need the same, non-zero length")
    if (target_accuracy is None) == (target_fallback_rate is None):
        raise ValueError("give exactly one of target_accuracy or target_fallback_rate")
    curve = _curve(confidences, first_correct, fallback_correct)
    if target_accuracy is not None:
        ok = [p for p in curve if p.accepted_accuracy is not None and p.accepted_accuracy >= target_accuracy]
        if ok:
            best = min(ok, key=lambda p: p.threshold)
            reason = (
                f"lowest threshold with kept accuracy {best.accepted_accuracy:.2f} >= "
                f"{target_accuracy:.2f}; {best.fallback_rate:.0%} of queries fall back"
            )
        else:
            best = curve[-1]
            reason = f"no threshold reaches accuracy {target_accuracy:.2f}: everything falls back"
    else:
        assert target_fallback_rate is not None
        ok = [p for p in curve if p.fallback_rate <= target_fallback_rate + 1e-12]
        best = max(ok, key=lambda p: p.threshold)
        acc = "n/a" if best.accepted_accuracy is None else f"{best.accepted_accuracy:.2f}"
        reason = (
            f"highest threshold with fallback rate {best.fallback_rate:.0%} <= "
            f"{target_fallback_rate:.0%}; kept accuracy {acc}"
        )
    return ThresholdChoice(threshold=best.threshold, point=best, curve=tuple(curve), reason=reason)
