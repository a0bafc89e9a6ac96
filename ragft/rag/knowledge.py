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

import contextlib
import fcntl
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ragft.answer import Usage
from ragft.errors import (
    ConfigError,
    DocumentError,
    IndexBusyError,
    IndexStoreError,
    MassRemovalError,
)
from ragft.models.base import Embedder
from ragft.rag.bm25 import BM25Index
from ragft.rag.chunker import DEFAULT_TOKEN_MODEL, Chunk, chunk_document
from ragft.rag.documents import Document, LoadedCorpus, SkippedFile, load_corpus
from ragft.rag.embedcache import CachedEmbedder, EmbeddingCache
from ragft.rag.index import IndexKind, VectorIndex
from ragft.rag.retriever import Retriever

__all__ = ["CACHE_FILE", "INDEX_DIR", "WRITER_LOCK", "KnowledgeBase", "SyncReport"]

INDEX_DIR = "vectors"
CACHE_FILE = "embeddings.sqlite"
#: Held exclusively by the one process allowed to change the index (see KnowledgeBase.writing).
WRITER_LOCK = "writer.lock"
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


def _disk_stamp(root: Path) -> tuple[int, int] | None:
    """Identifies the saved index version: every save renames a new manifest into place."""
    try:
        st = (root / INDEX_DIR / "manifest.json").stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns)


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
        # A rebuild must overwrite what is on disk, so it never reloads another writer's save.
        self._pinned = not saved and VectorIndex.exists(path / INDEX_DIR)
        self._stamp = _disk_stamp(path)
        self._writer_depth = 0

    # -- opening -----------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | Path,
        embedder: Embedder,
        *,
        kind: IndexKind = "auto",
        chunk_tokens: int = 300,
        chunk_overlap: int = 50,
        create: bool = True,
        rebuild: bool = False,
        token_model: str = DEFAULT_TOKEN_MODEL,
    ) -> KnowledgeBase:
        """Open the knowledge base at ``path``, or start an empty one (``create=True``).

        ``embedder`` is wrapped in a :class:`CachedEmbedder` over ``<path>/embeddings.sqlite``
        unless it already is one. ``rebuild=True`` starts from an empty index (the old one is
        replaced on the next save; cached embeddings are reused, and a damaged cache file is
        replaced, see :meth:`~ragft.rag.embedcache.EmbeddingCache.repair`). An existing index built with
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
        if rebuild:
            embedder.cache.repair()
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

    # -- the writer lock ------------------------------------------------------------------
    @contextlib.contextmanager
    def writing(self, *, wait: bool = True, progress: bool = False) -> Iterator[None]:
        """Hold the exclusive writer lock (``<path>/writer.lock``) for a change to the index.

        Every update takes it before its first embedding call, so two processes syncing one
        index neither embed the same documents twice nor lose each other's saves: once the
        lock is held, an index saved by another writer since this one loaded is reloaded.
        A held lock makes ``wait=False`` raise :class:`~ragft.errors.IndexBusyError`;
        ``wait=True`` blocks (saying so on stderr when ``progress``). Re-entrant.
        """
        with self._writer(wait=wait, progress=progress, refresh=True):
            yield

    @contextlib.contextmanager
    def _writer(self, *, wait: bool, progress: bool, refresh: bool) -> Iterator[None]:
        with self._lock:
            if self._writer_depth:
                self._writer_depth += 1
                try:
                    yield
                finally:
                    self._writer_depth -= 1
                return
            self.path.mkdir(parents=True, exist_ok=True)
            with open(self.path / WRITER_LOCK, "a+b") as fh:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if not wait:
                        raise IndexBusyError(
                            f"another process is writing the index at {self.path}; try again "
                            "when it has finished (or let this run wait for it)"
                        ) from None
                    if progress:
                        print(
                            f"waiting for another writer to finish with {self.path} ...",
                            file=sys.stderr,
                            flush=True,
                        )
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
                self._writer_depth = 1
                try:
                    if refresh:
                        self._reload_if_changed()
                    yield
                finally:
                    self._writer_depth = 0
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _reload_if_changed(self) -> None:
        """Adopt the index another writer saved since this one was loaded."""
        stamp = _disk_stamp(self.path)
        if self._pinned or stamp is None or stamp == self._stamp:
            return
        self.index = VectorIndex.load(
            self.path / INDEX_DIR,
            expected_embedder=self.embedder.name,
            expected_dim=self.embedder.dimension,
        )
        self._bm25 = None
        self._stamp = stamp
        self._saved = True

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
        if not loaded.documents and not self.index.document_ids():
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
            for doc_id in self.index.document_ids()
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
            wanted = {d.id for d in docs} | keep
            removed = sorted(present - wanted)
            if not allow_removal:
                _check_removal(removed, len(present))
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
        with self.writing():
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
        with self.writing():
            if document_id not in set(self.index.document_ids()):
                return False
            self.index.remove_document(document_id)
            if self._bm25 is not None:
                self._bm25.remove_document(document_id)
            self.save()
            return True

    def save(self) -> None:
        """Persist the index atomically to ``<path>/vectors`` (under the writer lock)."""
        with self._lock:
            # A new index records its settings; an old one keeps the settings its documents
            # were chunked with until a sync re-chunks them all.
            self.index.meta.setdefault("chunking", self.chunking)
            if self._writer_depth:
                self.index.save(self.path / INDEX_DIR)
            else:
                with self._writer(wait=True, progress=False, refresh=False):
                    self.index.save(self.path / INDEX_DIR)
            self._saved = True
            self._pinned = False
            self._stamp = _disk_stamp(self.path)

    # -- reading -----------------------------------------------------------------------
    def retriever(self, **settings: Any) -> Retriever:
        """A :class:`~ragft.rag.retriever.Retriever` over this knowledge base.

        ``settings`` are the retriever's keyword arguments (``mode``, ``top_k``,
        ``candidates``, ``min_score``, ``fusion``, ``dense_weight``, ``rrf_k``, ``reranker``).
        """
        mode = settings.get("mode", "hybrid")
        bm25 = self.bm25 if mode != "dense" else None
        return Retriever(self.index, self.embedder, bm25, **settings)
