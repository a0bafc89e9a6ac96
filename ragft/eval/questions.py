"""The evaluation question set: :class:`Question` and :func:`load_questions`.

A question file is JSONL, one object per line (``corpus/questions.jsonl`` is the sample)::

    {"id": "q003", "question": "...", "answer": "2,000 credits per month",
     "aliases": ["2,000", "2000 credits"], "sources": ["product/pricing.md"], "kind": "factual"}

``id`` and ``question`` are required; ``answer`` is required except for ``out_of_scope``
questions (whose correct behaviour is to abstain); ``sources`` are document paths relative to
the corpus root. Every problem found is reported with its line number, all at once, so a
hand-edited file can be fixed in one pass.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from ragft.errors import EvaluationError
from ragft.serialize import to_record

__all__ = ["KINDS", "Question", "QuestionKind", "filter_questions", "load_questions"]

QuestionKind = Literal["factual", "procedural", "format", "out_of_scope"]
#: The kinds a question may have, in the order tables list them.
KINDS: tuple[str, ...] = get_args(QuestionKind)


@dataclass(frozen=True, slots=True)
class Question:
    """One evaluation question with its gold answer, accepted aliases and gold source documents.

    ``answerable`` is false for ``out_of_scope`` questions: the knowledge base does not contain
    their answer, so the right response is an abstention.
    """

    id: str
    question: str
    answer: str = ""
    aliases: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    kind: str = "factual"

    @property
    def answerable(self) -> bool:
        """True unless the question is out of scope for the knowledge base."""
        return self.kind != "out_of_scope"

    @property
    def golds(self) -> tuple[str, ...]:
        """The gold answer followed by its aliases (empty strings dropped)."""
        return tuple(g for g in (self.answer, *self.aliases) if g.strip())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict in the file's own layout."""
        return to_record(self)


def _strings(value: Any, field: str, where: str, problems: list[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):  # a single alias/source written without brackets
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    problems.append(f"{where}: {field!r} must be a list of strings")
    return ()


def _parse(record: Any, where: str, problems: list[str]) -> Question | None:
    if not isinstance(record, Mapping):
        problems.append(f"{where}: expected a JSON object, got {type(record).__name__}")
        return None
    before = len(problems)
    qid = record.get("id")
    if not isinstance(qid, (str, int)) or isinstance(qid, bool) or str(qid).strip() == "":
        problems.append(f'{where}: missing "id" (give every question a unique id, e.g. "q001")')
    text = record.get("question")
    if not isinstance(text, str) or not text.strip():
        problems.append(f'{where}: missing "question" text')
    kind = record.get("kind", "factual")
    if kind not in KINDS:
        problems.append(f"{where}: unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    answer = record.get("answer", "")
    if answer is None:
        answer = ""
    if not isinstance(answer, str):
        problems.append(f'{where}: "answer" must be a string')
        answer = ""
    elif kind in KINDS and kind != "out_of_scope" and not answer.strip():
        problems.append(f'{where}: "answer" is empty; only out_of_scope questions may omit it')
    aliases = _strings(record.get("aliases"), "aliases", where, problems)
    sources = _strings(record.get("sources"), "sources", where, problems)
    if len(problems) > before:
        return None
    return Question(
        id=str(qid).strip(),
        question=str(text).strip(),
        answer=answer.strip(),
        aliases=tuple(a.strip() for a in aliases if a.strip()),
        sources=tuple(s.strip() for s in sources if s.strip()),
        kind=str(kind),
    )


def filter_questions(
    questions: Iterable[Question],
    *,
    kinds: Iterable[str] | None = None,
    limit: int | None = None,
) -> list[Question]:
    """``questions`` restricted to ``kinds`` (all when ``None``), then the first ``limit``."""
    wanted = None if kinds is None else set(kinds)
    if wanted is not None:
        unknown = wanted - set(KINDS)
        if unknown:
            raise EvaluationError(
                f"unknown question kind(s) {sorted(unknown)}; use any of {', '.join(KINDS)}"
            )
    picked = [q for q in questions if wanted is None or q.kind in wanted]
    if limit is not None:
        if limit < 0:
            raise EvaluationError(f"limit must be >= 0, got {limit}")
        picked = picked[:limit]
    return picked


def load_questions(
    path: str | Path,
    *,
    kinds: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[Question]:
    """Read and validate a question file; keep only ``kinds`` and at most ``limit`` questions.

    Raises :class:`~ragft.errors.EvaluationError` listing every bad line (invalid JSON, missing
    id or question, unknown kind, duplicate id) with its line number.
    """
    p = Path(path)
    try:
        text = p.read_text("utf-8-sig")
    except FileNotFoundError:
        raise EvaluationError(f"question file {p} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EvaluationError(f"cannot read question file {p}: {exc}") from None
    problems: list[str] = []
    questions: list[Question] = []
    first_seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{p.name} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})")
            continue
        question = _parse(record, where, problems)
        if question is None:
            continue
        if question.id in first_seen:
            problems.append(
                f"{where}: duplicate id {question.id!r} (first used on line "
                f"{first_seen[question.id]}); ids must be unique"
            )
            continue
        first_seen[question.id] = number
        questions.append(question)
    if problems:
        shown = problems[:20]
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise EvaluationError(
            f"question file {p} has {len(problems)} problem(s):\n  " + "\n  ".join(shown) + more
        )
    if not questions:
        raise EvaluationError(f"question file {p} contains no questions")
    return filter_questions(questions, kinds=kinds, limit=limit)
