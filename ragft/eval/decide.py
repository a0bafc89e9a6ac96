"""Choosing between RAG, fine-tuning and the hybrids, in three labelled layers.

1. **The guide's answer** (``shared/guide/rag-vs-finetuning.md``, "Decision Framework"), exactly
   as its flowchart reads, first matching question wins:

   ====  ==========================================  =====  ================================
   step  question                                    if     then
   ====  ==========================================  =====  ================================
   1     Knowledge changes frequently?               yes    Use RAG
   2     Need source citations?                      yes    Use RAG
   3     > 100K queries/month?                       no     Use RAG
   4     Consistent format critical?                 yes    Use Hybrid: RAG + Fine-tune
   5     Have training data? (yes = 500+ examples)   yes    Use Fine-tuning
   5                                                 no     Use RAG
   ====  ==========================================  =====  ================================

   The guide's "Quick Decision Table" is a second entry point (:data:`SITUATIONS`).
2. **ragft's refinement** (not the guide's): which strategy to run for that answer —
   the hybrid is pattern 1 (``ft_rag``: the fine-tuned generator gives the consistent format on
   every answer, retrieval the facts); RAG with 500+ examples and a critical format also becomes
   ``ft_rag`` (the guide's own pitfall "using RAG when format consistency is critical").
3. **What the measurements say**: an evaluation result (quality, cost, out-of-scope
   hallucination of every eligible strategy; contradictions flagged) and a freshness report
   (``ragft measure freshness``): with an update frequency, the measured fine-tuning update time
   answers the flowchart's first question (see :func:`knowledge_changes_from`).

Unanswered questions get the cautious default and the decision says so: knowledge is assumed
to change (facts stay updatable), citations not required, volume at most 100k/month, format
not critical, and no training examples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ragft.errors import EvaluationError
from ragft.eval.freshness import UPDATES_PER_MONTH, FreshnessReport, parse_update_frequency
from ragft.eval.harness import EvalResult, StrategySummary

__all__ = [
    "FRESHNESS_MARGIN",
    "GUIDE_ANSWERS",
    "HIGH_VOLUME",
    "MIN_EXAMPLES",
    "PICKS",
    "SITUATIONS",
    "UPDATES_PER_MONTH",
    "Decision",
    "DecisionInputs",
    "decide",
    "describe_inputs",
    "guide_flowchart",
    "knowledge_changes_from",
    "parse_update_frequency",
    "refine",
]

#: Queries per month above which the guide considers fine-tuning ("> 100K queries/month").
HIGH_VOLUME = 100_000
#: The guide's "Yes, 500+ examples".
MIN_EXAMPLES = 500
#: Every strategy the refinement can pick.
PICKS: tuple[str, ...] = ("rag", "finetuned", "ft_rag")
GuideAnswer = Literal["rag", "finetuning", "hybrid"]
#: How the guide names its three answers.
GUIDE_ANSWERS: dict[str, str] = {"rag": "Use RAG", "finetuning": "Use Fine-tuning",
                                 "hybrid": "Use Hybrid: RAG + Fine-tune"}
#: The guide's "Quick Decision Table": situation key -> (its wording, its recommendation).
SITUATIONS: dict[str, tuple[str, GuideAnswer]] = {
    "startup": ("Startup, need to move fast", "rag"),
    "enterprise-compliance": ("Enterprise compliance requirements", "rag"),
    "customer-support": ("Customer support chatbot", "hybrid"),
    "document-qa": ("Document Q&A", "rag"),
    "code-generation": ("Code generation with style", "finetuning"),
    "real-time-trading": ("Real-time trading assistant", "finetuning"),
    "internal-knowledge-base": ("Internal knowledge base", "rag"),
    "high-volume-stable": ("High-volume, stable use case", "finetuning"),
}
#: The guide's verdict on fine-tuning at each frequency: daily "impractical", weekly
#: "expensive" (both count as "changes frequently"), monthly and slower "feasible".
_GUIDE_FREQUENT = frozenset({"daily", "weekly"})
#: A fine-tuning pipeline keeps up when one update takes at most 1/FRESHNESS_MARGIN of the
#: interval between updates (room to fix a failed run or a refused gate before the next one).
FRESHNESS_MARGIN = 10.0
_SECONDS_PER_MONTH = 30 * 24 * 3600.0
#: Strategy kinds that answer from model weights alone (no retrieval, no citations).
_WEIGHTS_ONLY = frozenset({"finetuned", "base"})
#: Composite kinds that answer some questions from model weights alone (router's non-RAG routes, a
#: cascade's confident first answers): they cannot promise a citation on every answer.
_SOMETIMES_WEIGHTS = frozenset({"router", "cascade"})


@dataclass(frozen=True, slots=True)
class DecisionInputs:
    """Answers to the flowchart's questions; ``None`` means unknown (a default is assumed).
    ``update_frequency`` (``daily`` ... or ``N/month``) answers "knowledge changes frequently?"
    when ``knowledge_changes`` is not given (with measured update times when available)."""

    knowledge_changes: bool | None = None
    citations: bool | None = None
    volume: int | None = None
    format_critical: bool | None = None
    examples: int | None = None
    update_frequency: str | None = None

    def __post_init__(self) -> None:
        for name in ("volume", "examples"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if self.update_frequency is not None:
            parse_update_frequency(self.update_frequency)


@dataclass(frozen=True, slots=True)
class Decision:
    """The guide's answer (``guide``, with the flowchart ``path`` that led to it), ragft's
    refinement (``recommendation``, a strategy, with ``reasons``), the defaults assumed, and the
    measured evidence and contradictions."""

    guide: GuideAnswer
    path: tuple[str, ...]
    recommendation: str
    reasons: tuple[str, ...]
    assumptions: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    contradictions: tuple[str, ...] = ()
    measured: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = "flowchart"

    def summary(self) -> str:
        """The decision as text for the terminal: the guide's answer first."""
        where = "quick decision table" if self.source == "situation" else "decision flowchart"
        lines = [f"The guide's answer ({where}): {GUIDE_ANSWERS[self.guide]}"]
        lines += [f"  {p}" for p in self.path]
        lines.append(f"ragft's refinement (not part of the guide): {self.recommendation}")
        lines += [f"  - {r}" for r in self.reasons]
        if self.assumptions:
            lines.append("Assumed (not answered):")
            lines += [f"  - {a}" for a in self.assumptions]
        if self.evidence:
            lines.append("What the measurements say:")
            lines += [f"  - {e}" for e in self.evidence]
        if self.contradictions:
            lines.append("WARNING - the measurements disagree with the pick:")
            lines += [f"  - {c}" for c in self.contradictions]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data = asdict(self)
        for key in ("path", "reasons", "assumptions", "evidence", "contradictions"):
            data[key] = list(data[key])
        data["guide_text"] = GUIDE_ANSWERS[self.guide]
        return data


def guide_flowchart(changes: bool, citations: bool, volume: int, fmt: bool,
                    examples: int) -> tuple[GuideAnswer, tuple[str, ...]]:
    """The guide's flowchart, exactly: its answer and the questions asked on the way."""
    path = [f"Knowledge changes frequently? {'Yes' if changes else 'No'}"]
    if changes:
        return "rag", (*path, "-> Use RAG")
    path.append(f"Need source citations? {'Yes' if citations else 'No'}")
    if citations:
        return "rag", (*path, "-> Use RAG")
    high = volume > HIGH_VOLUME
    path.append(f">100K queries/month? {'Yes' if high else 'No'} ({volume:,})")
    if not high:
        return "rag", (*path, "-> Use RAG")
    path.append(f"Consistent format critical? {'Yes' if fmt else 'No'}")
    if fmt:
        return "hybrid", (*path, "-> Use Hybrid: RAG + Fine-tune")
    enough = examples >= MIN_EXAMPLES
    path.append(f"Have training data? {'Yes, 500+ examples' if enough else 'No'} ({examples:,})")
    return ("finetuning", (*path, "-> Use Fine-tuning")) if enough else ("rag", (*path, "-> Use RAG"))


def refine(guide: GuideAnswer, *, fmt: bool, examples: int) -> tuple[str, list[str]]:
    """ragft's strategy for the guide's answer, and why (see the module docstring)."""
    enough = examples >= MIN_EXAMPLES
    if guide == "hybrid":
        return "ft_rag", [
            "hybrid pattern 1 (fine-tuned generator over retrieval): the fine-tuned model gives the "
            "consistent format on every answer, retrieval brings the facts",
            "a format needs fewer examples than knowledge (the guide: start with 50+ diverse examples)"
            if not enough else f"with {examples:,} examples a cascade (pattern 4) is the cheaper variant at "
            "volume; `ragft eval --strategies ft_rag,cascade` shows which keeps quality",
        ]
    if guide == "finetuning":
        return "finetuned", [f"{examples:,} training examples and stable knowledge without citations: "
                             "the fine-tuned model alone, no retrieval tokens per query"]
    if fmt and enough:
        return "ft_rag", ["format is critical and there are 500+ examples: fine-tune the generator and keep "
                          "retrieval (the guide's pitfall 'using RAG when format consistency is critical')"]
    return "rag", ["plain RAG, as the guide says: facts stay updatable and citable"]


def knowledge_changes_from(frequency: str, freshness: FreshnessReport | None) -> tuple[bool, str]:
    """Answer "knowledge changes frequently?" from an update frequency: with a freshness report,
    *yes* when one measured fine-tuning update (slowest backend) takes more than
    1/:data:`FRESHNESS_MARGIN` of the interval between updates; without one, the guide's table
    (daily and weekly: yes)."""
    label, per_month = parse_update_frequency(frequency)
    if freshness is None:
        frequent = label in _GUIDE_FREQUENT or (label not in UPDATES_PER_MONTH and per_month > 1)
        return frequent, (f"updates {label}: the guide's table calls fine-tuning "
                          f"{'impractical or expensive' if frequent else 'feasible'} at that pace")
    ft = [m for m in freshness.measurements if m.approach.startswith("finetune")]
    if not ft:
        raise EvaluationError("the freshness report has no fine-tuning measurement; run "
                              "`ragft measure freshness` with a --backend")
    slowest = max(ft, key=lambda m: m.seconds)
    rag = [m for m in freshness.measurements if m.approach == "rag"]
    rag_s = max((m.seconds for m in rag), default=None)
    if per_month == 0:
        return False, "static knowledge: no updates"
    interval = _SECONDS_PER_MONTH / per_month
    frequent = slowest.seconds * FRESHNESS_MARGIN > interval
    text = (f"updates {label} (every {_human(interval)}); measured: a fine-tuning update takes "
            f"{_human(slowest.seconds)} on {slowest.approach}"
            + (f", a RAG update {_human(rag_s)}" if rag_s is not None else "")
            + f" -> {'yes' if frequent else 'no'}: fine-tuning {'cannot' if frequent else 'can'} keep up "
            f"with a {FRESHNESS_MARGIN:.0f}x margin")
    return frequent, text


def _human(seconds: float) -> str:
    for unit, size in (("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def _resolve(inputs: DecisionInputs, freshness: FreshnessReport | None
             ) -> tuple[bool, bool, int, bool, int, list[str], list[str]]:
    assumed: list[str] = []
    evidence: list[str] = []
    changes = inputs.knowledge_changes
    if inputs.update_frequency is not None:
        derived, why = knowledge_changes_from(inputs.update_frequency, freshness)
        if changes is None:
            changes = derived
            evidence.append(f"knowledge changes frequently? {'yes' if derived else 'no'}: {why}")
        elif changes != derived:
            evidence.append(f"you answered 'knowledge changes frequently? {'yes' if changes else 'no'}'; "
                            f"the update frequency says {'yes' if derived else 'no'}: {why}")
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
    return changes, citations, volume, fmt, examples, assumed, evidence


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


def _measured(evaluation: EvalResult, pick: str, changes: bool, citations: bool, volume: int,
              metric: str, margin: float) -> tuple[list[str], list[str], dict[str, dict[str, Any]]]:
    evidence: list[str] = []
    contradictions: list[str] = []
    measured: dict[str, dict[str, Any]] = {}
    eligible: list[str] = []
    simulated = evaluation.meta.get("simulated_prices")
    if simulated:
        evidence.append(f"costs below are SIMULATED (local models priced as {simulated})")
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
        return evidence, contradictions, measured
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
    return evidence, contradictions, measured


def decide(
    inputs: DecisionInputs | None = None,
    *,
    situation: str | None = None,
    evaluation: EvalResult | None = None,
    freshness: FreshnessReport | None = None,
    metric: str = "f1",
    margin: float = 0.05,
) -> Decision:
    """The guide's answer (flowchart from ``inputs``, or the quick decision table for
    ``situation``), ragft's refinement, then what ``evaluation`` and ``freshness`` measured.

    Contradictions flagged (only against strategies that satisfy the constraints: when
    citations are needed, none that answers any question from model weights alone; when
    knowledge changes, no weights-only strategy): a candidate whose ``metric`` beats the
    pick's by more than ``margin``; one within ``margin`` on quality at under half the cost
    per query; one that hallucinates on out-of-scope questions at least 10 points less.
    """
    inputs = inputs or DecisionInputs()
    changes, citations, volume, fmt, examples, assumed, evidence = _resolve(inputs, freshness)
    if situation is not None:
        if situation not in SITUATIONS:
            raise EvaluationError(f"unknown situation {situation!r}; the guide's quick decision table has "
                                  f"{', '.join(SITUATIONS)}")
        wording, guide = SITUATIONS[situation]
        path: tuple[str, ...] = (f"{wording} -> {GUIDE_ANSWERS[guide]}",)
        if evaluation is None:  # the table needs no other answer; defaults only matter for measurements
            assumed = []
    else:
        guide, path = guide_flowchart(changes, citations, volume, fmt, examples)
    pick, reasons = refine(guide, fmt=fmt, examples=examples)
    if freshness is not None:
        per_update = freshness.per_update()
        evidence += [f"measured update ({approach}): {_human(v['seconds'])}, ${v['cost_usd']:.6f} per update"
                     + (" (SIMULATED prices)" if freshness.simulated_prices else "")
                     for approach, v in per_update.items()]
    measured: dict[str, dict[str, Any]] = {}
    contradictions: list[str] = []
    if evaluation is not None:
        more, contradictions, measured = _measured(evaluation, pick, changes, citations, volume, metric, margin)
        evidence += more
    return Decision(guide, path, pick, tuple(reasons), tuple(assumed), tuple(evidence), tuple(contradictions),
                    measured, source="situation" if situation else "flowchart")


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
