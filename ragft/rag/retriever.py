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

import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np

from ragft import defaults
from ragft.errors import ConfigError, IndexStoreError
from ragft.models.base import Embedder
from ragft.rag.bm25 import BM25Index
from ragft.rag.chunker import Chunk
from ragft.rag.hits import DEFAULT_RRF_K, Hit, Reranker, minmax, rrf_scores
from ragft.rag.snippets import SNIPPET_CHARS, make_snippet
from ragft.rag.stores.base import VectorStore

__all__ = [
    "SNIPPET_CHARS",
    "FusionKind",
    "Hit",
    "QueryTruncatedWarning",
    "Retriever",
    "RetrievalMode",
    "make_snippet",
]


class QueryTruncatedWarning(UserWarning):
    """A query was longer than the embedder's input window and was cut before embedding."""


RetrievalMode = Literal["hybrid", "dense", "bm25"]
FusionKind = Literal["rrf", "weighted"]


class Retriever:
    """Retrieves :class:`Hit` lists from a vector store and, for lexical or hybrid
    modes, a :class:`BM25Index` over the same chunks.

    ``candidates`` is how many results each retriever contributes before fusion and
    reranking; ``top_k`` how many hits are returned. ``fusion="rrf"`` sums
    ``1 / (rrf_k + rank)`` over the two rankings; ``"weighted"`` blends min-max-normalised
    cosine and BM25 scores with ``dense_weight``.
    """

    def __init__(
        self,
        index: VectorStore,
        embedder: Embedder,
        bm25: BM25Index | None = None,
        *,
        mode: RetrievalMode = "hybrid",
        top_k: int = defaults.TOP_K,
        candidates: int = defaults.CANDIDATES,
        min_score: float = 0.0,
        fusion: FusionKind = defaults.FUSION,
        dense_weight: float = defaults.DENSE_WEIGHT,
        rrf_k: int = DEFAULT_RRF_K,
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
            embedded = self.embedder.embed(list(queries), kind="query")
            for row in embedded.truncated:
                warnings.warn(
                    f"the query ({len(queries[row])} characters) is longer than the "
                    f"{embedded.window or '?'}-token window of {self.embedder.name}: only its "
                    "beginning was embedded for dense search",
                    QueryTruncatedWarning,
                    stacklevel=3,
                )
            qvecs = embedded.vectors
            dense_lists = self.index.search_many(qvecs, pool)
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
        need_dense = [i for i in ids if i not in dense_score]
        if need_dense:
            try:  # one read from the store (a round trip for a database)
                stored = self.index.vectors(need_dense)
            except KeyError:  # the lexical index knows a chunk the store no longer has
                need_dense = [i for i in need_dense if i in self.index]
                stored = self.index.vectors(need_dense)
            cos = stored @ qvec
            dense_score.update(zip(need_dense, cos.tolist(), strict=True))
        d = np.array([dense_score.get(i, -1.0) for i in ids], dtype=np.float64)
        lx = np.array([lex_score.get(i, 0.0) for i in ids], dtype=np.float64)
        if self.fusion == "rrf":
            # Every chunk has a cosine, but a chunk matching no query term is not in the BM25
            # ranking at all: it gets no lexical contribution (as in standard RRF).
            by_dense = [ids[i] for i in np.argsort(-d, kind="stable")]
            by_lexical = [ids[i] for i in np.argsort(-lx, kind="stable") if lx[i] > 0]
            scores = rrf_scores((by_dense, by_lexical), self.rrf_k)
            fused = np.array([scores[i] for i in ids], dtype=np.float64)
        else:
            w = self.dense_weight
            lex_norm = lx / lx.max() if lx.max() > 0 else np.zeros_like(lx)
            fused = w * minmax(d) + (1.0 - w) * lex_norm
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

