"""Vector stores: where a knowledge base keeps its chunks, vectors and document hashes.

One protocol (:class:`~ragft.rag.stores.base.VectorStore`), one module per backend:

* :mod:`~ragft.rag.stores.faiss` — the embedded default: FAISS in the process, persisted
  atomically to a directory, one writer at a time through a lock file;
* :mod:`~ragft.rag.stores.pgvector` — PostgreSQL + pgvector, shared by several processes and
  machines (``[index] backend = "pgvector"``).

Backends are imported on first use: FAISS users never load psycopg, and the other way round.
"""

from __future__ import annotations

__all__: list[str] = []
