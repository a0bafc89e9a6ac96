"""Retrieval results and what combines them: the :class:`Hit` value, the :class:`Reranker`
protocol, and the fusion and scaling functions shared by the retriever, the rerankers and the
strategies that merge several rankings (query rewriting).

This module imports nothing from the rest of ``ragft.rag`` but the chunk and snippet values,
so the retriever, the rerankers and the strategies all depend on it and not on each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from ragft.answer import Source
from ragft.rag.chunker import Chunk
from ragft.rag.snippets import make_snippet

__all__ = [
    "DEFAULT_RRF_K",
    "Hit",
    "Reranker",
    "fuse_hits",
    "minmax",
    "rrf_scores",
]

#: The reciprocal-rank-fusion constant of Cormack et al. (2009), used unless configured.
DEFAULT_RRF_K = 60


@dataclass(frozen=True, slots=True)
class Hit:
    """One retrieved chunk with its score (see :mod:`ragft.rag.retriever` for what it means).

    ``dense_score`` is the query/chunk cosine and ``lexical_score`` the BM25 score, where
    known. ``query`` is kept to build the snippet of :attr:`source`, which is built on first
    use and then kept (a snippet costs a sentence split); ``dataclasses.replace`` gives a
    hit whose source is built afresh from its own score.
    """

    chunk: Chunk
    score: float
    dense_score: float | None = None
    lexical_score: float | None = None
    query: str = field(default="", compare=False, repr=False)
    _source: Source | None = field(default=None, init=False, compare=False, repr=False)

    @property
    def source(self) -> Source:
        """The :class:`~ragft.answer.Source` an answer cites for this hit."""
        if self._source is None:
            object.__setattr__(
                self,
                "_source",
                Source(
                    chunk_id=self.chunk.id,
                    document=self.chunk.document_id,
                    score=float(self.score),
                    snippet=make_snippet(self.chunk.text, self.query),
                    title=self.chunk.title,
                    position=self.chunk.position,
                ),
            )
        assert self._source is not None
        return self._source


@runtime_checkable
class Reranker(Protocol):
    """Anything that re-orders hits for a query and keeps the best ``top_k``."""

    def rerank(self, query: str, hits: Sequence[Hit], top_k: int) -> list[Hit]:
        """``hits`` re-ordered best first, at most ``top_k``."""
        ...


def minmax(values: np.ndarray) -> np.ndarray:
    """``values`` scaled to ``[0, 1]``; all-equal values become 1 when positive, else 0."""
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < 1e-12:
        return np.ones_like(values) if hi > 0 else np.zeros_like(values)
    return (values - lo) / (hi - lo)


def rrf_scores(
    rankings: Iterable[Sequence[str]], rrf_k: int = DEFAULT_RRF_K
) -> dict[str, float]:
    """Reciprocal-rank fusion: for every id, the sum over ``rankings`` (ids best first) of
    ``1 / (rrf_k + rank)``, rank counted from 1. An id absent from a ranking gets nothing
    from it. Ids appear in the order first seen, so a stable sort keeps ties in that order."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (rrf_k + rank)
    return scores


def fuse_hits(
    rankings: Sequence[Sequence[Hit]], k: int, rrf_k: int = DEFAULT_RRF_K
) -> list[Hit]:
    """The best ``k`` hits of several ranked lists by reciprocal-rank fusion, keyed by chunk
    id; each hit is the first one seen for its chunk, score unchanged."""
    first: dict[str, Hit] = {}
    for ranking in rankings:
        for hit in ranking:
            first.setdefault(hit.chunk.id, hit)
    scores = rrf_scores(([h.chunk.id for h in r] for r in rankings), rrf_k)
    order = sorted(scores, key=lambda c: scores[c], reverse=True)
    return [first[c] for c in order[:k]]
