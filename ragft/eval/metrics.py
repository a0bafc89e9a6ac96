"""Evaluation metrics as pure functions.

Retrieval metrics (this section) compare a ranked list of retrieved ids with relevance
labels. Ids are compared as given (chunk ids or document ids: the caller chooses the unit),
and a retrieved id that appears twice counts once, at its first rank.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["mean_metric", "mrr", "ndcg_at_k", "recall_at_k"]

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
