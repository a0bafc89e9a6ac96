"""Answer-quality metrics as pure functions: best-of-aliases EM/F1, containment, citations,
retrieval recall and abstention outcomes, and :func:`score_answer` combining them per question.

String matching reuses :mod:`ragft.answer_metrics` (SQuAD normalisation, exact match, token
F1); retrieval recall reuses :func:`ragft.eval.metrics.recall_at_k`. Nothing here calls a model.

How abstention is scored (the part plain EM/F1 gets wrong):

====================  ================  ============================================
question              answer            outcome
====================  ================  ============================================
out_of_scope          abstained         ``correct_abstention`` (the right behaviour)
out_of_scope          anything else     ``hallucination``
answerable            abstained         ``false_abstention`` (a miss, counted apart)
answerable            an answer         ``answered`` (scored by EM / F1 / contains)
====================  ================  ============================================

An abstention on an answerable question scores 0 on EM, F1 and contains: declining is not an
answer, whatever words the refusal happens to share with the gold. Out-of-scope questions have
no EM/F1 (``None``): the abstention rate is their metric.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ragft.answer_metrics import exact_match, normalize_answer, token_f1
from ragft.eval.metrics import recall_at_k

__all__ = [
    "AnswerScores",
    "Outcome",
    "abstention_outcome",
    "answer_parts",
    "best_exact_match",
    "best_token_f1",
    "citation_scores",
    "contains_answer",
    "doc_path",
    "retrieval_recall",
    "score_answer",
    "strip_citations",
]

Outcome = Literal["answered", "correct_abstention", "hallucination", "false_abstention"]

# "[1]", "[2, 3]", "[1][2]": the passage markers RAG prompts ask models to add.
_CITATION_MARKER = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")
# Multi-part gold answers separate their parts with "; " or " and " (corpus/README.md).
_PART_SEPARATOR = re.compile(r";\s+|\s+and\s+", re.IGNORECASE)


def strip_citations(text: str) -> str:
    """``text`` without passage markers such as ``[1]`` or ``[2, 3]``: they are not part of
    the answer, and left in they would cost an otherwise exact answer its exact match."""
    return _CITATION_MARKER.sub("", text).strip()


def best_exact_match(prediction: str, golds: Iterable[str]) -> float:
    """The best :func:`~ragft.answer_metrics.exact_match` against the gold answer and its
    aliases (0.0 when there is no gold)."""
    return max((exact_match(prediction, g) for g in golds), default=0.0)


def best_token_f1(prediction: str, golds: Iterable[str]) -> float:
    """The best :func:`~ragft.answer_metrics.token_f1` against the gold answer and its aliases."""
    return max((token_f1(prediction, g) for g in golds), default=0.0)


def _contains(haystack: str, needle: str) -> bool:
    # Compare normalised token sequences at word boundaries so "45" is not found in "145".
    n = normalize_answer(needle)
    return bool(n) and f" {n} " in f" {haystack} "


def answer_parts(gold: str) -> list[str]:
    """The parts of a multi-part gold answer (``"A; B"``, ``"A and B"``); one part otherwise."""
    return [p.strip() for p in _PART_SEPARATOR.split(gold) if p.strip()]


def contains_answer(prediction: str, golds: Iterable[str]) -> float:
    """1.0 when the normalised prediction contains a gold answer or alias as a whole phrase, or
    contains every part of a multi-part gold; else 0.0.

    Useful where EM is too strict: extractive readers return a whole sentence around the fact,
    and formatted answers (bullets, tables) hold the parts in another order.
    """
    haystack = normalize_answer(prediction)
    if not haystack:
        return 0.0
    for gold in golds:
        if _contains(haystack, gold):
            return 1.0
        parts = answer_parts(gold)
        if len(parts) > 1 and all(_contains(haystack, p) for p in parts):
            return 1.0
    return 0.0


def doc_path(document: str) -> str:
    """The file part of a cited document id: ``records/offices.jsonl#3`` -> ``records/offices.jsonl``
    (JSON/JSONL records are cited per record, gold sources name the file)."""
    path = document.split("#", 1)[0].replace("\\", "/").strip()
    while path.startswith("./"):
        path = path[2:]
    return path


def _same_doc(a: str, b: str) -> bool:
    # Equal, or one is the other under a parent folder: an index built over "corpus/" names
    # "docs/policies/x.md" what the gold (relative to corpus/docs) calls "policies/x.md".
    return a == b or a.endswith("/" + b) or b.endswith("/" + a)


def _canonical(cited: Iterable[str], gold: Sequence[str]) -> list[str]:
    # Map each cited path to the gold path it matches (if any), keeping order and duplicates.
    out = []
    for doc in cited:
        path = doc_path(doc)
        out.append(next((g for g in gold if _same_doc(path, g)), path))
    return out


def citation_scores(
    cited_documents: Iterable[str], gold_sources: Iterable[str]
) -> tuple[float | None, float | None]:
    """``(precision, recall)`` of the distinct cited documents against the gold sources.

    Documents are compared on their path part (see :func:`doc_path`). Precision is ``None`` when
    nothing is cited (undefined, not 0); recall is ``None`` when there are no gold sources.
    """
    gold = list(dict.fromkeys(doc_path(g) for g in gold_sources))
    cited = list(dict.fromkeys(_canonical(cited_documents, gold)))
    hits = set(cited) & set(gold)
    precision = len(hits) / len(cited) if cited else None
    recall = len(hits) / len(gold) if gold else None
    return precision, recall


def retrieval_recall(retrieved_documents: Sequence[str], gold_sources: Iterable[str]) -> float | None:
    """Recall@k of the gold documents among the ``k`` documents an answer carries
    (``k = len(retrieved_documents)``); ``None`` when there is no gold source or nothing was
    retrieved (a strategy without retrieval has no recall to report)."""
    gold = list(dict.fromkeys(doc_path(g) for g in gold_sources))
    if not gold or not retrieved_documents:
        return None
    ranked = _canonical(retrieved_documents, gold)
    return recall_at_k(ranked, gold, k=len(ranked))


def abstention_outcome(answerable: bool, abstained: bool) -> Outcome:
    """How an answer's (non-)abstention counts; see the table in the module docstring."""
    if answerable:
        return "false_abstention" if abstained else "answered"
    return "correct_abstention" if abstained else "hallucination"


@dataclass(frozen=True, slots=True)
class AnswerScores:
    """Every metric of one answer to one question (``None``: not applicable)."""

    outcome: Outcome
    exact_match: float | None = None
    f1: float | None = None
    contains: float | None = None
    citation_precision: float | None = None
    citation_recall: float | None = None
    recall_at_k: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "outcome": self.outcome,
            "exact_match": self.exact_match,
            "f1": self.f1,
            "contains": self.contains,
            "citation_precision": self.citation_precision,
            "citation_recall": self.citation_recall,
            "recall_at_k": self.recall_at_k,
        }


def score_answer(
    *,
    answerable: bool,
    golds: Sequence[str],
    gold_sources: Sequence[str],
    prediction: str,
    abstained: bool,
    documents: Sequence[str] = (),
    retrieved: Sequence[str] = (),
) -> AnswerScores:
    """Score one answer. ``documents`` are the answer's source documents, in rank order;
    ``retrieved`` the documents of everything retrieval returned (recall@k is measured on it,
    falling back to ``documents`` when a strategy reports no retrieval list).

    * Out of scope: only the outcome (abstained or hallucinated).
    * Answerable and abstained: EM/F1/contains are 0 and nothing is cited; ``recall_at_k``
      still reports whether the documents it carries (usually none) held the gold.
    * Answered: best-of-aliases EM and F1, containment (all on the text without citation
      markers, see :func:`strip_citations`), citation precision/recall and recall@k over
      ``documents``.
    """
    outcome = abstention_outcome(answerable, abstained)
    if not answerable:
        return AnswerScores(outcome=outcome)
    recall_k = retrieval_recall(retrieved or documents, gold_sources)
    if abstained:
        return AnswerScores(
            outcome=outcome, exact_match=0.0, f1=0.0, contains=0.0, recall_at_k=recall_k
        )
    precision = recall = None
    # Citation quality needs both citations and gold sources to judge them against; an answer
    # citing nothing has no citation precision (recall@k already shows what it missed).
    if documents and gold_sources:
        precision, recall = citation_scores(documents, gold_sources)
    text = strip_citations(prediction)
    return AnswerScores(
        outcome=outcome,
        exact_match=best_exact_match(text, golds),
        f1=best_token_f1(text, golds),
        contains=contains_answer(text, golds),
        citation_precision=precision,
        citation_recall=recall,
        recall_at_k=recall_k,
    )
