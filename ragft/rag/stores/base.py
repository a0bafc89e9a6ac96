"""The store protocol: the few operations the knowledge base and the retriever need.

Frameworks cut this interface wider (LlamaIndex's ``BasePydanticVectorStore`` adds nodes and
queries with a dozen modes; LangChain's ``VectorStore`` adds texts and many search flavours;
Haystack's ``DocumentStore`` writes with a duplicate policy and filters). ragft diffs a corpus
by document and content hash, so its unit of change is *one document*, replaced together with
its hash:

* write: :meth:`~VectorStore.replace_document` (atomic: readers see the old chunks or the new
  ones, never a mix), :meth:`~VectorStore.delete_document`, :meth:`~VectorStore.flush`
  (make pending changes durable), and :meth:`~VectorStore.writing` (the exclusive writer lock
  a sync holds, so two writers neither embed the same document twice nor lose an update);
* read: :meth:`~VectorStore.documents` (id -> hash, what a sync diffs), dense
  :meth:`~VectorStore.search_many` with an optional filter on document ids, the stored
  :meth:`~VectorStore.vectors` and :meth:`~VectorStore.chunks` (for hybrid retrieval and the
  lexical index), ``len``, ``in``, :meth:`~VectorStore.stats`, :meth:`~VectorStore.close`.

Scores are inner products of L2-normalised vectors, i.e. cosine similarity, on every backend.
Lexical search stays ragft's BM25 over :meth:`~VectorStore.chunks` on every backend (see the
README, "When you outgrow one machine", for the measurement behind that choice).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ragft.rag.chunker import Chunk

__all__ = ["ReentrantWriter", "ScoredChunks", "VectorStore"]

#: One ranked result list: ``(chunk, cosine)`` pairs, best first.
ScoredChunks = list[tuple[Chunk, float]]


@runtime_checkable
class VectorStore(Protocol):
    """Chunks with their vectors, grouped by document, searchable by cosine similarity."""

    #: The embedder id and vector size the store was built with (checked on open).
    embedder: str
    dimension: int
    #: Free-form JSON kept with the store (the knowledge base records its chunking there).
    meta: dict[str, Any]

    def __len__(self) -> int:
        """Chunks stored."""
        ...

    def __contains__(self, chunk_id: object) -> bool:
        """Whether a chunk with this id is stored."""
        ...

    def documents(self) -> dict[str, str]:
        """Every stored document id with its content hash (documents without chunks too)."""
        ...

    def chunks(self) -> Iterator[Chunk]:
        """Every stored chunk (a snapshot)."""
        ...

    def chunks_of(self, document_id: str) -> list[Chunk]:
        """One document's chunks in position order."""
        ...

    def vectors(self, chunk_ids: Sequence[str]) -> np.ndarray:
        """The stored vectors of ``chunk_ids``, rows in order (``KeyError`` if one is absent)."""
        ...

    def search_many(
        self, vectors: np.ndarray, k: int, *, document_ids: Collection[str] | None = None
    ) -> list[ScoredChunks]:
        """For each query row of ``vectors``, the ``k`` most similar chunks, best first;
        ``document_ids`` restricts the search to those documents."""
        ...

    def replace_document(
        self,
        document_id: str,
        content_hash: str,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
    ) -> None:
        """Replace a document's chunks and hash in one atomic step (``vectors`` row-aligned)."""
        ...

    def delete_document(self, document_id: str) -> bool:
        """Remove a document and its chunks; whether it was stored."""
        ...

    def flush(self) -> None:
        """Make every change so far durable (and :attr:`meta`)."""
        ...

    def writing(self, *, wait: bool = True, progress: bool = False) -> AbstractContextManager[None]:
        """Hold the exclusive writer lock; on entry, adopt what another writer stored since
        this store was opened. ``wait=False`` raises
        :class:`~ragft.errors.IndexBusyError` instead of waiting; re-entrant."""
        ...

    def revision(self) -> object:
        """A token that changes when the stored content changes (at least when another
        writer's changes become visible): the knowledge base rebuilds its lexical index then."""
        ...

    def stats(self) -> dict[str, Any]:
        """Counts and settings for display."""
        ...

    def close(self) -> None:
        """Release connections and file handles."""
        ...


class ReentrantWriter:
    """Re-entrancy for a store's writer lock: the outermost entry acquires the real lock
    (a lock file, an advisory lock), inner entries only count."""

    def __init__(self) -> None:
        self.depth = 0

    @contextlib.contextmanager
    def hold(self, acquire: Callable[[], AbstractContextManager[None]]) -> Iterator[None]:
        """Enter ``acquire()`` unless already held; leave it when the outermost exits."""
        if self.depth:
            self.depth += 1
            try:
                yield
            finally:
                self.depth -= 1
            return
        with acquire():
            self.depth = 1
            try:
                yield
            finally:
                self.depth = 0
