"""Every answer and retrieval metric, as pure functions: the one place ragft scores answers.

Three groups, used by the fine-tuning evaluator (``finetune``), the evaluation harness
(``eval``) and the benchmarks alike, which is why this module sits at the top of the package
and imports nothing else of ragft:

* **Answer matching** (SQuAD v1.1, Rajpurkar et al., ``evaluate-v1.1.py``):
  :func:`normalize_answer` is the official normalisation exactly — lower-case, delete the ASCII
  punctuation of :data:`string.punctuation`, drop the articles *a/an/the*, collapse whitespace.
  Unicode punctuation (curly quotes, dashes) is *kept*, as the official script keeps it, so
  scores are comparable with published ones. :func:`exact_match`, :func:`token_f1`, the
  best-of-aliases forms and :func:`contains_answer` build on it.
* **Retrieval** over a ranked list of ids: :func:`recall_at_k`, :func:`mrr`, :func:`ndcg_at_k`.
  Ids are compared as given (chunk or document ids: the caller chooses the unit), and an id that
  appears twice counts once, at its first rank.
* **Per-question scoring** for evaluation: citations against gold sources, the abstention
  outcome and :func:`score_answer` combining everything.

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

import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

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
    "exact_match",
    "mean_metric",
    "mrr",
    "ndcg_at_k",
    "normalize_answer",
    "recall_at_k",
    "retrieval_recall",
    "same_document",
    "score_answer",
    "strip_citations",
    "token_f1",
]

# --------------------------------------------------------------------------- answer matching

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """The official SQuAD v1.1 normalisation: lower-case, remove ASCII punctuation, remove the
    articles a/an/the, collapse whitespace.

    >>> normalize_answer("The  Refund-Policy, explained!")
    'refundpolicy explained'
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised strings are identical, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """Token-overlap F1 between normalised ``prediction`` and ``gold`` in ``[0, 1]``.

    Two empty answers agree (1.0; the SQuAD 2.0 convention for "no answer"); one empty and one
    not share nothing (0.0).
    """
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = Counter(pred_tokens) & Counter(gold_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


# "[1]", "[2, 3]", "[1][2]": the passage markers RAG prompts ask models to add.
_CITATION_MARKER = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")
# Multi-part gold answers separate their parts with "; " or " and " (corpus/README.md).
_PART_SEPARATOR = re.compile(r";\s+|\s+and\s+", re.IGNORECASE)
# Characters that glue words into one token after normalisation ("24-yard" -> "24yard",
# "Manning's" -> "mannings"): hyphens, dashes and apostrophes, ASCII and typographic.
_GLUE = re.compile(r"[-'\u2010\u2011\u2012\u2013\u2014\u2019\u02bc]")


def strip_citations(text: str) -> str:
    """``text`` without passage markers such as ``[1]`` or ``[2, 3]``: they are not part of
    the answer, and left in they would cost an otherwise exact answer its exact match."""
    return _CITATION_MARKER.sub("", text).strip()


def best_exact_match(prediction: str, golds: Iterable[str]) -> float:
    """The best :func:`exact_match` against the gold answer and its aliases (0.0 when there is
    no gold)."""
    return max((exact_match(prediction, g) for g in golds), default=0.0)


def best_token_f1(prediction: str, golds: Iterable[str]) -> float:
    """The best :func:`token_f1` against the gold answer and its aliases."""
    return max((token_f1(prediction, g) for g in golds), default=0.0)


def answer_parts(gold: str) -> list[str]:
    """The parts of a multi-part gold answer (``"A; B"``, ``"A and B"``); one part otherwise."""
    return [p.strip() for p in _PART_SEPARATOR.split(gold) if p.strip()]


def _phrase_in(haystack: str, needle: str) -> bool:
    # Whole normalised tokens only, so "45" is not found in "145".
    return bool(needle) and f" {needle} " in f" {haystack} "


def _unglued(text: str) -> str:
    return normalize_answer(_GLUE.sub(" ", text))


def _contains(prediction: str, gold: str) -> bool:
    # As normalised (so "24-yard" finds "24-yard"), then with hyphens and apostrophes as word
    # breaks on both sides (so "24" is found in "24-yard" and "Manning" in "Manning's").
    return _phrase_in(normalize_answer(prediction), normalize_answer(gold)) or _phrase_in(
        _unglued(prediction), _unglued(gold)
    )


def contains_answer(prediction: str, golds: Iterable[str]) -> float:
    """1.0 when the prediction contains a gold answer or alias as a whole phrase, or contains
    every part of a multi-part gold; else 0.0.

    Phrases match on whole normalised words; a word glued to another by a hyphen or an
    apostrophe counts as a word of its own too ("six" is in "Six-time", "Manning" in
    "Manning's"). Useful where EM is too strict: extractive readers return a whole sentence
    around the fact, and formatted answers (bullets, tables) hold the parts in another order.
    """
    if not normalize_answer(prediction):
        return 0.0
    for gold in golds:
        if _contains(prediction, gold):
            return 1.0
        parts = answer_parts(gold)
        if len(parts) > 1 and all(_contains(prediction, p) for p in parts):
            return 1.0
    return 0.0


# --------------------------------------------------------------------------- retrieval


def _dedupe(ids: Sequence[str]) -> list[str]:
    # A ranking that repeats an id (several chunks of one document mapped to the document)
    # must not be credited twice for it.
    return list(dict.fromkeys(ids))


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


def recall_at_k(retrieved_ids: Sequence[str], relevant_ids: Iterable[str], k: int) -> float:
    """Share of the relevant ids found in the first ``k`` retrieved.

    With no relevant ids the question is unanswerable by retrieval and the recall is 0.0
    (callers evaluating abstention should filter such questions out first).
    """
    _check_k(k)
    relevant = set(relevant_ids)
    if not relevant:
        return 0.0
    found = relevant.intersection(_dedupe(retrieved_ids)[:k])
    return len(found) / len(relevant)


def mrr(retrieved_ids: Sequence[str], relevant_ids: Iterable[str], k: int | None = None) -> float:
    """Reciprocal rank of the first relevant id (1/rank), 0.0 if none is retrieved
    (within the first ``k`` when given)."""
    relevant = set(relevant_ids)
    ranking = _dedupe(retrieved_ids)
    if k is not None:
        _check_k(k)
        ranking = ranking[:k]
    for rank, rid in enumerate(ranking, start=1):
        if rid in relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(
    retrieved_ids: Sequence[str],
    relevance: Mapping[str, float] | Iterable[str],
    k: int,
) -> float:
    """Normalised discounted cumulative gain at ``k``.

    ``relevance`` maps ids to graded gains (a set or list means gain 1 for each). DCG sums
    ``gain / log2(rank + 1)`` over the first ``k`` retrieved ids; the ideal DCG sorts all
    labelled gains descending. Returns 0.0 when no label has a positive gain.
    """
    _check_k(k)
    gains: dict[str, float] = (
        {str(i): float(g) for i, g in relevance.items()}
        if isinstance(relevance, Mapping)
        else {str(i): 1.0 for i in relevance}
    )
    ideal_gains = sorted((g for g in gains.values() if g > 0), reverse=True)[:k]
    ideal = sum(g / math.log2(rank + 1) for rank, g in enumerate(ideal_gains, start=1))
    if ideal <= 0:
        return 0.0
    dcg = sum(
        gains.get(rid, 0.0) / math.log2(rank + 1)
        for rank, rid in enumerate(_dedupe(retrieved_ids)[:k], start=1)
    )
    return dcg / ideal


def mean_metric(values: Iterable[float]) -> float:
    """Arithmetic mean of per-question values (0.0 for none)."""
    items = list(values)
    return sum(items) / len(items) if items else 0.0


# --------------------------------------------------------------------------- per question

Outcome = Literal["answered", "correct_abstention", "hallucination", "false_abstention"]


def doc_path(document: str) -> str:
    """The file part of a cited document id: ``records/offices.jsonl#3`` -> ``records/offices.jsonl``
    (JSON/JSONL records are cited per record, gold sources name the file)."""
    path = document.split("#", 1)[0].replace("\\", "/").strip()
    while path.startswith("./"):
        path = path[2:]
    return path


def same_document(a: str, b: str) -> bool:
    """Whether two document paths name the same file: equal, or one is the other under a parent
    folder (an index built over ``corpus/`` names ``docs/policies/x.md`` what the gold, relative
    to ``corpus/docs``, calls ``policies/x.md``)."""
    a, b = doc_path(a), doc_path(b)
    return a == b or a.endswith("/" + b) or b.endswith("/" + a)


def _canonical(cited: Iterable[str], gold: Sequence[str]) -> list[str]:
    # Map each cited path to the gold path it matches (if any), keeping order and duplicates.
    out = []
    for doc in cited:
        path = doc_path(doc)
        out.append(next((g for g in gold if same_document(path, g)), path))
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
        return asdict(self)


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
