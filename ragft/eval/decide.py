"""Choosing between RAG, fine-tuning and the hybrids: a small decision tree, optionally checked
against measured evaluation results.

The tree asks five questions and is read top to bottom; the first matching row wins:

====  ============================  ==============================================  ============
step  situation                     and                                             pick
====  ============================  ==============================================  ============
1     citations needed              500+ examples and format/style critical         ``ft_rag``
1     citations needed              500+ examples                                   ``rewrite_rag``
1     citations needed              (fewer examples)                                ``rag``
2     knowledge changes often       500+ examples and > 100k queries/month          ``router``
2     knowledge changes often       500+ examples and format/style critical         ``ft_rag``
2     knowledge changes often       (otherwise)                                     ``rag``
3     stable, no citations          fewer than 500 examples                         ``rag``
3     stable, no citations          > 100k queries/month or format critical         ``finetuned``
3     stable, no citations          (otherwise)                                     ``cascade``
====  ============================  ==============================================  ============

Why: citations can only come from retrieved passages, so step 1 keeps retrieval on every
answer and spends training data where it cannot bake in stale facts (the generator's style, or
the query rewriter). Changing knowledge (step 2) must live in the index, not the weights; at
high volume a router sends the stable, procedural questions to a cheaper fine-tuned model and
the factual ones to RAG. With stable knowledge and no citations (step 3), fine-tuning is
cheapest per query and most consistent in format once there is enough data (500+ examples);
a cascade keeps RAG as the safety net for the questions the fine-tuned model is unsure of.

Unanswered questions get the cautious default and the decision says so: knowledge is assumed
to change (facts stay updatable), citations not required, volume at most 100k/month, format
not critical, and no training examples.

With an evaluation result, :func:`decide` adds the measured quality, cost per query and
out-of-scope hallucination rate of the candidates, and flags where the measurements
contradict the tree's pick.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ragft.eval.harness import EvalResult, StrategySummary

__all__ = [
    "HIGH_VOLUME",
    "MIN_EXAMPLES",
    "PICKS",
    "Decision",
    "DecisionInputs",
    "decide",
    "describe_inputs",
]

#: Queries per month above which per-query cost dominates the choice.
HIGH_VOLUME = 100_000
#: Training examples needed before fine-tuning is worth recommending.
MIN_EXAMPLES = 500
#: Every recommendation the tree can make.
PICKS: tuple[str, ...] = ("rag", "finetuned", "ft_rag", "rewrite_rag", "router", "cascade")
#: Strategy kinds that answer from model weights alone (no retrieval, no citations).
_WEIGHTS_ONLY = frozenset({"finetuned", "base"})
#: Composite kinds that answer some questions from weights alone (router's non-RAG routes, a
#: cascade's confident first answers): they cannot promise a citation on every answer.
_SOMETIMES_WEIGHTS = frozenset({"router", "cascade"})


@dataclass(frozen=True, slots=True)
class DecisionInputs:
    """Answers to the tree's questions; ``None`` means unknown (a default is assumed)."""

    knowledge_changes: bool | None = None
    citations: bool | None = None
    volume: int | None = None
    format_critical: bool | None = None
    examples: int | None = None

    def __post_init__(self) -> None:
        for name in ("volume", "examples"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")


@dataclass(frozen=True, slots=True)
class Decision:
    """The tree's pick with the reasons that led to it, the defaults assumed for unanswered
    questions, and (with an evaluation) the measured evidence and any contradictions."""

    recommendation: str
    reasons: tuple[str, ...]
    assumptions: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    contradictions: tuple[str, ...] = ()
    measured: dict[str, dict[str, Any]] = field(default_factory=dict)

    def summary(self) -> str:
        """The decision as text for the terminal."""
        lines = [f"Recommendation: {self.recommendation}", "Because:"]
        lines += [f"  - {r}" for r in self.reasons]
        if self.assumptions:
            lines.append("Assumed (not answered):")
            lines += [f"  - {a}" for a in self.assumptions]
        if self.evidence:
            lines.append("Measured:")
            lines += [f"  - {e}" for e in self.evidence]
        if self.contradictions:
            lines.append("WARNING - the measurements disagree with the pick:")
            lines += [f"  - {c}" for c in self.contradictions]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data = asdict(self)
        for key in ("reasons", "assumptions", "evidence", "contradictions"):
            data[key] = list(data[key])
        return data


def _resolve(inputs: DecisionInputs) -> tuple[bool, bool, int, bool, int, list[str]]:
    assumed = []
    changes = inputs.knowledge_changes
    if changes is None:
        changes = True
        assumed.append("knowledge changes often: yes (keeps facts in the index, where they can be updated)")
    citations = inputs.citations
    if citations is None:
        citations = False
        assumed.append("citations needed: no")
    volume = inputs.volume
    if volume is None:
        volume = 0
        assumed.append(f"volume: at most {HIGH_VOLUME:,} queries/month")
    fmt = inputs.format_critical
    if fmt is None:
        fmt = False
        assumed.append("format/style consistency critical: no")
    examples = inputs.examples
    if examples is None:
        examples = 0
        assumed.append("training examples available: none")
    return changes, citations, volume, fmt, examples, assumed


def _tree(changes: bool, citations: bool, volume: int, fmt: bool, examples: int) -> tuple[str, list[str]]:
    enough = examples >= MIN_EXAMPLES
    high = volume > HIGH_VOLUME
    data = (f"{examples:,} training examples (>= {MIN_EXAMPLES})" if enough
            else f"only {examples:,} training examples (< {MIN_EXAMPLES}): too few to fine-tune well")
    if citations:
        why = ["citations are needed, and only retrieved passages can be cited: every answer uses retrieval"]
        if enough and fmt:
            return "ft_rag", [*why, data, "format/style is critical: a fine-tuned generator over retrieval "
                              "gives both"]
        if enough:
            return "rewrite_rag", [*why, data, "spend them on a query rewriter: better retrieval, no facts "
                                   "baked into weights"]
        return "rag", [*why, data]
    if changes:
        why = ["knowledge changes often: facts must come from the index, not from model weights"]
        if enough and high:
            return "router", [*why, data, f"{volume:,} queries/month (> {HIGH_VOLUME:,}): route stable, "
                              "procedural questions to the cheaper fine-tuned model and factual ones to RAG"]
        if enough and fmt:
            return "ft_rag", [*why, data, "format/style is critical: a fine-tuned generator over retrieval"]
        if enough:
            return "rag", [*why, data, "neither high volume nor format-critical: plain RAG is the simplest "
                           "that works"]
        return "rag", [*why, data]
    why = ["knowledge is stable and citations are not needed: the answers can live in the weights"]
    if not enough:
        return "rag", [*why, data]
    if high or fmt:
        because = []
        if high:
            because.append(f"{volume:,} queries/month (> {HIGH_VOLUME:,}): no retrieval tokens per query")
        if fmt:
            because.append("format/style is critical: fine-tuning makes it consistent")
        return "finetuned", [*why, data, *because]
    return "cascade", [*why, data, "fine-tuned model first, RAG when it is unsure: most of the savings, "
                       "with retrieval as the safety net"]


def _kind(result: EvalResult, name: str) -> str:
    return str(result.meta.get("strategy_kinds", {}).get(name, name))


def _eligible(result: EvalResult, name: str, changes: bool, citations: bool) -> str | None:
    """Why ``name`` cannot satisfy the constraints (``None`` when it can)."""
    kind = _kind(result, name)
    summary = result.summaries[name]
    if citations and (kind in _WEIGHTS_ONLY or summary.recall_at_k is None):
        return "cannot cite (no retrieved sources)"
    if citations and kind in _SOMETIMES_WEIGHTS:
        return "answers some questions from model weights, without citations"
    if changes and kind in _WEIGHTS_ONLY:
        return "answers from weights, which go stale when knowledge changes"
    return None


def _fmt_summary(s: StrategySummary, metric: str, volume: int) -> str:
    q = s.quality(metric)
    text = f"{metric} {'n/a' if q is None else f'{q:.3f}'}, ${s.cost_per_query:.6f}/query"
    if volume:
        text += f" (${s.cost_per_query * volume:,.2f}/month at {volume:,})"
    if s.hallucination_rate_oos is not None:
        text += f", hallucinated on {s.hallucination_rate_oos:.0%} of out-of-scope questions"
    if s.errors:
        text += f", {s.errors} errors"
    return text


def _find_pick(result: EvalResult, pick: str) -> str | None:
    if pick in result.summaries:
        return pick
    return next((n for n in result.strategies if _kind(result, n) == pick), None)


def decide(
    inputs: DecisionInputs,
    *,
    evaluation: EvalResult | None = None,
    metric: str = "f1",
    margin: float = 0.05,
) -> Decision:
    """Walk the tree (see the module docstring) and, given an ``evaluation``, back the pick with
    measured figures.

    Contradictions flagged (only against strategies that satisfy the constraints: when
    citations are needed, none that answers any question from model weights alone; when
    knowledge changes, no weights-only strategy): a candidate whose ``metric`` beats the
    pick's by more than ``margin``; one within ``margin`` on quality at under half the cost
    per query; one that hallucinates on out-of-scope questions at least 10 points less.
    """
    changes, citations, volume, fmt, examples, assumed = _resolve(inputs)
    pick, reasons = _tree(changes, citations, volume, fmt, examples)
    if evaluation is None:
        return Decision(pick, tuple(reasons), tuple(assumed))

    evidence: list[str] = []
    contradictions: list[str] = []
    measured: dict[str, dict[str, Any]] = {}
    eligible: list[str] = []
    for name in evaluation.strategies:
        s = evaluation.summaries[name]
        measured[name] = {
            "quality": s.quality(metric), "cost_per_query": s.cost_per_query,
            "hallucination_rate_oos": s.hallucination_rate_oos, "kind": _kind(evaluation, name),
        }
        why_not = _eligible(evaluation, name, changes, citations)
        evidence.append(f"{name}: {_fmt_summary(s, metric, volume)}" + (f" [ruled out: {why_not}]" if why_not else ""))
        if why_not is None:
            eligible.append(name)

    found = _find_pick(evaluation, pick)
    if found is None:
        evidence.append(f"{pick} was not evaluated; run `ragft eval --strategies {pick},...` to measure it")
        return Decision(pick, tuple(reasons), tuple(assumed), tuple(evidence), (), measured)

    ps = evaluation.summaries[found]
    pq = ps.quality(metric) or 0.0
    for name in eligible:
        if name == found:
            continue
        s = evaluation.summaries[name]
        q = s.quality(metric) or 0.0
        if q - pq > margin:
            contradictions.append(
                f"{name} scored {metric} {q:.3f} vs {pq:.3f} for {found} (more than {margin:.2f} better)"
            )
        elif q >= pq - margin and s.cost_per_query < 0.5 * ps.cost_per_query:
            saving = (ps.cost_per_query - s.cost_per_query) * volume
            at = f"; about ${saving:,.2f}/month less at {volume:,} queries" if volume else ""
            contradictions.append(
                f"{name} is within {margin:.2f} on {metric} ({q:.3f} vs {pq:.3f}) at under half the "
                f"cost per query (${s.cost_per_query:.6f} vs ${ps.cost_per_query:.6f}){at}"
            )
        h, ph = s.hallucination_rate_oos, ps.hallucination_rate_oos
        if h is not None and ph is not None and ph - h >= 0.10:
            contradictions.append(
                f"{found} hallucinated on {ph:.0%} of out-of-scope questions, {name} on {h:.0%}"
            )
    return Decision(pick, tuple(reasons), tuple(assumed), tuple(evidence), tuple(contradictions), measured)


def describe_inputs(inputs: DecisionInputs) -> Sequence[str]:
    """The answers as given, one line each (``unknown`` for unanswered)."""
    def yn(v: bool | None) -> str:
        return "unknown" if v is None else ("yes" if v else "no")

    return (
        f"knowledge changes often: {yn(inputs.knowledge_changes)}",
        f"citations needed: {yn(inputs.citations)}",
        f"queries per month: {'unknown' if inputs.volume is None else f'{inputs.volume:,}'}",
        f"format/style critical: {yn(inputs.format_critical)}",
        f"training examples: {'unknown' if inputs.examples is None else f'{inputs.examples:,}'}",
    )
