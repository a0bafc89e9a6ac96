"""Side-by-side evaluation: every strategy answers the same questions; quality, cost and latency
are measured per question and summarised per strategy.

:func:`run_eval` produces an :class:`EvalResult`: one :class:`QuestionRecord` per (strategy,
question) and one :class:`StrategySummary` per strategy. A strategy that raises on a question
gets an ``error`` record for it and the run goes on, so nothing already measured is lost.

Costs are traceable to the ledger. The harness opens a meter scope around every answer that
tags each model call with ``eval_run`` (this run's id), ``eval_strategy`` (the strategy's key in
the mapping) and ``query`` (the question id). At the end it re-reads the meter's
:class:`~ragft.metering.meter.Ledger` (or the meter's in-memory records when it has none), rolls
the run's calls up by ``eval_strategy`` and checks that every strategy's ledger total equals
the sum of its per-question costs to 1e-9 (:class:`CostCheck`). The strategy's own ``strategy``
tag is kept too, but the roll-up uses ``eval_strategy`` because two entries of the mapping may
be instances of one strategy with the same name (``rag`` with top-3 and top-10). Calls that a
failing strategy made before it raised are still counted: the scope collects them.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ragft.answer import Answer, CallRecord
from ragft.redact import redact
from ragft.serialize import from_record, to_record
from ragft.storage import atomic_write_text
from ragft.errors import (
    AuthenticationError,
    BudgetExceededError,
    EvaluationError,
    ModelNotFoundError,
)
from ragft.eval.judge import LLMJudge
from ragft.eval.plots import plot_quality_vs_cost  # re-exported: its home was here
from ragft.metrics import score_answer
from ragft.eval.questions import Question
from ragft.metering.meter import Meter, RollUp
from ragft.route import Route
from ragft.strategies.base import Strategy

__all__ = [
    "COST_TOLERANCE",
    "CostCheck",
    "EvalResult",
    "QuestionRecord",
    "StrategySummary",
    "format_table",
    "plot_quality_vs_cost",
    "answered_by",
    "route_key",
    "run_eval",
    "summarize",
]

#: Largest allowed difference (USD) between a strategy's ledger total and its answers' sum.
COST_TOLERANCE = 1e-9
RESULT_FORMAT = "ragft-eval"
RESULT_VERSION = 1


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class QuestionRecord:
    """One strategy's answer to one question, with every metric, its cost and latency.

    ``outcome`` is ``answered``, ``correct_abstention``, ``hallucination``,
    ``false_abstention`` (see :mod:`ragft.metrics`) or ``error``. Metrics that do not
    apply are ``None``. ``documents`` are the answer's source documents in rank order;
    ``retrieved`` the documents of every passage retrieval returned (recall@k is over these);
    ``cost_usd`` and the token counts cover every metered call made for the answer (including
    calls made before an error). ``packed``: how many of ``retrieved`` fitted in the context;
    ``answered_by``: the kind of the strategy that produced the final text (see
    :func:`answered_by`); ``failure_modes``: filled in by :mod:`ragft.eval.failure_modes`.
    """

    strategy: str
    qid: str
    kind: str
    question: str
    gold: str
    answer: str
    route: str
    route_key: str
    outcome: str
    abstained: bool
    confidence: float | None
    documents: tuple[str, ...]
    exact_match: float | None
    f1: float | None
    contains: float | None
    citation_precision: float | None
    citation_recall: float | None
    recall_at_k: float | None
    cost_usd: float
    unpriced_calls: int
    calls: int
    input_tokens: int
    output_tokens: int
    embedding_tokens: int
    total_tokens: int
    latency_s: float
    error: str | None = None
    judge_score: int | None = None
    judge_error: str | None = None
    gold_sources: tuple[str, ...] = ()
    retrieved: tuple[str, ...] = ()
    packed: int | None = None
    failure_modes: tuple[str, ...] = ()
    answered_by: str = ""

    @property
    def answerable(self) -> bool:
        """False for out-of-scope questions."""
        return self.kind != "out_of_scope"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return to_record(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QuestionRecord:
        """Inverse of :meth:`to_dict` (unknown keys ignored)."""
        return from_record(cls, data)


#: CSV column order (per-question rows); long text last so the numbers stay readable.
CSV_COLUMNS: tuple[str, ...] = (
    "strategy", "qid", "kind", "outcome", "abstained", "error", "exact_match", "f1", "contains",
    "judge_score", "citation_precision", "citation_recall", "recall_at_k", "cost_usd",
    "unpriced_calls", "calls", "input_tokens", "output_tokens", "embedding_tokens",
    "total_tokens", "latency_s", "confidence", "failure_modes", "packed", "answered_by", "route_key", "route",
    "documents", "gold_sources", "answer", "gold", "question", "price_basis",
)


def answered_by(route: Route) -> str:
    """The kind of the strategy that produced the final text: the innermost step of the route
    (``router -> rag`` answers by ``rag``; a cascade that kept its first answer by ``cascade``;
    a router's refusal by ``router``)."""
    while route.inner is not None:
        route = route.inner
    return route.strategy


def route_key(route: Route) -> str:
    """The first decision of a route, for counting the route mix.

    ``"router: procedural (0.93) -> finetuned | ..."`` -> ``"router: procedural"``;
    a cascade that kept its first answer -> ``"cascade: kept"``, one that escalated ->
    ``"cascade: fallback"``; a simple strategy -> its kind (``"rag"``), or ``"rag: abstain"``
    when it declined without an answer.
    """
    if not route.strategy:
        return str(route)[:40] or "-"
    return f"{route.strategy}: {route.decision}" if route.decision else route.strategy


# --------------------------------------------------------------------------- summaries


@dataclass(frozen=True, slots=True)
class StrategySummary:
    """Per-strategy aggregates over its :class:`QuestionRecord` list.

    Quality means (``exact_match``, ``f1``, ``contains``, ``judge``) are over answerable
    questions, where an abstention or an error scores 0. ``citation_*`` average over answered
    questions that cite something; ``recall_at_k`` over answerable questions with gold sources
    (a question where nothing was retrieved scores 0) and is ``None`` (n/a) for a strategy that
    never returned a source. Rates: ``abstention_rate_oos`` and ``hallucination_rate_oos`` over
    out-of-scope questions, ``false_abstention_rate`` over answerable ones. ``cost_per_query``
    is the total cost over all questions divided by their number.
    """

    strategy: str
    n: int
    n_answerable: int
    n_out_of_scope: int
    errors: int
    exact_match: float | None
    f1: float | None
    contains: float | None
    judge: float | None
    citation_precision: float | None
    citation_recall: float | None
    recall_at_k: float | None
    mean_k: float | None
    cost_total: float
    cost_per_query: float
    unpriced_calls: int
    tokens_per_query: float
    latency_p50: float | None
    latency_p95: float | None
    route_mix: dict[str, int]
    abstention_rate_oos: float | None
    hallucination_rate_oos: float | None
    false_abstention_rate: float | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return to_record(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StrategySummary:
        """Inverse of :meth:`to_dict` (unknown keys ignored)."""
        return from_record(cls, data)

    def quality(self, metric: str = "f1") -> float | None:
        """The named quality figure (``f1``, ``exact_match``, ``contains`` or ``judge``)."""
        if metric not in ("f1", "exact_match", "contains", "judge"):
            raise EvaluationError(f"unknown quality metric {metric!r}; use f1, exact_match, contains or judge")
        return getattr(self, metric)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _percentile(values: Sequence[float], q: float) -> float | None:
    # Linear interpolation between closest ranks (numpy's default), without needing numpy here.
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(strategy: str, records: Sequence[QuestionRecord]) -> StrategySummary:
    """Aggregate one strategy's records (see :class:`StrategySummary` for the definitions)."""
    answerable = [r for r in records if r.answerable]
    oos = [r for r in records if not r.answerable]
    ok = [r for r in records if r.error is None]

    def quality(attr: str) -> float | None:
        return _mean([getattr(r, attr) or 0.0 for r in answerable])

    judged = [r.judge_score for r in answerable if r.judge_score is not None]
    has_retrieval = any(r.retrieved or r.documents for r in records)
    with_gold = [r for r in answerable if r.gold_sources]
    outcomes = Counter(r.outcome for r in records)
    cost_total = sum(r.cost_usd for r in records)
    return StrategySummary(
        strategy=strategy,
        n=len(records),
        n_answerable=len(answerable),
        n_out_of_scope=len(oos),
        errors=outcomes["error"],
        exact_match=quality("exact_match"),
        f1=quality("f1"),
        contains=quality("contains"),
        judge=_mean([float(s) for s in judged]),
        citation_precision=_mean(
            [r.citation_precision for r in answerable if r.citation_precision is not None]
        ),
        citation_recall=_mean([r.citation_recall for r in answerable if r.citation_recall is not None]),
        recall_at_k=_mean([r.recall_at_k or 0.0 for r in with_gold]) if has_retrieval else None,
        mean_k=_mean([float(len(r.retrieved or r.documents)) for r in ok if r.retrieved or r.documents])
        if has_retrieval else None,
        cost_total=cost_total,
        cost_per_query=cost_total / len(records) if records else 0.0,
        unpriced_calls=sum(r.unpriced_calls for r in records),
        tokens_per_query=sum(r.total_tokens for r in records) / len(records) if records else 0.0,
        latency_p50=_percentile([r.latency_s for r in ok], 50),
        latency_p95=_percentile([r.latency_s for r in ok], 95),
        route_mix=dict(Counter(r.route_key for r in records).most_common()),
        abstention_rate_oos=outcomes["correct_abstention"] / len(oos) if oos else None,
        hallucination_rate_oos=outcomes["hallucination"] / len(oos) if oos else None,
        false_abstention_rate=(
            outcomes["false_abstention"] / len(answerable) if answerable else None
        ),
    )


@dataclass(frozen=True, slots=True)
class CostCheck:
    """A strategy's cost from its answers vs. from the ledger. ``ok`` when they agree to
    :data:`COST_TOLERANCE` and the call counts match."""

    answers_usd: float
    ledger_usd: float
    answer_calls: int
    ledger_calls: int
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return to_record(self)


# --------------------------------------------------------------------------- result


def _atomic_write_text(path: str | Path, text: str) -> Path:
    # storage masks secrets in every text it writes (answers and errors come from servers,
    # which may echo a key); this returns the path for the callers that report it.
    atomic_write_text(path, text)
    return Path(path)


@dataclass
class EvalResult:
    """Everything one evaluation run measured; round-trips through :meth:`to_json` /
    :meth:`from_json`."""

    run_id: str
    created_at: str
    strategies: tuple[str, ...]
    question_ids: tuple[str, ...]
    records: list[QuestionRecord]
    summaries: dict[str, StrategySummary]
    cost_check: dict[str, CostCheck] = field(default_factory=dict)
    ledger_path: str | None = None
    judge: str | None = None
    #: Free-form context: strategy kinds, config path, question file, versions.
    meta: dict[str, Any] = field(default_factory=dict)
    #: Per strategy, the failure-mode counts (see :mod:`ragft.eval.failure_modes`); empty until
    #: :func:`ragft.eval.failure_modes.analyze` has run.
    failure_modes: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def costs_traced(self) -> bool:
        """True when every strategy's ledger cost equals the sum over its answers."""
        return all(c.ok for c in self.cost_check.values())

    def records_for(self, strategy: str) -> list[QuestionRecord]:
        """The records of ``strategy``, in question order."""
        if strategy not in self.summaries:
            raise EvaluationError(
                f"strategy {strategy!r} is not in this result; it has {', '.join(self.strategies)}"
            )
        return [r for r in self.records if r.strategy == strategy]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "format": RESULT_FORMAT,
            "version": RESULT_VERSION,
            "run_id": self.run_id,
            "created_at": self.created_at,
            "strategies": list(self.strategies),
            "question_ids": list(self.question_ids),
            "ledger_path": self.ledger_path,
            "judge": self.judge,
            "meta": self.meta,
            "summaries": {k: v.to_dict() for k, v in self.summaries.items()},
            "cost_check": {k: v.to_dict() for k, v in self.cost_check.items()},
            "failure_modes": self.failure_modes,
            "records": [r.to_dict() for r in self.records],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalResult:
        """Inverse of :meth:`to_dict`; raises :class:`EvaluationError` for another format."""
        if data.get("format") != RESULT_FORMAT:
            raise EvaluationError(
                "not a ragft evaluation result (missing \"format\": \"ragft-eval\"); pass the "
                "result.json written by `ragft eval`"
            )
        try:
            return cls(
                run_id=str(data["run_id"]),
                created_at=str(data.get("created_at", "")),
                strategies=tuple(data["strategies"]),
                question_ids=tuple(data.get("question_ids", ())),
                records=[QuestionRecord.from_dict(r) for r in data.get("records", [])],
                summaries={k: StrategySummary.from_dict(v) for k, v in data["summaries"].items()},
                cost_check={k: CostCheck(**v) for k, v in data.get("cost_check", {}).items()},
                ledger_path=data.get("ledger_path"),
                judge=data.get("judge"),
                meta=dict(data.get("meta", {})),
                failure_modes=dict(data.get("failure_modes", {})),
            )
        except (KeyError, TypeError) as exc:
            raise EvaluationError(f"evaluation result is incomplete or malformed: {exc}") from None

    def to_json(self, path: str | Path) -> Path:
        """Write the whole result as indented JSON, atomically."""
        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"
        return _atomic_write_text(path, text)

    @classmethod
    def from_json(cls, path: str | Path) -> EvalResult:
        """Read a result written by :meth:`to_json`."""
        p = Path(path)
        try:
            data = json.loads(p.read_text("utf-8"))
        except FileNotFoundError:
            raise EvaluationError(f"evaluation result {p} not found") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise EvaluationError(f"cannot read evaluation result {p}: {exc}") from None
        if not isinstance(data, Mapping):
            raise EvaluationError(f"evaluation result {p} is not a JSON object")
        return cls.from_dict(data)

    def to_csv(self, path: str | Path) -> Path:
        """Write one row per (strategy, question), atomically."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        simulated = self.meta.get("simulated_prices")
        basis = f"SIMULATED: local models priced as {simulated}" if simulated else "metered"
        for record in self.records:
            row = record.to_dict()
            row["price_basis"] = basis
            row["documents"] = ";".join(record.documents)
            row["gold_sources"] = ";".join(record.gold_sources)
            row["failure_modes"] = ";".join(record.failure_modes)
            writer.writerow({k: "" if row[k] is None else row[k] for k in CSV_COLUMNS})
        return _atomic_write_text(path, buf.getvalue())


# --------------------------------------------------------------------------- running


def _tokens(calls: Sequence[CallRecord]) -> dict[str, int]:
    return {
        "calls": len(calls),
        "input_tokens": sum(c.usage.input_tokens for c in calls),
        "output_tokens": sum(c.usage.output_tokens for c in calls),
        "embedding_tokens": sum(c.usage.embedding_tokens for c in calls),
        "total_tokens": sum(c.usage.total_tokens for c in calls),
        "unpriced_calls": sum(1 for c in calls if c.cost_usd is None),
    }


def _record(
    name: str,
    q: Question,
    answer: Answer | None,
    error: str | None,
    calls: Sequence[CallRecord],
    elapsed: float,
) -> QuestionRecord:
    # Cost comes from the scope's calls, not answer.cost_usd: they are the same for a
    # successful answer, and the scope also holds the calls of an answer that failed midway.
    cost = sum(c.cost_usd for c in calls if c.cost_usd is not None)
    common: dict[str, Any] = {
        "strategy": name,
        "qid": q.id,
        "kind": q.kind,
        "question": q.question,
        "gold": q.answer,
        "gold_sources": q.sources,
        "cost_usd": cost,
        **_tokens(calls),
    }
    if answer is None:
        zero = 0.0 if q.answerable else None  # a failure on an answerable question is a miss
        return QuestionRecord(
            **common, answer="", route="", route_key="error", outcome="error", abstained=False,
            confidence=None, documents=(), exact_match=zero, f1=zero, contains=zero,
            citation_precision=None, citation_recall=None, recall_at_k=None,
            latency_s=elapsed, error=error,
        )
    documents = tuple(s.document for s in answer.sources)
    retrieved = tuple(s.document for s in answer.retrieved)
    scores = score_answer(
        answerable=q.answerable,
        golds=q.golds,
        gold_sources=q.sources,
        prediction=answer.text,
        abstained=answer.abstained,
        documents=documents,
        retrieved=retrieved,
    )
    return QuestionRecord(
        **common,
        answer=answer.text,
        route=str(answer.route),
        route_key=route_key(answer.route),
        outcome=scores.outcome,
        abstained=answer.abstained,
        confidence=answer.confidence,
        documents=documents,
        exact_match=scores.exact_match,
        f1=scores.f1,
        contains=scores.contains,
        citation_precision=scores.citation_precision,
        citation_recall=scores.citation_recall,
        recall_at_k=scores.recall_at_k,
        latency_s=answer.latency_s,
        retrieved=retrieved,
        packed=answer.packed,
        answered_by=answered_by(answer.route),
    )


def _check_inputs(strategies: Mapping[str, Strategy], questions: Sequence[Question], meter: Meter,
                  concurrency: int) -> None:
    if not strategies:
        raise EvaluationError("no strategies to evaluate; pass at least one, e.g. {'rag': rag}")
    if not questions:
        raise EvaluationError("no questions to evaluate; check the question file and --kinds/--limit")
    if concurrency < 1:
        raise EvaluationError(f"concurrency must be >= 1, got {concurrency}")
    ids = [q.id for q in questions]
    if len(set(ids)) != len(ids):
        dupes = sorted(i for i, n in Counter(ids).items() if n > 1)
        raise EvaluationError(f"duplicate question ids {dupes[:5]}; ids must be unique")
    for name, strategy in strategies.items():
        own = getattr(strategy, "meter", meter)
        if own is not meter:
            raise EvaluationError(
                f"strategy {name!r} records its calls on another meter, so its cost could not "
                "be traced; build every strategy with the meter passed to run_eval"
            )


def _cost_check(
    run_id: str, meter: Meter, records: Sequence[QuestionRecord], names: Sequence[str]
) -> tuple[dict[str, CostCheck], dict[str, RollUp]]:
    # Re-read the ledger from disk: it, not the in-memory answers, is the source of truth.
    source = meter.ledger.read() if meter.ledger is not None else meter.records
    groups: dict[str, list[CallRecord]] = {}
    for rec in source:
        if rec.tags.get("eval_run") != run_id:
            continue
        key = (rec.tags.get("eval_strategy") or (f"probe:{rec.tags['eval_probe']}" if "eval_probe" in rec.tags
               else f"judge:{rec.tags.get('eval_judge', '-')}"))
        groups.setdefault(key, []).append(rec)
    rolls = {k: RollUp.of(v) for k, v in groups.items()}
    checks = {}
    for name in names:
        mine = [r for r in records if r.strategy == name]
        answers_usd = sum(r.cost_usd for r in mine)
        answer_calls = sum(r.calls for r in mine)
        roll = rolls.get(name, RollUp())
        checks[name] = CostCheck(
            answers_usd=answers_usd,
            ledger_usd=roll.cost_usd,
            answer_calls=answer_calls,
            ledger_calls=roll.calls,
            ok=abs(answers_usd - roll.cost_usd) <= COST_TOLERANCE and answer_calls == roll.calls,
        )
    return checks, rolls


def is_fatal(exc: BaseException) -> bool:
    """Errors that would fail every remaining question of a strategy the same way: a rejected
    key, an unknown model, a spent run budget. The harness stops calling that strategy."""
    if isinstance(exc, BudgetExceededError):
        return exc.scope == "run"
    return isinstance(exc, (AuthenticationError, ModelNotFoundError))


def run_eval(
    strategies: Mapping[str, Strategy],
    questions: Sequence[Question],
    *,
    meter: Meter,
    concurrency: int = 1,
    progress: bool = True,
    judge: LLMJudge | None = None,
    meta: Mapping[str, Any] | None = None,
) -> EvalResult:
    """Run every strategy over the same ``questions`` and measure them side by side.

    Strategies run one after another (so one's load does not distort another's latency);
    within a strategy up to ``concurrency`` questions run on threads. Every strategy must
    record on ``meter``. ``judge`` (optional, costs model calls) grades answered questions
    1-5; an abstention on an answerable question gets 1 without a call. A progress bar goes
    to stderr unless ``progress=False``.
    """
    _check_inputs(strategies, questions, meter, concurrency)
    run_id = uuid.uuid4().hex[:12]
    names = list(strategies)
    records: list[QuestionRecord] = []

    fatal: dict[str, str] = {}

    def one(name: str, strategy: Strategy, q: Question) -> QuestionRecord:
        start = time.perf_counter()
        answer: Answer | None = None
        error: str | None = None
        with meter.collect(eval_run=run_id, eval_strategy=name, query=q.id) as scope:
            if name in fatal:
                # The same failure would repeat for every question (and a used-up budget
                # must not be retried): record it without calling again.
                error = f"skipped after a fatal error: {fatal[name]}"
            else:
                try:
                    answer = strategy.answer(q.question, query_id=q.id)
                except Exception as exc:  # one failing question must not end the run
                    error = redact(f"{type(exc).__name__}: {exc}")
                    if is_fatal(exc):
                        fatal.setdefault(name, error)
        record = _record(name, q, answer, error, list(scope.records), time.perf_counter() - start)
        if judge is not None and answer is not None and q.answerable:
            record = _judged(record, q, answer, name)
        return record

    def _judged(record: QuestionRecord, q: Question, answer: Answer, name: str) -> QuestionRecord:
        if answer.abstained:
            return replace(record, judge_score=1)
        assert judge is not None
        with meter.collect(eval_run=run_id, eval_judge=name, query=q.id):
            try:
                verdict = judge.judge(q.question, q.answer, answer.text)
            except Exception as exc:  # a judge failure loses only the grade
                return replace(record, judge_error=redact(f"{type(exc).__name__}: {exc}"))
        if verdict.score is None:
            return replace(record, judge_error=f"unparsable judge reply {verdict.raw[:60]!r}")
        return replace(record, judge_score=verdict.score)

    bar = tqdm(
        total=len(names) * len(questions), desc="eval", unit="q", file=sys.stderr,
        disable=not progress, dynamic_ncols=True,
    )
    try:
        for name in names:
            strategy = strategies[name]
            bar.set_postfix_str(name)
            if concurrency == 1:
                batch = []
                for q in questions:
                    batch.append(one(name, strategy, q))
                    bar.update(1)
            else:
                slots: list[QuestionRecord | None] = [None] * len(questions)
                with ThreadPoolExecutor(max_workers=concurrency) as pool:
                    futures = {pool.submit(one, name, strategy, q): i for i, q in enumerate(questions)}
                    for future in as_completed(futures):
                        slots[futures[future]] = future.result()
                        bar.update(1)
                batch = [r for r in slots if r is not None]
            records.extend(batch)
    finally:
        bar.close()

    cost_check, _ = _cost_check(run_id, meter, records, names)
    kinds = {name: getattr(s, "kind", type(s).__name__) for name, s in strategies.items()}
    return EvalResult(
        run_id=run_id,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        strategies=tuple(names),
        question_ids=tuple(q.id for q in questions),
        records=records,
        summaries={n: summarize(n, [r for r in records if r.strategy == n]) for n in names},
        cost_check=cost_check,
        ledger_path=str(meter.ledger.path) if meter.ledger is not None else None,
        judge=judge.name if judge is not None else None,
        meta={"strategy_kinds": kinds, **dict(meta or {})},
    )


# --------------------------------------------------------------------------- presenting


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _usd(value: float) -> str:
    # Enough digits to see a per-query cost of a fraction of a cent.
    return f"${value:.6f}" if value < 1 else f"${value:,.2f}"


def format_table(result: EvalResult) -> str:
    """The side-by-side table (one column per strategy), the route mix and the ledger check,
    as aligned plain text."""
    names = list(result.strategies)
    s = [result.summaries[n] for n in names]
    k = [x.mean_k for x in s if x.mean_k is not None]
    simulated = result.meta.get("simulated_prices")
    sim = " [SIMULATED]" if simulated else ""
    rows: list[tuple[str, list[str]]] = [
        ("questions (answerable/oos)", [f"{x.n} ({x.n_answerable}/{x.n_out_of_scope})" for x in s]),
        ("errors", [str(x.errors) for x in s]),
        ("exact match", [_fmt(x.exact_match) for x in s]),
        ("token F1", [_fmt(x.f1) for x in s]),
        ("contains answer", [_fmt(x.contains) for x in s]),
    ]
    if any(x.judge is not None for x in s):
        rows.append(("judge score (1-5)", [_fmt(x.judge, ".2f") for x in s]))
    rows += [
        ("citation precision", [_fmt(x.citation_precision) for x in s]),
        ("citation recall", [_fmt(x.citation_recall) for x in s]),
        # Over every passage retrieval returned for the answer (Answer.retrieved); for answers
        # that carry only sources, over those.
        (f"retrieval recall@k (k~{sum(k) / len(k):.1f})" if k else "retrieval recall@k",
         [_fmt(x.recall_at_k) for x in s]),
        ("false abstention (answerable)", [_pct(x.false_abstention_rate) for x in s]),
        ("abstained (out of scope)", [_pct(x.abstention_rate_oos) for x in s]),
        ("hallucinated (out of scope)", [_pct(x.hallucination_rate_oos) for x in s]),
        (f"cost / query{sim}", [_usd(x.cost_per_query) for x in s]),
        (f"cost total{sim}", [_usd(x.cost_total) for x in s]),
        ("tokens / query", [f"{x.tokens_per_query:,.0f}" for x in s]),
        ("latency p50 (s)", [_fmt(x.latency_p50) for x in s]),
        ("latency p95 (s)", [_fmt(x.latency_p95) for x in s]),
    ]
    label_w = max(len(label) for label, _ in rows)
    widths = [max(len(n), *(len(cells[i]) for _, cells in rows)) for i, n in enumerate(names)]
    lines = ["  ".join([" " * label_w, *(n.rjust(w) for n, w in zip(names, widths, strict=True))])]
    lines.append("  ".join(["-" * label_w, *("-" * w for w in widths)]))
    for label, cells in rows:
        lines.append("  ".join([label.ljust(label_w), *(c.rjust(w) for c, w in zip(cells, widths, strict=True))]))
    lines.append("")
    if simulated:
        lines.append(f"SIMULATED PRICES: local models charged as {simulated}; these costs were not paid")
    lines.append("route mix:")
    for x in s:
        mix = ", ".join(f"{key} {count / x.n:.0%}" for key, count in x.route_mix.items()) if x.n else "-"
        lines.append(f"  {x.strategy}: {mix}")
    unpriced = [x.strategy for x in s if x.unpriced_calls]
    if unpriced:
        lines.append(f"note: {', '.join(unpriced)} made unpriced calls; their cost is a lower bound")
    where = result.ledger_path or "the meter's in-memory records (no ledger file)"
    bad = [n for n, c in result.cost_check.items() if not c.ok]
    if not result.cost_check:
        lines.append("costs: not checked against a ledger")
    elif bad:
        for n in bad:
            c = result.cost_check[n]
            lines.append(
                f"COST MISMATCH {n}: answers ${c.answers_usd:.9f} ({c.answer_calls} calls) vs "
                f"ledger ${c.ledger_usd:.9f} ({c.ledger_calls} calls) in {where}"
            )
    else:
        lines.append(f"costs: every strategy's total equals its ledger roll-up ({where})")
    return "\n".join(lines)
