"""Finding passages for a query: dense, BM25 or hybrid retrieval returning :class:`Hit`.

Score semantics (what ``Hit.score`` means, and what ``min_score`` filters on):

* ``mode="dense"`` — ``score`` is the cosine similarity of query and chunk (vectors are
  L2-normalised); ``min_score`` drops hits whose cosine is below it.
* ``mode="bm25"`` — ``score`` is the BM25 score (unbounded, corpus-dependent); ``min_score``
  applies to it.
* ``mode="hybrid"`` — ``score`` is the fused score used for ranking (reciprocal-rank fusion,
  at most ``2 / (rrf_k + 1)``, or the weighted blend of normalised scores, in ``[0, 1]``), but
  ``min_score`` applies to each hit's *dense cosine*, which is comparable across queries: a
  query with nothing relevant in the corpus gets no hits above a cosine threshold, whatever
  the fused ranks say. Every hybrid hit carries both ``dense_score`` and ``lexical_score``;
  candidates found by only one retriever get the other score computed exactly (the stored
  vector's cosine; the chunk's BM25 score), so fusion sees complete evidence.

A reranker, when given, re-orders the fused candidates before the cut to ``top_k``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from ragft import defaults
from ragft.answer import Source
from ragft.errors import ConfigError, IndexStoreError
from ragft.models.base import Embedder
from ragft.rag.bm25 import BM25Index
from ragft.rag.chunker import Chunk
from ragft.rag.index import VectorIndex
from ragft.textutil import content_words, split_sentences

if TYPE_CHECKING:
    from ragft.rag.rerank import Reranker

__all__ = ["SNIPPET_CHARS", "FusionKind", "Hit", "Retriever", "RetrievalMode", "make_snippet"]

RetrievalMode = Literal["hybrid", "dense", "bm25"]
FusionKind = Literal["rrf", "weighted"]
#: Longest snippet a :class:`~ragft.answer.Source` carries.
SNIPPET_CHARS = 240


def _clip(text: str, max_chars: int, focus: int = 0) -> str:
    """``text`` cut to ``max_chars`` around character ``focus``, at word boundaries, with …."""
    if len(text) <= max_chars:
        return text
    budget = max_chars - 2  # room for an ellipsis on each side
    start = max(0, min(focus - budget // 3, len(text) - budget))
    end = start + budget
    if start > 0:
        space = text.find(" ", start, start + 30)
        start = space + 1 if space >= 0 else start
    if end < len(text):
        space = text.rfind(" ", end - 30, end)
        end = space if space > start else end
    piece = text[start:end].strip()
    return ("…" if start > 0 else "") + piece + ("…" if end < len(text) else "")


def make_snippet(text: str, query: str, max_chars: int = SNIPPET_CHARS) -> str:
    """A snippet of ``text`` of at most ``max_chars``, around the sentence matching ``query`` best.

    The best sentence shares the most query content words; neighbouring sentences are added
    while they fit. A sentence longer than the limit is cut around its first matching word.
    """
    flat = " ".join(text.split())
    sentences = [" ".join(s.split()) for s in split_sentences(text)] or [flat]
    terms = set(content_words(query))
    overlaps = [len(terms & set(content_words(s))) for s in sentences]
    best = max(range(len(sentences)), key=lambda i: (overlaps[i], -i))
    chosen = sentences[best]
    if len(chosen) > max_chars:
        lowered = chosen.lower()
        hits = [lowered.find(t) for t in terms if lowered.find(t) >= 0]
        return _clip(chosen, max_chars, min(hits) if hits else 0)
    lo, hi = best, best
    while True:  # grow forwards first: what follows a matching sentence usually completes it
        if hi + 1 < len(sentences) and len(chosen) + 1 + len(sentences[hi + 1]) <= max_chars:
            hi += 1
            chosen = f"{chosen} {sentences[hi]}"
        elif lo > 0 and len(chosen) + 1 + len(sentences[lo - 1]) <= max_chars:
            lo -= 1
            chosen = f"{sentences[lo]} {chosen}"
        else:
            return chosen


@dataclass(frozen=True, slots=True)
class Hit:
    """One retrieved chunk with its score (see the module docstring for what it means).

    ``dense_score`` is the query/chunk cosine and ``lexical_score`` the BM25 score, where
    known. ``query`` is kept to build the snippet of :attr:`source`.
    """

    chunk: Chunk
    score: float
    dense_score: float | None = None
    lexical_score: float | None = None
    query: str = field(default="", compare=False, repr=False)

    @property
    def source(self) -> Source:
        """The :class:`~ragft.answer.Source` an answer cites for this hit."""
        return Source(
            chunk_id=self.chunk.id,
            document=self.chunk.document_id,
            score=float(self.score),
            snippet=make_snippet(self.chunk.text, self.query),
            title=self.chunk.title,
            position=self.chunk.position,
        )


def _minmax(values: np.ndarray) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < 1e-12:
        return np.ones_like(values) if hi > 0 else np.zeros_like(values)
    return (values - lo) / (hi - lo)


def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, highest value first (ties broken by position)."""
    order = np.argsort(-values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(1, len(values) + 1)
    return ranks


class Retriever:
    """Retrieves :class:`Hit` lists from a :class:`VectorIndex` and, for lexical or hybrid
    modes, a :class:`BM25Index` over the same chunks.

    ``candidates`` is how many results each retriever contributes before fusion and
    reranking; ``top_k`` how many hits are returned. ``fusion="rrf"`` sums
    ``1 / (rrf_k + rank)`` over the two rankings; ``"weighted"`` blends min-max-normalised
    cosine and BM25 scores with ``dense_weight``.
    """

    def __init__(
        self,
        index: VectorIndex,
        embedder: Embedder,
        bm25: BM25Index | None = None,
        *,
        mode: RetrievalMode = "hybrid",
        top_k: int = defaults.TOP_K,
        candidates: int = defaults.CANDIDATES,
        min_score: float = 0.0,
        fusion: FusionKind = defaults.FUSION,
        dense_weight: float = defaults.DENSE_WEIGHT,
        rrf_k: int = 60,
        reranker: Reranker | None = None,
    ):
        if mode not in ("hybrid", "dense", "bm25"):
            raise ConfigError(f"retrieval mode must be hybrid, dense or bm25, got {mode!r}")
        if fusion not in ("rrf", "weighted"):
            raise ConfigError(f"fusion must be 'rrf' or 'weighted', got {fusion!r}")
        if mode != "dense" and bm25 is None:
            raise ConfigError(f"retrieval mode {mode!r} needs a BM25 index; pass bm25=")
        if top_k < 1 or candidates < 1:
            raise ConfigError("top_k and candidates must be >= 1")
        if not 0.0 <= dense_weight <= 1.0:
            raise ConfigError(f"dense_weight must be within [0, 1], got {dense_weight}")
        if rrf_k < 0:
            raise ConfigError(f"rrf_k must be >= 0, got {rrf_k}")
        if embedder.dimension != index.dimension or embedder.name != index.embedder:
            raise IndexStoreError(
                f"the index was built with {index.embedder!r} ({index.dimension} dimensions) "
                f"but queries would be embedded with {embedder.name!r} ({embedder.dimension}); "
                "rebuild it with `ragft index --rebuild`"
            )
        self.index = index
        self.embedder = embedder
        self.bm25 = bm25
        self.mode: RetrievalMode = mode
        self.top_k = top_k
        self.candidates = max(candidates, top_k)
        self.min_score = min_score
        self.fusion: FusionKind = fusion
        self.dense_weight = dense_weight
        self.rrf_k = rrf_k
        self.reranker = reranker

    def _pool(self, top_k: int) -> int:
        # Dense-only without a reranker needs no more than top_k: cosine order is final.
        if self.mode == "dense" and self.reranker is None:
            return top_k
        return max(self.candidates, top_k)

    def retrieve(self, query: str, *, top_k: int | None = None) -> list[Hit]:
        """The best hits for ``query``, at most ``top_k`` (default: the retriever's)."""
        return self.retrieve_many([query], top_k=top_k)[0]

    def retrieve_many(
        self, queries: Sequence[str], *, top_k: int | None = None
    ) -> list[list[Hit]]:
        """:meth:`retrieve` for several queries, embedding them all in one call."""
        k = top_k or self.top_k
        if not queries:
            return []
        pool = self._pool(k)
        dense_lists: list[list[tuple[Chunk, float]]] = [[] for _ in queries]
        qvecs: np.ndarray | None = None
        if self.mode != "bm25":
            qvecs = self.embedder.embed(list(queries), kind="query").vectors
            dense_lists = self.index.search(qvecs, pool, batch=True)
        results = []
        for row, query in enumerate(queries):
            if self.mode == "dense":
                hits = [
                    Hit(c, s, dense_score=s, query=query)
                    for c, s in dense_lists[row]
                    if s >= self.min_score
                ]
            elif self.mode == "bm25":
                assert self.bm25 is not None
                hits = [
                    Hit(c, s, lexical_score=s, query=query)
                    for c, s in self.bm25.search(query, pool)
                    if s >= self.min_score
                ]
            else:
                assert qvecs is not None
                hits = self._hybrid(query, qvecs[row], dense_lists[row], pool)
            if self.reranker is not None and hits:
                hits = self.reranker.rerank(query, hits[:pool], k)
            results.append(hits[:k])
        return results

    def _hybrid(
        self, query: str, qvec: np.ndarray, dense: list[tuple[Chunk, float]], pool: int
    ) -> list[Hit]:
        assert self.bm25 is not None
        # One BM25 pass gives its own top list and the scores of the dense candidates.
        lexical, dense_lex = self.bm25.search_and_score(query, pool, [c.id for c, _ in dense])
        chunks: dict[str, Chunk] = {}
        dense_score: dict[str, float] = {}
        lex_score: dict[str, float] = {}
        for c, s in dense:
            chunks[c.id] = c
            dense_score[c.id] = s
        for (c, _), s in zip(dense, dense_lex, strict=True):
            lex_score[c.id] = s
        for c, s in lexical:
            chunks.setdefault(c.id, c)
            lex_score[c.id] = s
        if not chunks:
            return []
        ids = list(chunks)
        # Complete each candidate's evidence: BM25-only finds get their exact cosine from the
        # stored vector (dense finds got their BM25 score above).
        need_dense = [i for i in ids if i not in dense_score and i in self.index]
        if need_dense:
            cos = self.index.vectors(need_dense) @ qvec
            dense_score.update(zip(need_dense, cos.tolist(), strict=True))
        d = np.array([dense_score.get(i, -1.0) for i in ids], dtype=np.float64)
        lx = np.array([lex_score.get(i, 0.0) for i in ids], dtype=np.float64)
        if self.fusion == "rrf":
            # Every chunk has a cosine, but a chunk matching no query term is not in the BM25
            # ranking at all: it gets no lexical contribution (as in standard RRF).
            lex_rrf = np.where(lx > 0, 1.0 / (self.rrf_k + _ranks(lx)), 0.0)
            fused = 1.0 / (self.rrf_k + _ranks(d)) + lex_rrf
        else:
            w = self.dense_weight
            lex_norm = lx / lx.max() if lx.max() > 0 else np.zeros_like(lx)
            fused = w * _minmax(d) + (1.0 - w) * lex_norm
        order = sorted(range(len(ids)), key=lambda i: (-fused[i], -d[i]))
        return [
            Hit(
                chunks[ids[i]],
                float(fused[i]),
                dense_score=float(d[i]),
                lexical_score=float(lx[i]),
                query=query,
            )
            for i in order
            if d[i] >= self.min_score
        ]

