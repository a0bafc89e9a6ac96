"""Retrieval: documents -> chunks -> embeddings -> index -> retriever.

The façade the rest of ragft uses is :class:`ragft.rag.knowledge.KnowledgeBase`; the modules
below it each hold one concept:

* :mod:`~ragft.rag.documents` — loading a directory of Markdown/text/JSON(L) files;
* :mod:`~ragft.rag.chunker` — token-aware, structure-respecting chunking with stable ids;
* :mod:`~ragft.rag.embedcache` — an on-disk embedding cache: unchanged text is never re-embedded;
* :mod:`~ragft.rag.index` — the persisted FAISS vector index (atomic saves, per-document updates);
* :mod:`~ragft.rag.bm25` — the lexical index;
* :mod:`~ragft.rag.hits` — the :class:`Hit` value, the reranker protocol, rank fusion and
  score scaling (shared by the retriever, the rerankers and query rewriting);
* :mod:`~ragft.rag.snippets` — the short excerpt an answer's source shows;
* :mod:`~ragft.rag.retriever` — dense, BM25 and hybrid retrieval returning :class:`Hit`;
* :mod:`~ragft.rag.rerank` — optional second-stage rerankers.

Nothing here knows about fine-tuning or strategies.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Chunk",
    "Document",
    "Hit",
    "KnowledgeBase",
    "Retriever",
    "SyncReport",
    "chunk_document",
    "load_directory",
]

# Resolved on first use so that importing one light module (documents, chunker) does not load
# FAISS and SQLite for the whole package.
_HOMES = {
    "Chunk": "ragft.rag.chunker",
    "chunk_document": "ragft.rag.chunker",
    "Document": "ragft.rag.documents",
    "load_directory": "ragft.rag.documents",
    "KnowledgeBase": "ragft.rag.knowledge",
    "SyncReport": "ragft.rag.knowledge",
    "Hit": "ragft.rag.hits",
    "Retriever": "ragft.rag.retriever",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'ragft.rag' has no attribute {name!r}")
