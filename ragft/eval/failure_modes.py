"""Failure modes per strategy: *how* each answer went wrong, counted per question.

The guide names three ways RAG fails and three ways fine-tuning fails. Each is a rule over one
evaluated question (a :class:`~ragft.eval.harness.QuestionRecord`) or one probe answer
(:mod:`ragft.eval.probes`); a question can match several rules. "Gold retrieved" means a gold
source document is among the passages retrieval returned (``record.retrieved``, in rank order).

RAG side (only for answers that went through retrieval — a router's fine-tuned route, a
cascade's kept first answer and a refusal did not; ``n/a`` for a strategy that never retrieves):

* ``retrieval_miss`` — an answerable question with gold sources where no gold document was
  retrieved (nothing retrieved counts too). Denominator: answerable questions with gold sources
  whose answer went through retrieval.
* ``wrong_context`` — a gold document was retrieved, the strategy answered (no abstention),
  and the answer is wrong or cites only non-gold documents. *Wrong* means: it does not contain
  the gold answer and its token F1 against it is below :data:`WRONG_F1` (0.5).
  Denominator: answerable questions where a gold document was retrieved.
* ``buried`` — a gold document was retrieved, the answer is wrong or an abstention, and the
  first gold passage was outside the packed context (rank > passages packed) or deep in it
  (rank > :data:`DEEP_RANK`). The ranks are reported (``positions``).
  Denominator: as ``wrong_context``.
* ``false_abstention`` — an answerable question answered "I don't know".
  Denominator: answerable questions.

Fine-tuning side:

* ``confident_hallucination`` — an answer (no abstention) with confidence at or above the
  cascade threshold that is wrong (as above) on an answerable question, or any answer to an
  out-of-scope question. Denominator: answers with a confidence; ``n/a`` for a strategy
  that reports none.
* ``overfitting`` — an out-of-scope question or a greeting probe answered with training
  content: the answer's best token F1 against the training answers is at least
  :data:`OVERFIT_F1`. Denominator: out-of-scope questions plus greeting probes; ``n/a``
  without training answers (``ragft eval --training-data``).
* ``catastrophic_forgetting`` — general-knowledge probes the base model answers correctly and
  this strategy does not. Reported with both accuracies and the drop in points (shown as
  ``-20 pts`` in the table). Denominator: the probes the base model got right; ``n/a`` without
  probes, or when the base model answered none of them (nothing to forget).

Errors (a strategy raising) are not a failure mode of the approach; they are counted apart.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from ragft.errors import EvaluationError
from ragft.eval.harness import EvalResult, QuestionRecord
from ragft.eval.probes import ProbeAnswer
from ragft.metrics import best_token_f1, doc_path, same_document
from ragft.storage import atomic_write_bytes

__all__ = [
    "DEEP_RANK",
    "MODES",
    "OVERFIT_F1",
    "WRONG_F1",
    "FailureModes",
    "ModeCount",
    "analyze",
    "classify",
    "format_failure_modes",
    "gold_rank",
    "load_training_answers",
    "write_failure_modes_csv",
]

#: A gold passage ranked deeper than this in the context counts as "deep in it".
DEEP_RANK = 3
#: Token F1 against a training answer at or above which an answer is "training content".
OVERFIT_F1 = 0.5
#: An answer is *wrong* when it does not contain the gold answer and its token F1 against the
#: gold is below this (a paraphrased procedure with the right steps is not wrong).
WRONG_F1 = 0.5
#: Examples kept per mode.
EXAMPLES = 3

#: Strategy kinds whose answers come from retrieved passages (a record's ``answered_by``).
RETRIEVAL_KINDS = frozenset({"rag", "ft_rag", "rewrite_rag"})

Side = Literal["rag", "finetuning"]
#: Every mode, in report order, with its side.
MODES: tuple[tuple[str, Side], ...] = (
    ("retrieval_miss", "rag"),
    ("wrong_context", "rag"),
    ("buried", "rag"),
    ("false_abstention", "rag"),
    ("confident_hallucination", "finetuning"),
    ("overfitting", "finetuning"),
    ("catastrophic_forgetting", "finetuning"),
)


def gold_rank(record: QuestionRecord) -> int | None:
    """1-based rank of the first retrieved passage from a gold document (``None``: none)."""
    for rank, doc in enumerate(record.retrieved or record.documents, start=1):
        if any(same_document(doc, g) for g in record.gold_sources):
            return rank
    return None


def went_through_retrieval(record: QuestionRecord, strategy_retrieves: bool = True) -> bool:
    """Whether this answer came from a retrieval step: by the route (``answered_by``: a router
    sending the question to the fine-tuned model, a cascade keeping its first answer or a
    refusal did not retrieve), else by whether the strategy retrieves at all."""
    if record.answered_by:
        return record.answered_by in RETRIEVAL_KINDS
    return strategy_retrieves


def _wrong(record: QuestionRecord) -> bool:
    """Answered, but not the gold: see :data:`WRONG_F1`."""
    return not record.abstained and not record.contains and (record.f1 or 0.0) < WRONG_F1


def _cites_only_other_documents(record: QuestionRecord) -> bool:
    cited = [doc_path(d) for d in record.documents]
    return bool(cited) and not any(same_document(c, g) for c in cited for g in record.gold_sources)


def classify(
    record: QuestionRecord,
    *,
    threshold: float,
    training_answers: Sequence[str] = (),
    retrieves: bool = True,
) -> tuple[str, ...]:
    """The failure modes one question's answer falls into (see the module docstring).

    ``retrieves``: whether the strategy retrieves at all; the RAG-side rules apply to answers
    that went through retrieval (:func:`went_through_retrieval`). ``threshold``: the
    confidence at which an answer counts as confident.
    """
    if record.error:
        return ()
    modes: list[str] = []
    if record.answerable:
        rank = gold_rank(record)
        if went_through_retrieval(record, retrieves) and record.gold_sources:
            if rank is None:
                modes.append("retrieval_miss")
            else:
                if _wrong(record) or (not record.abstained and _cites_only_other_documents(record)):
                    modes.append("wrong_context")
                outside = record.packed is not None and rank > record.packed
                if (_wrong(record) or record.abstained) and (outside or rank > DEEP_RANK):
                    modes.append("buried")
        if record.abstained:
            modes.append("false_abstention")
    confident = record.confidence is not None and record.confidence >= threshold
    if confident and not record.abstained and (not record.answerable or _wrong(record)):
        modes.append("confident_hallucination")
    if (not record.answerable and not record.abstained and training_answers
            and best_token_f1(record.answer, training_answers) >= OVERFIT_F1):
        modes.append("overfitting")
    return tuple(modes)


@dataclass(frozen=True, slots=True)
class ModeCount:
    """One mode for one strategy: ``count`` of ``of`` (``None``: not applicable, ``why``),
    example questions, and per-mode detail (``buried``: ranks; forgetting: accuracies)."""

    mode: str
    side: Side
    count: int | None
    of: int | None
    examples: tuple[dict[str, str], ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)
    why: str = ""

    @property
    def rate(self) -> float | None:
        """``count / of`` (``None`` when not applicable or the denominator is 0)."""
        return self.count / self.of if self.count is not None and self.of else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (with the rate)."""
        data = asdict(self)
        data["examples"] = list(self.examples)
        data["rate"] = self.rate
        return data


@dataclass(frozen=True, slots=True)
class FailureModes:
    """Every mode of one strategy, in :data:`MODES` order."""

    strategy: str
    modes: tuple[ModeCount, ...]
    threshold: float
    errors: int = 0

    def get(self, mode: str) -> ModeCount:
        """The named mode."""
        return next(m for m in self.modes if m.mode == mode)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``{"threshold", "errors", "modes": {name: {...}}}``."""
        return {"threshold": self.threshold, "errors": self.errors,
                "modes": {m.mode: m.to_dict() for m in self.modes}}


def _example(record: QuestionRecord, extra: str = "") -> dict[str, str]:
    out = {"qid": record.qid, "question": record.question, "answer": record.answer[:160],
           "gold": record.gold}
    if extra:
        out["note"] = extra
    return out


def _strategy_modes(
    name: str,
    records: Sequence[QuestionRecord],
    modes_of: Mapping[str, tuple[str, ...]],
    *,
    threshold: float,
    training_answers: Sequence[str],
    probes: Sequence[ProbeAnswer] | None,
    base_probes: Sequence[ProbeAnswer] | None,
) -> FailureModes:
    ok = [r for r in records if not r.error]
    strategy_retrieves = any(r.retrieved or r.documents for r in ok)
    retrieved_answers = [r for r in ok if went_through_retrieval(r, strategy_retrieves)]
    retrieves = bool(retrieved_answers)
    answerable = [r for r in ok if r.answerable]
    with_gold = [r for r in retrieved_answers if r.answerable and r.gold_sources]
    gold_retrieved = [r for r in with_gold if gold_rank(r) is not None]
    confident_known = [r for r in ok if r.confidence is not None]

    def hits(mode: str) -> list[QuestionRecord]:
        return [r for r in ok if mode in modes_of[r.qid]]

    def count(mode: str, side: Side, of: int, *, detail: dict[str, Any] | None = None,
              note: Any = None) -> ModeCount:
        found = hits(mode)
        examples = tuple(_example(r, note(r) if note else "") for r in found[:EXAMPLES])
        return ModeCount(mode, side, len(found), of, examples, detail or {})

    def na(mode: str, side: Side, why: str) -> ModeCount:
        return ModeCount(mode, side, None, None, why=why)

    out: list[ModeCount] = []
    if retrieves:
        out.append(count("retrieval_miss", "rag", len(with_gold),
                         note=lambda r: f"retrieved {', '.join(dict.fromkeys(r.retrieved)) or 'nothing'}"))
        out.append(count("wrong_context", "rag", len(gold_retrieved),
                         note=lambda r: f"cited {', '.join(dict.fromkeys(r.documents)) or 'nothing'}"))
        ranks = Counter(
            "outside" if r.packed is not None and (gold_rank(r) or 0) > r.packed else str(gold_rank(r))
            for r in hits("buried")
        )
        out.append(count("buried", "rag", len(gold_retrieved), detail={"positions": dict(sorted(ranks.items()))},
                         note=lambda r: f"gold passage at rank {gold_rank(r)} of {len(r.retrieved)}"
                         + (f", {r.packed} packed" if r.packed is not None else "")))
    else:
        for mode in ("retrieval_miss", "wrong_context", "buried"):
            out.append(na(mode, "rag", "the strategy does not retrieve"))
    out.append(count("false_abstention", "rag", len(answerable)))

    if confident_known:
        out.append(count("confident_hallucination", "finetuning", len(confident_known),
                         note=lambda r: f"confidence {r.confidence:.2f} >= {threshold:.2f}"))
    else:
        out.append(na("confident_hallucination", "finetuning", "the strategy reports no confidence"))

    greetings = [p for p in probes or () if p.kind == "greeting" and not p.error]
    if training_answers:
        oos = [r for r in ok if not r.answerable]
        overfit = count("overfitting", "finetuning", len(oos) + len(greetings))
        extra = [
            {"qid": "probe", "question": p.prompt, "answer": p.answer[:160], "gold": "",
             "note": f"token F1 {best_token_f1(p.answer, training_answers):.2f} with a training answer"}
            for p in greetings
            if not p.abstained and best_token_f1(p.answer, training_answers) >= OVERFIT_F1
        ]
        examples = (*overfit.examples, *extra)[:EXAMPLES]
        out.append(ModeCount("overfitting", "finetuning", (overfit.count or 0) + len(extra), overfit.of,
                             tuple(examples), {"greetings_answered_with_training_content": len(extra)}))
    else:
        out.append(na("overfitting", "finetuning", "no training answers (pass --training-data)"))

    general = [p for p in probes or () if p.kind == "general"]
    base_general = [p for p in base_probes or () if p.kind == "general"]
    if general and base_general and not any(p.correct for p in base_general):
        out.append(ModeCount("catastrophic_forgetting", "finetuning", None, None,
                             detail={"base_accuracy": 0.0, "probes": len(general)},
                             why="the base model answered none of the general-knowledge probes: nothing to forget"))
    elif general and base_general:
        base_right = {p.prompt for p in base_general if p.correct}
        mine = {p.prompt: p for p in general}
        lost = [mine[p.prompt] for p in base_general
                if p.prompt in base_right and p.prompt in mine and not mine[p.prompt].correct]
        base_acc = len(base_right) / len(base_general)
        acc = sum(1 for p in general if p.correct) / len(general)
        out.append(ModeCount(
            "catastrophic_forgetting", "finetuning", len(lost), len(base_right),
            tuple({"qid": "probe", "question": p.prompt, "answer": p.answer[:160], "gold": "",
                   "note": "the base model answered it"} for p in lost[:EXAMPLES]),
            {"base_accuracy": base_acc, "accuracy": acc, "drop_points": round(100 * (base_acc - acc), 1),
             "probes": len(general)},
        ))
    else:
        out.append(na("catastrophic_forgetting", "finetuning", "no general-knowledge probes (run without --no-probes)"))
    return FailureModes(name, tuple(out), threshold, errors=sum(1 for r in records if r.error))


def analyze(
    result: EvalResult,
    *,
    threshold: float,
    training_answers: Sequence[str] = (),
    probes: Mapping[str, Sequence[ProbeAnswer]] | None = None,
    base: str | None = "base",
) -> dict[str, FailureModes]:
    """Classify every record of ``result`` (each record's ``failure_modes`` is filled in, in
    place) and count the modes per strategy. ``probes`` maps strategy names (and ``base``, the
    reference for forgetting) to their probe answers."""
    probes = probes or {}
    base_probes = probes.get(base) if base else None
    out: dict[str, FailureModes] = {}
    per_record: dict[tuple[str, str], tuple[str, ...]] = {}
    for name in result.strategies:
        records = result.records_for(name)
        retrieves = any(r.retrieved or r.documents for r in records if not r.error)
        classified = {
            r.qid: classify(r, threshold=threshold, training_answers=training_answers, retrieves=retrieves)
            for r in records
        }
        per_record.update({(name, qid): modes for qid, modes in classified.items()})
        out[name] = _strategy_modes(
            name, records, classified, threshold=threshold, training_answers=training_answers,
            probes=probes.get(name), base_probes=base_probes,
        )
    result.records[:] = [replace(r, failure_modes=per_record[(r.strategy, r.qid)]) for r in result.records]
    result.failure_modes = {n: fm.to_dict() for n, fm in out.items()}
    return out


def _cell(m: ModeCount) -> str:
    if m.count is None:
        return "n/a"
    if m.mode == "catastrophic_forgetting":
        return f"-{m.detail['drop_points']:.0f} pts" if m.detail["drop_points"] > 0 else f"{-m.detail['drop_points']:+.0f} pts"
    return f"{m.count}/{m.of}" if m.of else "0/0"


def format_failure_modes(result: EvalResult) -> str:
    """The failure-mode table (one column per strategy) and a few examples per mode."""
    names = [n for n in result.strategies if n in result.failure_modes]
    if not names:
        return ""
    rows = []
    for mode, side in MODES:
        cells = [_cell(_mode_from(result.failure_modes[n], mode)) for n in names]
        rows.append((f"{mode.replace('_', ' ')} [{side}]", cells))
    label_w = max(len(label) for label, _ in rows)
    widths = [max(len(n), *(len(cells[i]) for _, cells in rows)) for i, n in enumerate(names)]
    lines = ["failure modes (questions that fell into each; a question can count in several):",
             "  ".join([" " * label_w, *(n.rjust(w) for n, w in zip(names, widths, strict=True))])]
    for label, cells in rows:
        lines.append("  ".join([label.ljust(label_w), *(c.rjust(w) for c, w in zip(cells, widths, strict=True))]))
    lines.append("examples:")
    for n in names:
        for mode, _ in MODES:
            m = _mode_from(result.failure_modes[n], mode)
            for ex in m.examples[:1]:
                note = f" ({ex['note']})" if ex.get("note") else ""
                lines.append(f"  {n} / {mode}: {ex['question']!r} -> {ex['answer'][:70]!r}{note}")
    return "\n".join(lines)


def _mode_from(data: Mapping[str, Any], mode: str) -> ModeCount:
    m = data["modes"][mode]
    return ModeCount(m["mode"], m["side"], m["count"], m["of"], tuple(m.get("examples", ())),
                     dict(m.get("detail", {})), m.get("why", ""))


def load_training_answers(path: str | Path) -> list[str]:
    """The answers a model was trained on, from a chat JSONL (assistant messages) or a JSONL of
    ``{"question", "answer"}`` records (``corpus/finetune/qa_train.jsonl``)."""
    p = Path(path)
    try:
        lines = p.read_text("utf-8").splitlines()
    except OSError as exc:
        raise EvaluationError(f"cannot read the training data {p}: {exc}") from None
    answers: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvaluationError(f"{p} line {number}: not JSON ({exc.msg})") from None
        if isinstance(row, dict) and isinstance(row.get("messages"), list):
            answers += [str(m.get("content", "")) for m in row["messages"]
                        if isinstance(m, dict) and m.get("role") == "assistant"]
        elif isinstance(row, dict) and isinstance(row.get("answer"), str):
            answers.append(row["answer"])
        else:
            raise EvaluationError(f"{p} line {number}: expected chat messages or an \"answer\" field")
    return [a for a in answers if a.strip()]


#: Columns of ``failure_modes.csv``.
CSV_COLUMNS = ("strategy", "mode", "side", "count", "of", "rate", "detail", "examples", "why")


def write_failure_modes_csv(result: EvalResult, path: str | Path) -> Path:
    """One row per (strategy, mode), atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for name, data in result.failure_modes.items():
        for mode, _ in MODES:
            m = _mode_from(data, mode)
            writer.writerow({
                "strategy": name, "mode": mode, "side": m.side,
                "count": "" if m.count is None else m.count, "of": "" if m.of is None else m.of,
                "rate": "" if m.rate is None else f"{m.rate:.4f}",
                "detail": json.dumps(m.detail) if m.detail else "",
                "examples": " | ".join(e["qid"] + ": " + e["question"] for e in m.examples),
                "why": m.why,
            })
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))
    return Path(path)
