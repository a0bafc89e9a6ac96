"""The knowledge base: the one object the rest of ragft uses for retrieval.

A :class:`KnowledgeBase` owns a directory::

    <path>/vectors/            the VectorIndex (swapped atomically on every save)
    <path>/embeddings.sqlite   the embedding cache (outside the swapped directory, so it
                               survives rebuilds: `ragft index --rebuild` re-embeds nothing)

:meth:`KnowledgeBase.sync` brings the index in line with a corpus directory, document by
document: added and changed documents are chunked and embedded (through the cache, so only
text never seen before costs tokens), removed ones are dropped, unchanged ones are not
touched; then the index is saved atomically. :meth:`upsert_document` and
:meth:`delete_document` do the same for one document.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ragft import defaults
from ragft.answer import Usage
from ragft.errors import ConfigError, IndexStoreError
from ragft.models.base import Embedder
from ragft.rag.bm25 import BM25Index
from ragft.rag.chunker import DEFAULT_TOKEN_MODEL, Chunk, chunk_document
from ragft.rag.documents import Document, load_directory
from ragft.rag.embedcache import CachedEmbedder, EmbeddingCache
from ragft.rag.index import IndexKind, VectorIndex
from ragft.rag.retriever import Retriever

__all__ = ["CACHE_FILE", "INDEX_DIR", "KnowledgeBase", "SyncReport"]

INDEX_DIR = "vectors"
CACHE_FILE = "embeddings.sqlite"
#: Texts per embedding call during a sync (also the progress bar's step).
EMBED_BATCH = 128


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What a sync (or a single-document update) did.

    ``indexed_chunks`` counts chunks written into the index; ``embedded_chunks`` those that
    were actually embedded (embedding-cache misses). ``usage`` is the embedding usage of the
    real calls only: a sync of an unchanged corpus reports zero tokens.
    """

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    indexed_chunks: int = 0
    embedded_chunks: int = 0
    usage: Usage = field(default_factory=lambda: Usage(model="", kind="embedding"))

    @property
    def modified(self) -> bool:
        """Whether the index changed."""
        return bool(self.added or self.changed or self.removed)

    def summary(self) -> str:
        """One line for people: ``added 2, changed 1, removed 0, unchanged 40 documents; ...``."""
        return (
            f"added {len(self.added)}, changed {len(self.changed)}, removed {len(self.removed)}, "
            f"unchanged {len(self.unchanged)} documents; embedded {self.embedded_chunks} chunks "
            f"({self.usage.embedding_tokens} tokens)"
        )


def _sum_usage(model: str, usages: Sequence[Usage]) -> Usage:
    return Usage(
        model=model,
        kind="embedding",
        embedding_tokens=sum(u.embedding_tokens for u in usages),
        source="estimated" if any(u.source == "estimated" for u in usages) else "reported",
    )


class KnowledgeBase:
    """A persisted, incrementally updated index of a corpus, and retrievers over it.

    Build one with :meth:`open`. All methods are thread-safe; writers are serialised.
    """

    def __init__(
        self,
        path: Path,
        index: VectorIndex,
        embedder: CachedEmbedder,
        *,
        chunk_tokens: int,
        chunk_overlap: int,
        token_model: str = DEFAULT_TOKEN_MODEL,
        saved: bool = False,
    ):
        self.path = path
        self.index = index
        self.embedder = embedder
        self.chunk_tokens = chunk_tokens
        self.chunk_overlap = chunk_overlap
        self.token_model = token_model
        self._bm25: BM25Index | None = None
        self._lock = threading.RLock()
        self._saved = saved

    # -- opening -----------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | Path,
        embedder: Embedder,
        *,
        kind: IndexKind = "auto",
        chunk_tokens: int = defaults.CHUNK_TOKENS,
        chunk_overlap: int = defaults.CHUNK_OVERLAP,
        create: bool = True,
        rebuild: bool = False,
        token_model: str = DEFAULT_TOKEN_MODEL,
    ) -> KnowledgeBase:
        """Open the knowledge base at ``path``, or start an empty one (``create=True``).

        ``embedder`` is wrapped in a :class:`CachedEmbedder` over ``<path>/embeddings.sqlite``
        unless it already is one. ``rebuild=True`` starts from an empty index (the old one is
        replaced on the next save; cached embeddings are reused). An existing index built with
        another embedder raises :class:`~ragft.errors.IndexStoreError`. Chunking settings that
        differ from the index's make the next :meth:`sync` re-chunk every document.
        """
        if chunk_overlap < 0 or chunk_overlap >= chunk_tokens:
            raise ConfigError(
                f"chunk_overlap ({chunk_overlap}) must be >= 0 and smaller than chunk_tokens "
                f"({chunk_tokens})"
            )
        root = Path(path)
        if not isinstance(embedder, CachedEmbedder):
            embedder = CachedEmbedder(embedder, EmbeddingCache(root / CACHE_FILE))
        vectors_dir = root / INDEX_DIR
        saved = False
        if not rebuild and VectorIndex.exists(vectors_dir):
            index = VectorIndex.load(
                vectors_dir, expected_embedder=embedder.name, expected_dim=embedder.dimension
            )
            if kind != "auto" and (index.kind != kind or index.requested_kind != kind):
                index.convert(kind)
            saved = True
        elif create or rebuild:
            index = VectorIndex(embedder.dimension, embedder=embedder.name, kind=kind)
        else:
            raise IndexStoreError(f"no knowledge base at {root}; build it with `ragft index`")
        return cls(
            root,
            index,
            embedder,
            chunk_tokens=chunk_tokens,
            chunk_overlap=chunk_overlap,
            token_model=token_model,
            saved=saved,
        )

    # -- state -------------------------------------------------------------------------
    @property
    def chunking(self) -> dict[str, Any]:
        """The chunking settings in effect (recorded in the index manifest)."""
        return {
            "max_tokens": self.chunk_tokens,
            "overlap": self.chunk_overlap,
            "model": self.token_model,
        }

    @property
    def bm25(self) -> BM25Index:
        """The lexical index, built from the stored chunks on first use."""
        with self._lock:
            if self._bm25 is None:
                self._bm25 = BM25Index.from_chunks(self.index.chunks())
            return self._bm25

    def __len__(self) -> int:
        return len(self.index)

    def document_ids(self) -> list[str]:
        """Ids of the indexed documents, sorted."""
        return self.index.document_ids()

    def stats(self) -> dict[str, Any]:
        """Counts, settings and where things live, for display."""
        info = self.index.stats()
        info.update(
            path=str(self.path),
            chunking=self.chunking,
            cached_embeddings=len(self.embedder.cache),
        )
        return info

    # -- updating ----------------------------------------------------------------------
    def _chunk(self, doc: Document) -> list[Chunk]:
        return chunk_document(
            doc, max_tokens=self.chunk_tokens, overlap=self.chunk_overlap, model=self.token_model
        )

    def _embed(self, chunks: Sequence[Chunk], progress: bool) -> tuple[np.ndarray, Usage, int]:
        """Vectors for ``chunks`` (through the cache), the real calls' usage, and misses."""
        vectors = np.zeros((len(chunks), self.embedder.dimension), dtype=np.float32)
        usages: list[Usage] = []
        misses_before = self.embedder.stats.misses
        with tqdm(
            total=len(chunks),
            disable=not progress or not chunks,
            unit="chunk",
            desc="embedding",
            file=sys.stderr,
            leave=False,
        ) as bar:
            # An embedder sending concurrent requests (OpenAI's) asks for slices big enough
            # to keep them all busy; the slice is also the unit that reaches the cache.
            step = max(EMBED_BATCH, int(getattr(self.embedder, "texts_per_call", EMBED_BATCH)))
            for start in range(0, len(chunks), step):
                batch = chunks[start : start + step]
                result = self.embedder.embed([c.embedding_text for c in batch], kind="document")
                vectors[start : start + len(batch)] = result.vectors
                if result.usage.embedding_tokens:
                    usages.append(result.usage)
                bar.update(len(batch))
        embedded = self.embedder.stats.misses - misses_before
        return vectors, _sum_usage(self.embedder.name, usages), embedded

    def _settings_changed(self) -> bool:
        stored = self.index.meta.get("chunking")
        return stored is not None and stored != self.chunking

    def _apply(
        self,
        documents: Sequence[Document],
        remove_ids: Sequence[str],
        progress: bool,
    ) -> tuple[int, int, Usage]:
        """Embed ``documents`` first (so a failed call changes nothing), then swap them in."""
        chunks = [c for doc in documents for c in self._chunk(doc)]
        vectors, usage, embedded = self._embed(chunks, progress)
        for doc_id in remove_ids:
            self.index.remove_document(doc_id)
            if self._bm25 is not None:
                self._bm25.remove_document(doc_id)
        self.index.add(chunks, vectors, document_hashes={d.id: d.content_hash for d in documents})
        if self._bm25 is not None:
            self._bm25.add(chunks)
        return len(chunks), embedded, usage

    def sync(
        self, corpus_dir: str | Path, *, progress: bool = True, strict: bool = True
    ) -> SyncReport:
        """Make the index match the documents under ``corpus_dir``, then save it.

        Only added and changed documents are chunked and embedded; see :class:`SyncReport`.
        ``strict`` is passed to :func:`~ragft.rag.documents.load_directory`.
        """
        return self.sync_documents(load_directory(corpus_dir, strict=strict), progress=progress)

    def sync_documents(self, docs: Sequence[Document], *, progress: bool = True) -> SyncReport:
        """:meth:`sync` for documents already in memory: ``docs`` is the whole corpus, so
        indexed documents missing from it are removed."""
        with self._lock:
            rechunk = self._settings_changed()
            present = set(self.index.document_ids())
            added: list[str] = []
            changed: list[str] = []
            unchanged: list[str] = []
            for doc in docs:
                stored = self.index.document_hash(doc.id)
                if doc.id not in present:
                    added.append(doc.id)
                elif rechunk or stored != doc.content_hash:
                    changed.append(doc.id)
                else:
                    unchanged.append(doc.id)
            wanted = {d.id for d in docs}
            removed = sorted(present - wanted)
            todo = set(added) | set(changed)
            indexed, embedded, usage = self._apply(
                [d for d in docs if d.id in todo], [*changed, *removed], progress
            )
            report = SyncReport(
                added=tuple(added),
                changed=tuple(changed),
                removed=tuple(removed),
                unchanged=tuple(unchanged),
                indexed_chunks=indexed,
                embedded_chunks=embedded,
                usage=usage,
            )
            if rechunk or "chunking" not in self.index.meta:
                # Every document is now chunked with the current settings.
                self.index.meta["chunking"] = self.chunking
                rechunk = True
            if report.modified or rechunk or not self._saved:
                self.save()
            return report

    def upsert_document(self, doc: Document) -> SyncReport:
        """Add or replace one document and save; a no-op if its content is unchanged."""
        with self._lock:
            stored = self.index.document_hash(doc.id)
            present = doc.id in set(self.index.document_ids())
            if present and stored == doc.content_hash and not self._settings_changed():
                return SyncReport(unchanged=(doc.id,), usage=_sum_usage(self.embedder.name, []))
            indexed, embedded, usage = self._apply([doc], [doc.id] if present else [], False)
            self.save()
            return SyncReport(
                added=() if present else (doc.id,),
                changed=(doc.id,) if present else (),
                indexed_chunks=indexed,
                embedded_chunks=embedded,
                usage=usage,
            )

    def delete_document(self, document_id: str) -> bool:
        """Remove one document and save; returns whether it was indexed."""
        with self._lock:
            if document_id not in set(self.index.document_ids()):
                return False
            self.index.remove_document(document_id)
            if self._bm25 is not None:
                self._bm25.remove_document(document_id)
            self.save()
            return True

    def save(self) -> None:
        """Persist the index atomically to ``<path>/vectors``."""
        with self._lock:
            # A new index records its settings; an old one keeps the settings its documents
            # were chunked with until a sync re-chunks them all.
            self.index.meta.setdefault("chunking", self.chunking)
            self.index.save(self.path / INDEX_DIR)
            self._saved = True

    # -- reading -----------------------------------------------------------------------
    def retriever(self, **settings: Any) -> Retriever:
        """A :class:`~ragft.rag.retriever.Retriever` over this knowledge base.

        ``settings`` are the retriever's keyword arguments (``mode``, ``top_k``,
        ``candidates``, ``min_score``, ``fusion``, ``dense_weight``, ``rrf_k``, ``reranker``).
        """
        mode = settings.get("mode", "hybrid")
        bm25 = self.bm25 if mode != "dense" else None
        return Retriever(self.index, self.embedder, bm25, **settings)
