"""The embedded default store: a FAISS :class:`~ragft.rag.index.VectorIndex` in the process,
saved atomically (write aside, fsync, rename; checksummed files) to a directory.

Changes are made in memory and become durable at :meth:`FaissStore.flush`, in one atomic save,
so an exception or a crash mid-sync leaves the previous index untouched. One process writes at
a time: :meth:`FaissStore.writing` holds ``writer.lock`` beside the index directory, and on
entry reloads an index another writer saved since this one loaded (no lost update, and a
second ``ragft index`` diffs against the first one's result instead of embedding again).
"""

from __future__ import annotations

import contextlib
import fcntl
import sys
import threading
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ragft.errors import IndexBusyError, IndexStoreError
from ragft.rag.chunker import Chunk
from ragft.rag.index import IndexKind, VectorIndex
from ragft.rag.stores.base import ReentrantWriter, ScoredChunks

__all__ = ["WRITER_LOCK", "FaissStore"]

#: Held exclusively (flock) by the one process allowed to change the index.
WRITER_LOCK = "writer.lock"


def _disk_stamp(directory: Path) -> tuple[int, int] | None:
    """Identifies the saved version: every save renames a new manifest into place."""
    try:
        st = (directory / "manifest.json").stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns)


class FaissStore:
    """A :class:`~ragft.rag.stores.base.VectorStore` over a FAISS index saved in ``directory``.

    Build one with :meth:`open`. ``index`` is the in-memory :class:`VectorIndex`.
    """

    def __init__(self, directory: Path, index: VectorIndex, *, saved: bool, pinned: bool = False):
        self.directory = directory
        self.index = index
        self._saved = saved
        # A rebuild must overwrite what is on disk, so it never adopts another writer's save.
        self._pinned = pinned
        self._stamp = _disk_stamp(directory)
        self._lock = threading.RLock()
        self._held = ReentrantWriter()
        self._revision = 0

    @classmethod
    def open(
        cls,
        directory: str | Path,
        *,
        embedder: str,
        dimension: int,
        kind: IndexKind = "auto",
        create: bool = True,
        rebuild: bool = False,
    ) -> FaissStore:
        """The store saved in ``directory``, or an empty one (``create=True``).

        ``rebuild=True`` starts empty; the saved index is replaced at the first flush. An
        index from another embedder or dimension, or a damaged one, raises
        :class:`~ragft.errors.IndexStoreError` saying how to fix it.
        """
        path = Path(directory)
        exists = VectorIndex.exists(path)
        if not rebuild and exists:
            index = VectorIndex.load(path, expected_embedder=embedder, expected_dim=dimension)
            if kind != "auto" and (index.kind != kind or index.requested_kind != kind):
                index.convert(kind)
            return cls(path, index, saved=True)
        if not (create or rebuild):
            raise IndexStoreError(
                f"no knowledge base at {path.parent}; build it with `ragft index`"
            )
        return cls(path, VectorIndex(dimension, embedder=embedder, kind=kind), saved=False,
                   pinned=rebuild and exists)

    # -- identity ----------------------------------------------------------------------
    @property
    def embedder(self) -> str:
        """The embedder id the vectors come from."""
        return self.index.embedder

    @property
    def dimension(self) -> int:
        """The vector size."""
        return self.index.dimension

    @property
    def meta(self) -> dict[str, Any]:
        """Saved in the manifest."""
        return self.index.meta

    @property
    def kind(self) -> Literal["flat", "hnsw"]:
        """The FAISS structure in use."""
        return self.index.kind

    @property
    def saved(self) -> bool:
        """Whether the in-memory state has been saved at least once."""
        return self._saved

    # -- reading -----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, chunk_id: object) -> bool:
        return chunk_id in self.index

    def documents(self) -> dict[str, str]:
        """Document id -> content hash."""
        with self._lock:
            return {d: self.index.document_hash(d) or "" for d in self.index.document_ids()}

    def document_ids(self) -> list[str]:
        """Stored document ids, sorted."""
        return self.index.document_ids()

    def chunks(self) -> Iterator[Chunk]:
        """Every chunk (a snapshot)."""
        return self.index.chunks()

    def chunks_of(self, document_id: str) -> list[Chunk]:
        """One document's chunks in position order."""
        return self.index.chunks_of(document_id)

    def vectors(self, chunk_ids: Sequence[str]) -> np.ndarray:
        """Stored vectors, rows in the order of ``chunk_ids``."""
        return self.index.vectors(chunk_ids)

    def search_many(
        self, vectors: np.ndarray, k: int, *, document_ids: Collection[str] | None = None
    ) -> list[ScoredChunks]:
        """Top-``k`` chunks per query row; a document filter widens the FAISS search until
        ``k`` matching chunks are found (or every chunk has been seen)."""
        if document_ids is None:
            return self.index.search(vectors, k, batch=True)
        wanted = set(document_ids)
        want = sum(len(self.index.chunks_of(d)) for d in wanted)
        results = self.index.search(vectors, min(len(self.index), max(k, want * 4)), batch=True)
        out = [[(c, s) for c, s in row if c.document_id in wanted][:k] for row in results]
        if any(len(r) < min(k, want) for r in out):
            full = self.index.search(vectors, len(self.index), batch=True)
            out = [[(c, s) for c, s in row if c.document_id in wanted][:k] for row in full]
        return out

    def stats(self) -> dict[str, Any]:
        """Counts, kind and where it lives."""
        info = self.index.stats()
        info["backend"] = "faiss"
        return info

    # -- writing -----------------------------------------------------------------------
    def replace_document(
        self, document_id: str, content_hash: str, chunks: Sequence[Chunk], vectors: np.ndarray
    ) -> None:
        """Swap a document's chunks in memory (durable at :meth:`flush`)."""
        with self._lock:
            self.index.remove_document(document_id)
            self.index.add(chunks, vectors, document_hashes={document_id: content_hash})

    def delete_document(self, document_id: str) -> bool:
        """Drop a document in memory (durable at :meth:`flush`)."""
        with self._lock:
            present = self.index.document_hash(document_id) is not None or bool(
                self.index.chunks_of(document_id)
            )
            self.index.remove_document(document_id)
            return present

    def flush(self) -> None:
        """Save atomically (under the writer lock, taken here if the caller does not hold it)."""
        with self._lock:
            if self._held.depth:
                self.index.save(self.directory)
            else:
                with self._writer(wait=True, progress=False, refresh=False):
                    self.index.save(self.directory)
            self._saved = True
            self._pinned = False
            self._stamp = _disk_stamp(self.directory)

    @contextlib.contextmanager
    def writing(self, *, wait: bool = True, progress: bool = False) -> Iterator[None]:
        """The exclusive writer lock (``writer.lock`` beside the index directory)."""
        with self._writer(wait=wait, progress=progress, refresh=True):
            yield

    @contextlib.contextmanager
    def _writer(self, *, wait: bool, progress: bool, refresh: bool) -> Iterator[None]:
        with self._lock, self._held.hold(lambda: self._flock(wait, progress, refresh)):
            yield

    @contextlib.contextmanager
    def _flock(self, wait: bool, progress: bool, refresh: bool) -> Iterator[None]:
        root = self.directory.parent
        root.mkdir(parents=True, exist_ok=True)
        with open(root / WRITER_LOCK, "a+b") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    raise IndexBusyError(
                        f"another process is writing the index at {root}; try again when "
                        "it has finished (or let this run wait for it)"
                    ) from None
                if progress:
                    print(f"waiting for another writer to finish with {root} ...",
                          file=sys.stderr, flush=True)
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                if refresh:
                    self._reload_if_changed()
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _reload_if_changed(self) -> None:
        """Adopt the index another writer saved since this one was loaded."""
        stamp = _disk_stamp(self.directory)
        if self._pinned or stamp is None or stamp == self._stamp:
            return
        self.index = VectorIndex.load(
            self.directory, expected_embedder=self.embedder, expected_dim=self.dimension
        )
        self._stamp = stamp
        self._saved = True
        self._revision += 1

    def revision(self) -> int:
        """Changes when another writer's saved index is adopted (see :meth:`writing`)."""
        return self._revision

    def close(self) -> None:
        """Nothing to release: the index lives in memory, files are closed after each save."""
