"""The knowledge base: the one object the rest of ragft uses for retrieval.

A :class:`KnowledgeBase` owns a directory::

    <path>/vectors/            the FAISS store (swapped atomically on every save), unless
                               another store is given (``[index] backend = "pgvector"``)
    <path>/embeddings.sqlite   the embedding cache (outside the swapped directory, so it
                               survives rebuilds: `ragft index --rebuild` re-embeds nothing)

:meth:`KnowledgeBase.sync` brings the index in line with a corpus directory, document by
document: added and changed documents are chunked and embedded (through the cache, so only
text never seen before costs tokens), removed ones are dropped, unchanged ones are not
touched; then the index is saved atomically. :meth:`upsert_document` and
:meth:`delete_document` do the same for one document.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ragft import defaults
from ragft.answer import Usage
from ragft.errors import (
    ConfigError,
    DocumentError,
    MassRemovalError,
)
from ragft.models.base import Embedder, texts_per_call
from ragft.rag.bm25 import BM25Index
from ragft.rag.chunker import DEFAULT_TOKEN_MODEL, Chunk, chunk_document
from ragft.rag.documents import Document, LoadedCorpus, SkippedFile, load_corpus
from ragft.rag.embedcache import CachedEmbedder, EmbeddingCache
from ragft.rag.index import IndexKind, VectorIndex
from ragft.rag.retriever import Retriever
from ragft.rag.stores.base import VectorStore
from ragft.rag.stores.faiss import WRITER_LOCK, FaissStore

__all__ = ["CACHE_FILE", "INDEX_DIR", "WRITER_LOCK", "KnowledgeBase", "SyncReport"]

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
    skipped: tuple[SkippedFile, ...] = ()

    @property
    def problems(self) -> tuple[SkippedFile, ...]:
        """Skipped files that should have been read (binary, bad encoding, bad JSON): the
        CLI exits non-zero when there are any. Their indexed versions, if any, are kept."""
        return tuple(s for s in self.skipped if s.unreadable)

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
            + (f"; skipped {len(self.skipped)} file{'s' if len(self.skipped) != 1 else ''}"
               if self.skipped else "")
        )


def _sum_usage(model: str, usages: Sequence[Usage]) -> Usage:
    return Usage(
        model=model,
        kind="embedding",
        embedding_tokens=sum(u.embedding_tokens for u in usages),
        source="estimated" if any(u.source == "estimated" for u in usages) else "reported",
    )


def _check_removal(removed: Sequence[str], present: int) -> None:
    """Refuse a sync that would remove all indexed documents or more than half of them."""
    if not removed or (len(removed) < present and 2 * len(removed) <= present):
        return
    share = f"all {present}" if len(removed) == present else f"{len(removed)} of the {present}"
    shown = ", ".join(removed[:5]) + (f" and {len(removed) - 5} more" if len(removed) > 5 else "")
    raise MassRemovalError(
        f"this sync would remove {share} indexed documents ({shown}): is the corpus directory "
        "right? If the removal is intended, pass --allow-removal to `ragft index` "
        "(allow_removal=True in the library)",
        removed=tuple(removed),
    )


class KnowledgeBase:
    """A persisted, incrementally updated index of a corpus, and retrievers over it.

    Build one with :meth:`open`. All methods are thread-safe; writers are serialised, within
    the process and (through the store's writer lock) across processes. ``store`` is any
    :class:`~ragft.rag.stores.base.VectorStore`; ``index`` is the same object under its
    older name.
    """

    def __init__(
        self,
        path: Path,
        store: VectorStore,
        embedder: CachedEmbedder,
        *,
        chunk_tokens: int,
        chunk_overlap: int,
        token_model: str = DEFAULT_TOKEN_MODEL,
    ):
        self.path = path
        self.store = store
        self.embedder = embedder
        self.chunk_tokens = chunk_tokens
        self.chunk_overlap = chunk_overlap
        self.token_model = token_model
        self._bm25: BM25Index | None = None
        self._bm25_revision = store.revision()
        self._lock = threading.RLock()

    @property
    def index(self) -> VectorStore:
        """The vector store (the name predates other backends than FAISS)."""
        return self.store

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
        store: Callable[[CachedEmbedder], VectorStore] | None = None,
    ) -> KnowledgeBase:
        """Open the knowledge base at ``path``, or start an empty one (``create=True``).

        ``embedder`` is wrapped in a :class:`CachedEmbedder` over ``<path>/embeddings.sqlite``
        unless it already is one. ``store`` opens another backend's store for the embedder
        (default: a :class:`~ragft.rag.stores.faiss.FaissStore` in ``<path>/vectors``, of
        ``kind``). ``rebuild=True`` starts from an empty index (the old one is replaced on the
        next save; cached embeddings are reused, and a damaged cache file is replaced, see
        :meth:`~ragft.rag.embedcache.EmbeddingCache.repair`). An existing index built with
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
        if rebuild:
            embedder.cache.repair()
        if store is None:
            opened: VectorStore = FaissStore.open(
                root / INDEX_DIR,
                embedder=embedder.name,
                dimension=embedder.dimension,
                kind=kind,
                create=create,
                rebuild=rebuild,
            )
        else:
            opened = store(embedder)
        return cls(
            root,
            opened,
            embedder,
            chunk_tokens=chunk_tokens,
            chunk_overlap=chunk_overlap,
            token_model=token_model,
        )

    @staticmethod
    def saved_version(path: str | Path) -> str | None:
        """Id of the index version saved under ``path`` now (``None``: none saved). Compare
        ids to know whether ``ragft index`` has saved a newer version than the one loaded;
        see :meth:`VectorIndex.saved_version <ragft.rag.index.VectorIndex.saved_version>`."""
        return VectorIndex.saved_version(Path(path) / INDEX_DIR)

    # -- the writer lock ------------------------------------------------------------------
    @contextlib.contextmanager
    def writing(self, *, wait: bool = True, progress: bool = False) -> Iterator[None]:
        """Hold the store's exclusive writer lock for a change to the index.

        Every update takes it before its first embedding call, so two processes syncing one
        index neither embed the same documents twice nor lose each other's saves: once the
        lock is held, what another writer stored since this one loaded is adopted.
        A held lock makes ``wait=False`` raise :class:`~ragft.errors.IndexBusyError`;
        ``wait=True`` blocks (saying so on stderr when ``progress``). Re-entrant.
        """
        with self._lock, self.store.writing(wait=wait, progress=progress):
            if self.store.revision() != self._bm25_revision:
                self._bm25 = None  # another writer changed the chunks
                self._bm25_revision = self.store.revision()
            try:
                yield
            finally:
                self._bm25_revision = self.store.revision()

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
                self._bm25 = BM25Index.from_chunks(self.store.chunks())
            return self._bm25

    def __len__(self) -> int:
        return len(self.store)

    def document_ids(self) -> list[str]:
        """Ids of the indexed documents, sorted."""
        return sorted(self.store.documents())

    def stats(self) -> dict[str, Any]:
        """Counts, settings and where things live, for display."""
        info = self.store.stats()
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
            step = max(EMBED_BATCH, texts_per_call(self.embedder, EMBED_BATCH))
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
        stored = self.store.meta.get("chunking")
        return stored is not None and stored != self.chunking

    def _apply(
        self,
        documents: Sequence[Document],
        remove_ids: Sequence[str],
        progress: bool,
    ) -> tuple[int, int, Usage]:
        """Embed ``documents`` first (so a failed call changes nothing), then replace them in
        the store one document at a time (each replace atomic), then remove ``remove_ids``."""
        per_doc = [self._chunk(doc) for doc in documents]
        chunks = [c for doc_chunks in per_doc for c in doc_chunks]
        vectors, usage, embedded = self._embed(chunks, progress)
        start = 0
        for doc, doc_chunks in zip(documents, per_doc, strict=True):
            rows = vectors[start : start + len(doc_chunks)]
            start += len(doc_chunks)
            self.store.replace_document(doc.id, doc.content_hash, doc_chunks, rows)
            if self._bm25 is not None:
                self._bm25.remove_document(doc.id)
                self._bm25.add(doc_chunks)
        for doc_id in remove_ids:
            self.store.delete_document(doc_id)
            if self._bm25 is not None:
                self._bm25.remove_document(doc_id)
        return len(chunks), embedded, usage

    def sync(
        self,
        corpus_dir: str | Path,
        *,
        progress: bool = True,
        strict: bool = False,
        allow_removal: bool = False,
        wait: bool = True,
    ) -> SyncReport:
        """Make the index match the documents under ``corpus_dir``, then save it.

        Only added and changed documents are chunked and embedded; see :class:`SyncReport`.
        A file that cannot be read is skipped and listed in :attr:`SyncReport.skipped`, and
        its indexed version (if any) is kept; ``strict=True`` raises
        :class:`~ragft.errors.DocumentError` instead. A corpus with no documents for an empty
        index raises :class:`~ragft.errors.DocumentError`; see :meth:`sync_documents` for
        ``allow_removal``, and :meth:`writing` for ``wait``.
        """
        loaded = load_corpus(corpus_dir, strict=strict)
        with self.writing(wait=wait, progress=progress):
            return self._sync_loaded(loaded, corpus_dir, progress, allow_removal)

    def _sync_loaded(
        self, loaded: LoadedCorpus, corpus_dir: str | Path, progress: bool, allow_removal: bool
    ) -> SyncReport:
        # Over a non-empty index an empty corpus is a removal, which the removal guard handles.
        if not loaded.documents and not self.store.documents():
            found = "; ".join(f"{s.path}: {s.reason}" for s in loaded.skipped[:5])
            raise DocumentError(
                f"no documents to index under {corpus_dir}"
                + (f" ({found}{'; ...' if len(loaded.skipped) > 5 else ''})" if found else "")
                + "; ragft reads .md, .txt, .json and .jsonl files"
            )
        # Documents of files that could not be read this time are neither updated nor removed.
        unreadable = {s.path for s in loaded.skipped if s.unreadable}
        loaded_ids = {d.id for d in loaded.documents}
        keep = {
            doc_id
            for doc_id in self.store.documents()
            if doc_id not in loaded_ids and doc_id.split("#", 1)[0] in unreadable
        }
        report = self._sync(loaded.documents, keep, progress, allow_removal)
        return replace(report, skipped=loaded.skipped)

    def sync_documents(
        self,
        docs: Sequence[Document],
        *,
        progress: bool = True,
        allow_removal: bool = False,
        wait: bool = True,
    ) -> SyncReport:
        """:meth:`sync` for documents already in memory: ``docs`` is the whole corpus, so
        indexed documents missing from it are removed.

        Removing every indexed document, or more than half of them, is refused with
        :class:`~ragft.errors.MassRemovalError` (a wrong or empty corpus directory looks
        exactly like that) unless ``allow_removal=True``.
        """
        with self.writing(wait=wait, progress=progress):
            return self._sync(docs, set(), progress, allow_removal)

    def _sync(
        self, docs: Sequence[Document], keep: set[str], progress: bool, allow_removal: bool
    ) -> SyncReport:
        with self._lock:
            rechunk = self._settings_changed()
            hashes = self.store.documents()
            present = set(hashes)
            added: list[str] = []
            changed: list[str] = []
            unchanged: list[str] = []
            for doc in docs:
                stored = hashes.get(doc.id)
                if doc.id not in present:
                    added.append(doc.id)
                elif rechunk or stored != doc.content_hash:
                    changed.append(doc.id)
                else:
                    unchanged.append(doc.id)
            wanted = {d.id for d in docs} | keep
            removed = sorted(present - wanted)
            if not allow_removal:
                _check_removal(removed, len(present))
            todo = set(added) | set(changed)
            indexed, embedded, usage = self._apply(
                [d for d in docs if d.id in todo], removed, progress
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
            if rechunk or "chunking" not in self.store.meta:
                # Every document is now chunked with the current settings.
                self.store.meta["chunking"] = self.chunking
                rechunk = True
            if report.modified or rechunk:
                self.save()
            return report

    def upsert_document(self, doc: Document) -> SyncReport:
        """Add or replace one document and save; a no-op if its content is unchanged."""
        with self.writing():
            stored = self.store.documents().get(doc.id)
            present = stored is not None
            if present and stored == doc.content_hash and not self._settings_changed():
                return SyncReport(unchanged=(doc.id,), usage=_sum_usage(self.embedder.name, []))
            indexed, embedded, usage = self._apply([doc], [], False)
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
        with self.writing():
            if not self.store.delete_document(document_id):
                return False
            if self._bm25 is not None:
                self._bm25.remove_document(document_id)
            self.save()
            return True

    def save(self) -> None:
        """Make every change durable (FAISS: an atomic save to ``<path>/vectors``)."""
        with self._lock:
            # A new index records its settings; an old one keeps the settings its documents
            # were chunked with until a sync re-chunks them all.
            self.store.meta.setdefault("chunking", self.chunking)
            self.store.flush()

    # -- reading -----------------------------------------------------------------------
    def retriever(self, **settings: Any) -> Retriever:
        """A :class:`~ragft.rag.retriever.Retriever` over this knowledge base.

        ``settings`` are the retriever's keyword arguments (``mode``, ``top_k``,
        ``candidates``, ``min_score``, ``fusion``, ``dense_weight``, ``rrf_k``, ``reranker``).
        """
        mode = settings.get("mode", "hybrid")
        with self._lock:
            # A shared store (pgvector) may have been changed by another process since the
            # lexical index was built: a new retriever gets a current one.
            revision = self.store.revision()
            if revision != self._bm25_revision:
                self._bm25, self._bm25_revision = None, revision
        bm25 = self.bm25 if mode != "dense" else None
        return Retriever(self.store, self.embedder, bm25, **settings)
