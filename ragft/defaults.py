"""The default of every setting that both the config and a lower layer take, defined once.

:mod:`ragft.config` declares its fields with these values and the library's constructors
(:class:`~ragft.rag.knowledge.KnowledgeBase`, :class:`~ragft.rag.retriever.Retriever`, the
strategies) default to the same ones, so code that builds parts by hand gets what a config file
that leaves the setting out gets. This module imports nothing: every layer may read it.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CANDIDATES",
    "CHUNK_OVERLAP",
    "CHUNK_TOKENS",
    "CONTEXT_TOKENS",
    "DENSE_WEIGHT",
    "FUSION",
    "MAX_TOKENS",
    "TOP_K",
]

#: Tokens per chunk: 200 tiktoken tokens stay within MiniLM's 256 word pieces (longer chunk
#: tails would never be embedded locally) and measured better in every retrieval mode on the
#: sample corpus.
CHUNK_TOKENS: Final = 200
#: Tokens shared by consecutive chunks of a document.
CHUNK_OVERLAP: Final = 40
#: How hybrid retrieval fuses dense and BM25 rankings: ``weighted`` blends normalised scores
#: with :data:`DENSE_WEIGHT` (nDCG@10 0.740 on SciFact vs 0.726 for ``rrf``; see
#: ``benchmarks/scifact_retrieval.py``); ``rrf`` is reciprocal-rank fusion, scale-free.
FUSION: Final = "weighted"
#: Weight of the dense score in ``weighted`` fusion (BM25 gets the rest).
DENSE_WEIGHT: Final = 0.5
#: Hits a retriever returns.
TOP_K: Final = 5
#: Results each retriever contributes before fusion and reranking.
CANDIDATES: Final = 30
#: Tokens of passage text a RAG prompt may hold (best hits first).
CONTEXT_TOKENS: Final = 2000
#: Output tokens a strategy asks its model for.
MAX_TOKENS: Final = 400
