"""The persisted vector index: FAISS vectors plus the chunks they stand for.

:class:`VectorIndex` keeps an ``IndexIDMap2`` around either ``IndexFlatIP`` (exact search) or
``IndexHNSWFlat`` (approximate, inner product), chosen by ``kind``: ``"auto"`` stays exact up to
:data:`AUTO_HNSW_THRESHOLD` vectors and converts itself to HNSW beyond. Vectors are expected to
be L2-normalised, so inner product is cosine similarity.

Per-document updates: chunks get fresh int64 FAISS ids (never reused), so removing a document
is ``remove_ids`` on the flat index. HNSW cannot remove vectors; removed ids become
*tombstones* that searches exclude with an ``IDSelector``, and :meth:`VectorIndex.save`
rebuilds the graph once tombstones exceed ``rebuild_fraction`` of the stored vectors.

On disk an index is a directory::

    manifest.json     format, version, embedder, dimension, kind, counts, meta, sha256 per file
    index.faiss       the serialised FAISS index
    chunks.jsonl      one chunk per line with its FAISS id
    documents.jsonl   document id -> content hash (what :class:`KnowledgeBase.sync` diffs on)

Saves are atomic: everything is written and fsynced in a temporary sibling directory, then the
old directory is renamed aside and the new one renamed into place. An exception mid-save
leaves the previous index untouched; a hard crash between the two renames leaves the previous
index in ``.NAME.old-*``, which :meth:`VectorIndex.load` restores. The swap holds an
exclusive lock on the sibling ``NAME.lock`` and loads a shared one, so a load in another thread
or process reads one complete version and never mistakes a save in progress for a crash.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, overload

import faiss
import numpy as np

from ragft.errors import ConfigError, IndexStoreError
from ragft.rag.chunker import Chunk
from ragft.storage import fsync_dir, locked

__all__ = [
    "AUTO_HNSW_THRESHOLD",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "IndexKind",
    "VectorIndex",
]

IndexKind = Literal["auto", "flat", "hnsw"]
FORMAT_NAME = "ragft-vector-index"
FORMAT_VERSION = 1
#: ``kind="auto"`` switches from exact to HNSW search above this many vectors: below it an
#: exact scan takes a few milliseconds on two cores, above it HNSW's speed is worth its recall.
AUTO_HNSW_THRESHOLD = 50_000
_REBUILD = "rebuild it with `ragft index --rebuild`"
_MANIFEST = "manifest.json"
_INDEX_FILE = "index.faiss"
_CHUNKS_FILE = "chunks.jsonl"
_DOCS_FILE = "documents.jsonl"
# A leftover temporary directory older than this is from a crashed save, not a running one.
_STALE_TMP_S = 3600.0


@contextlib.contextmanager
def _threads_for(n_queries: int) -> Iterator[None]:
    """Search one query on one OpenMP thread. FAISS splits a single query across threads,
    which measured 2x *slower* on this 2-core machine (100k flat: 14.5 ms vs 7.8 ms) and
    contends with onnxruntime's spinning threads; batches keep FAISS's default."""
    if n_queries != 1:
        yield
        return
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def _sha256(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_file(path: Path, data: bytes | memoryview) -> dict[str, Any]:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return {"sha256": _sha256(data), "bytes": len(data)}


def _seal_file(path: Path) -> dict[str, Any]:
    """fsync a file written by someone else (FAISS) and describe it like :func:`_write_file`."""
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()  # type: ignore[arg-type]
        os.fsync(fh.fileno())
    return {"sha256": digest, "bytes": path.stat().st_size}


def _chunk_line(fid: int, chunk: Chunk) -> bytes:
    record = chunk.to_dict()
    record["fid"] = fid
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


class VectorIndex:
    """Vectors for chunks, searchable by inner product, updatable per document, persisted.

    ``embedder`` and ``dimension`` identify the vector space; :meth:`load` refuses an index
    from another one. ``meta`` is free-form JSON saved in the manifest (the knowledge base
    records its chunking settings there).
    """

    def __init__(
        self,
        dimension: int,
        *,
        embedder: str,
        kind: IndexKind = "auto",
        hnsw_m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 128,
        auto_threshold: int = AUTO_HNSW_THRESHOLD,
        rebuild_fraction: float = 0.2,
        meta: Mapping[str, Any] | None = None,
    ):
        if dimension < 1:
            raise ConfigError(f"index dimension must be >= 1, got {dimension}")
        if kind not in ("auto", "flat", "hnsw"):
            raise ConfigError(f"index kind must be 'auto', 'flat' or 'hnsw', got {kind!r}")
        self.dimension = dimension
        self.embedder = embedder
        self.requested_kind: IndexKind = kind
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.auto_threshold = auto_threshold
        self.rebuild_fraction = rebuild_fraction
        self.meta: dict[str, Any] = dict(meta or {})
        self._lock = threading.RLock()
        self._kind: Literal["flat", "hnsw"] = "hnsw" if kind == "hnsw" else "flat"
        self._index = self._new_faiss(self._kind)
        self._chunks: dict[int, Chunk] = {}
        self._lines: dict[int, bytes] = {}  # serialised chunk records, so saves only join bytes
        self._fid_of: dict[str, int] = {}
        self._doc_chunks: dict[str, list[str]] = {}
        self._doc_hashes: dict[str, str] = {}
        self._tombstones: set[int] = set()
        self._selector: Any = None
        self._next_id = 0

    # -- construction ------------------------------------------------------------------
    def _new_faiss(self, kind: str) -> Any:
        inner: Any
        if kind == "hnsw":
            inner = faiss.IndexHNSWFlat(self.dimension, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = self.ef_construction
            inner.hnsw.efSearch = self.ef_search
        else:
            inner = faiss.IndexFlatIP(self.dimension)
        # faiss's Python wrapper keeps a reference to `inner` inside the IDMap.
        return faiss.IndexIDMap2(inner)

    @property
    def kind(self) -> Literal["flat", "hnsw"]:
        """The FAISS structure in use now (``"auto"`` resolved)."""
        return self._kind

    @property
    def tombstones(self) -> int:
        """Removed-but-still-stored HNSW vectors awaiting a rebuild."""
        return len(self._tombstones)

    @property
    def ntotal(self) -> int:
        """Vectors stored in FAISS, tombstones included."""
        return int(self._index.ntotal)

    def __len__(self) -> int:
        return len(self._chunks)

    def __contains__(self, chunk_id: object) -> bool:
        return chunk_id in self._fid_of

    # -- reading -----------------------------------------------------------------------
    def document_ids(self) -> list[str]:
        """Ids of the documents in the index (including ones that produced no chunks), sorted."""
        with self._lock:
            return sorted(set(self._doc_chunks) | set(self._doc_hashes))

    def document_hash(self, document_id: str) -> str | None:
        """The content hash recorded for ``document_id``, or ``None``."""
        return self._doc_hashes.get(document_id)

    def chunk(self, chunk_id: str) -> Chunk:
        """The chunk with ``chunk_id`` (``KeyError`` if absent)."""
        return self._chunks[self._fid_of[chunk_id]]

    def chunks_of(self, document_id: str) -> list[Chunk]:
        """The chunks of one document, in position order."""
        with self._lock:
            return [self.chunk(cid) for cid in self._doc_chunks.get(document_id, [])]

    def chunks(self) -> Iterator[Chunk]:
        """Every chunk (a snapshot, safe to iterate while the index changes)."""
        with self._lock:
            snapshot = list(self._chunks.values())
        return iter(snapshot)

    def vectors(self, chunk_ids: Sequence[str]) -> np.ndarray:
        """The stored vectors of ``chunk_ids`` (rows in order), read back from FAISS."""
        out = np.zeros((len(chunk_ids), self.dimension), dtype=np.float32)
        with self._lock:
            for row, cid in enumerate(chunk_ids):
                out[row] = self._index.reconstruct(self._fid_of[cid])
        return out

    # -- updating ----------------------------------------------------------------------
    def add(
        self,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        *,
        document_hashes: Mapping[str, str] | None = None,
    ) -> None:
        """Add ``chunks`` with their ``vectors`` (rows in order, shape ``(n, dimension)``).

        A chunk whose id is already indexed is replaced. ``document_hashes`` records the
        content hash of each added document, including documents that produced no chunks.
        """
        vecs = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(chunks) and (vecs.ndim != 2 or vecs.shape != (len(chunks), self.dimension)):
            raise ValueError(
                f"expected vectors of shape ({len(chunks)}, {self.dimension}), got {vecs.shape}"
            )
        with self._lock:
            replaced = [c.id for c in chunks if c.id in self._fid_of]
            if replaced:
                self.remove_chunks(replaced)
            if len(chunks):
                ids = np.arange(self._next_id, self._next_id + len(chunks), dtype=np.int64)
                self._next_id += len(chunks)
                self._index.add_with_ids(vecs, ids)
                for fid, chunk in zip(ids.tolist(), chunks, strict=True):
                    self._chunks[fid] = chunk
                    self._fid_of[chunk.id] = fid
                    self._doc_chunks.setdefault(chunk.document_id, []).append(chunk.id)
                for doc_id in {c.document_id for c in chunks}:
                    self._doc_chunks[doc_id].sort(key=lambda cid: self.chunk(cid).position)
            if document_hashes:
                self._doc_hashes.update(document_hashes)
            if (
                self.requested_kind == "auto"
                and self._kind == "flat"
                and len(self._chunks) > self.auto_threshold
            ):
                self._rebuild("hnsw")

    def remove_chunks(self, chunk_ids: Iterable[str]) -> int:
        """Remove chunks by id (unknown ids are ignored); returns how many were removed."""
        with self._lock:
            fids: list[int] = []
            for cid in chunk_ids:
                fid = self._fid_of.pop(cid, None)
                if fid is None:
                    continue
                chunk = self._chunks.pop(fid)
                self._lines.pop(fid, None)
                siblings = self._doc_chunks.get(chunk.document_id)
                if siblings is not None:
                    siblings.remove(cid)
                    if not siblings:
                        del self._doc_chunks[chunk.document_id]
                fids.append(fid)
            if not fids:
                return 0
            if self._kind == "flat":
                self._index.remove_ids(np.array(fids, dtype=np.int64))
            else:
                self._tombstones.update(fids)
                self._selector = None
            return len(fids)

    def remove_document(self, document_id: str) -> int:
        """Remove a document's chunks and its recorded hash; returns the chunks removed."""
        with self._lock:
            removed = self.remove_chunks(list(self._doc_chunks.get(document_id, [])))
            self._doc_hashes.pop(document_id, None)
            return removed

    def set_document_hash(self, document_id: str, content_hash: str) -> None:
        """Record ``document_id``'s content hash without touching its chunks."""
        with self._lock:
            self._doc_hashes[document_id] = content_hash

    def convert(self, kind: Literal["flat", "hnsw"]) -> None:
        """Rebuild the FAISS structure as ``kind`` (no-op if it already is, without tombstones)."""
        with self._lock:
            self.requested_kind = kind
            if kind != self._kind or self._tombstones:
                self._rebuild(kind)

    def _rebuild(self, kind: Literal["flat", "hnsw"]) -> None:
        """Re-create the FAISS index from the live vectors (drops tombstones)."""
        n = self.ntotal
        if n:
            inner = faiss.downcast_index(self._index.index)
            all_vecs = inner.reconstruct_n(0, n)
            all_ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
            live = np.fromiter((i in self._chunks for i in all_ids.tolist()), bool, count=n)
            vecs, ids = all_vecs[live], all_ids[live]
        fresh = self._new_faiss(kind)
        if n and len(ids):
            fresh.add_with_ids(np.ascontiguousarray(vecs), ids)
        self._index = fresh
        self._kind = kind
        self._tombstones.clear()
        self._selector = None

    # -- searching ---------------------------------------------------------------------
    def _search_params(self, k: int) -> Any:
        if self._kind != "hnsw":
            return None
        ef = max(self.ef_search, k)
        # Building SWIG parameter objects costs tens of microseconds, a sizeable share of an
        # HNSW query: reuse them until the tombstones or efSearch change.
        if self._selector is None or self._selector[0] != ef:
            params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]  # missing from stubs
            params.efSearch = ef
            keep: tuple[Any, ...] = ()
            if self._tombstones:
                batch = faiss.IDSelectorBatch(np.fromiter(self._tombstones, np.int64))
                not_deleted = faiss.IDSelectorNot(batch)
                params.sel = not_deleted
                keep = (batch, not_deleted)  # the C++ params point at these: keep them alive
            self._selector = (ef, params, keep)
        return self._selector[1]

    @overload
    def search(self, vector: np.ndarray, k: int) -> list[tuple[Chunk, float]]: ...

    @overload
    def search(self, vector: np.ndarray, k: int, *, batch: Literal[True]) -> list[
        list[tuple[Chunk, float]]
    ]: ...

    def search(self, vector: np.ndarray, k: int, *, batch: bool = False) -> Any:
        """The ``k`` chunks with the highest inner product with ``vector``, best first.

        A 1-D ``vector`` gives one list of ``(chunk, score)``; a 2-D array (one query per row)
        gives one list per row.
        """
        query = np.ascontiguousarray(vector, dtype=np.float32)
        single = query.ndim == 1
        if single:
            query = query[None, :]
        if query.ndim != 2 or query.shape[1] != self.dimension:
            raise ValueError(f"query vectors must have {self.dimension} columns, got {query.shape}")
        results: list[list[tuple[Chunk, float]]]
        with self._lock:
            if not self._chunks or k <= 0:
                results = [[] for _ in range(len(query))]
            else:
                k_eff = min(k, len(self._chunks))
                params = self._search_params(k_eff)
                with _threads_for(len(query)):
                    if params is None:
                        scores, ids = self._index.search(query, k_eff)
                    else:
                        scores, ids = self._index.search(query, k_eff, params=params)
                chunks = self._chunks
                results = [
                    [
                        (chunks[fid], float(score))
                        for fid, score in zip(row_ids.tolist(), row_scores.tolist(), strict=True)
                        if fid in chunks
                    ]
                    for row_ids, row_scores in zip(ids, scores, strict=True)
                ]
        return results[0] if single and not batch else results

    def search_many(self, vectors: np.ndarray, k: int) -> list[list[tuple[Chunk, float]]]:
        """:meth:`search` for a 2-D array of queries: one result list per row."""
        return self.search(vectors, k, batch=True)

    # -- persistence -------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counts and sizes for display (``ragft index``, benchmarks)."""
        with self._lock:
            return {
                "embedder": self.embedder,
                "dimension": self.dimension,
                "kind": self._kind,
                "requested_kind": self.requested_kind,
                "chunks": len(self._chunks),
                "documents": len(self.document_ids()),
                "vectors_stored": self.ntotal,
                "tombstones": len(self._tombstones),
            }

    def save(self, directory: str | Path) -> None:
        """Persist atomically to ``directory`` (see the module docstring)."""
        target = Path(directory)
        parent = target.parent
        parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if self._kind == "hnsw" and self._tombstones and (
                len(self._tombstones) > self.rebuild_fraction * max(1, self.ntotal)
            ):
                self._rebuild("hnsw")
            _remove_stale(parent, target.name)
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=parent))
            try:
                # FAISS writes its own file straight from its buffers: ~10x faster than
                # serialising to memory and writing that from Python (100k x 384 floats).
                faiss.write_index(self._index, str(tmp / _INDEX_FILE))
                files = {
                    _INDEX_FILE: _seal_file(tmp / _INDEX_FILE),
                    _CHUNKS_FILE: _write_file(tmp / _CHUNKS_FILE, self._chunk_bytes()),
                    _DOCS_FILE: _write_file(tmp / _DOCS_FILE, self._doc_bytes()),
                }
                manifest = {
                    "format": FORMAT_NAME,
                    "version": FORMAT_VERSION,
                    "embedder": self.embedder,
                    "dimension": self.dimension,
                    "kind": self._kind,
                    "requested_kind": self.requested_kind,
                    "hnsw": {
                        "m": self.hnsw_m,
                        "ef_construction": self.ef_construction,
                        "ef_search": self.ef_search,
                    },
                    "auto_threshold": self.auto_threshold,
                    "rebuild_fraction": self.rebuild_fraction,
                    "counts": {
                        "chunks": len(self._chunks),
                        "documents": len(self.document_ids()),
                        "vectors": self.ntotal,
                    },
                    "next_id": self._next_id,
                    "tombstones": sorted(self._tombstones),
                    "meta": self.meta,
                    "saved_at": time.time(),
                    "files": files,
                }
                _write_file(
                    tmp / _MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode()
                )
                fsync_dir(tmp)
                # Loads hold the shared lock: none reads between the two renames of the swap.
                with locked(target):
                    _swap_into_place(tmp, target)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise

    def _chunk_bytes(self) -> bytes:
        parts = []
        for fid, chunk in self._chunks.items():
            line = self._lines.get(fid)
            if line is None:
                line = self._lines[fid] = _chunk_line(fid, chunk)
            parts.append(line)
        return b"".join(parts)

    def _doc_bytes(self) -> bytes:
        lines = [
            json.dumps({"id": d, "content_hash": h}, ensure_ascii=False) + "\n"
            for d, h in sorted(self._doc_hashes.items())
        ]
        return "".join(lines).encode("utf-8")

    @classmethod
    def load(
        cls,
        directory: str | Path,
        *,
        expected_embedder: str | None = None,
        expected_dim: int | None = None,
    ) -> VectorIndex:
        """Load an index saved by :meth:`save`, verifying every file's checksum.

        Raises :class:`~ragft.errors.IndexStoreError` (saying how to fix it) when the
        directory holds no index, a file is corrupt or truncated, or the index was built
        with another embedder or dimension than expected.
        """
        target = Path(directory)
        if not target.parent.is_dir():
            raise IndexStoreError(f"no index at {target}; build it with `ragft index`")
        if not (target / _MANIFEST).is_file() and _backups(target):
            # Exclusive: a save in progress looks like a crash until its second rename.
            with locked(target):
                _recover_interrupted_swap(target)
        # Shared: every file read below belongs to the same saved version.
        with locked(target, shared=True):
            return cls._read(target, expected_embedder, expected_dim)

    @classmethod
    def _read(
        cls, target: Path, expected_embedder: str | None, expected_dim: int | None
    ) -> VectorIndex:
        manifest_path = target / _MANIFEST
        if not manifest_path.is_file() and _has_index_files(target):
            raise IndexStoreError(
                f"index at {target} is damaged: {_MANIFEST} is missing; {_REBUILD}"
            )
        if not manifest_path.is_file():
            raise IndexStoreError(
                f"no index at {target} (no {_MANIFEST}); build it with `ragft index`"
            )
        try:
            manifest = json.loads(manifest_path.read_text("utf-8"))
            if not isinstance(manifest, dict):
                raise ValueError("manifest is not a JSON object")
        except (ValueError, OSError) as exc:
            raise IndexStoreError(
                f"index manifest {manifest_path} is unreadable ({exc}); {_REBUILD}"
            ) from exc
        if manifest.get("format") != FORMAT_NAME:
            raise IndexStoreError(f"{target} is not a ragft index; {_REBUILD}")
        if manifest.get("version") != FORMAT_VERSION:
            raise IndexStoreError(
                f"index at {target} has format version {manifest.get('version')}, this ragft "
                f"reads version {FORMAT_VERSION}; {_REBUILD}"
            )
        embedder, dim = manifest.get("embedder"), manifest.get("dimension")
        if (expected_embedder is not None and embedder != expected_embedder) or (
            expected_dim is not None and dim != expected_dim
        ):
            raise IndexStoreError(
                f"index at {target} was built with embedder {embedder!r} ({dim} dimensions) but "
                f"the configured embedder is {expected_embedder or embedder!r} "
                f"({expected_dim or dim} dimensions); {_REBUILD}, or set models.embedding back "
                f"to {embedder!r}"
            )
        blobs: dict[str, bytes] = {}
        files = manifest.get("files") or {}
        for name in (_INDEX_FILE, _CHUNKS_FILE, _DOCS_FILE):
            info = files.get(name)
            path = target / name
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise IndexStoreError(
                    f"index file {path} is missing or unreadable ({exc}); {_REBUILD}"
                ) from exc
            if not isinstance(info, dict) or len(data) != info.get("bytes"):
                raise IndexStoreError(
                    f"index file {path} is truncated or was modified ({len(data)} bytes, manifest "
                    f"says {info.get('bytes') if isinstance(info, dict) else '?'}); {_REBUILD}"
                )
            if _sha256(data) != info.get("sha256"):
                raise IndexStoreError(
                    f"index file {path} is corrupt (checksum mismatch); {_REBUILD}"
                )
            blobs[name] = data
        hnsw = manifest.get("hnsw") or {}
        index = cls(
            int(dim),  # type: ignore[arg-type]  # validated above
            embedder=str(embedder),
            kind=manifest.get("requested_kind", manifest.get("kind", "auto")),  # type: ignore[arg-type]
            hnsw_m=int(hnsw.get("m", 32)),
            ef_construction=int(hnsw.get("ef_construction", 80)),
            ef_search=int(hnsw.get("ef_search", 128)),
            auto_threshold=int(manifest.get("auto_threshold", AUTO_HNSW_THRESHOLD)),
            rebuild_fraction=float(manifest.get("rebuild_fraction", 0.2)),
            meta=manifest.get("meta") or {},
        )
        try:
            faiss_index = faiss.deserialize_index(np.frombuffer(blobs[_INDEX_FILE], dtype=np.uint8))
            chunk_lines = blobs[_CHUNKS_FILE].splitlines(keepends=True)
            for line in chunk_lines:
                record = json.loads(line)
                fid = int(record.pop("fid"))
                chunk = Chunk.from_dict(record)
                index._chunks[fid] = chunk
                index._lines[fid] = line
                index._fid_of[chunk.id] = fid
                index._doc_chunks.setdefault(chunk.document_id, []).append(chunk.id)
            for doc_line in blobs[_DOCS_FILE].decode("utf-8").splitlines():
                record = json.loads(doc_line)
                index._doc_hashes[str(record["id"])] = str(record["content_hash"])
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise IndexStoreError(
                f"index at {target} could not be read ({exc}); {_REBUILD}"
            ) from exc
        for ids in index._doc_chunks.values():
            ids.sort(key=lambda cid: index.chunk(cid).position)
        index._index = faiss_index
        index._kind = "hnsw" if manifest.get("kind") == "hnsw" else "flat"
        index._tombstones = {int(t) for t in manifest.get("tombstones", [])}
        index._next_id = int(manifest.get("next_id", 0))
        if faiss_index.d != index.dimension or faiss_index.ntotal != len(index._chunks) + len(
            index._tombstones
        ):
            raise IndexStoreError(
                f"index at {target} is inconsistent ({faiss_index.ntotal} vectors for "
                f"{len(index._chunks)} chunks); {_REBUILD}"
            )
        if index._chunks:
            index._next_id = max(index._next_id, max(index._chunks) + 1)
        return index

    @staticmethod
    def saved_version(directory: str | Path) -> str | None:
        """An id of the version saved at ``directory`` right now (the SHA-256 of its manifest,
        which holds every file's checksum and the save time), or ``None`` when no complete
        version is there. Noted before :meth:`load`, it tells a long-lived reader (``ragft
        serve``) when a newer version has been saved; the manifest is read whole from one
        open file, so a swap in progress yields the old id or the new one, never a mix."""
        try:
            return _sha256((Path(directory) / _MANIFEST).read_bytes())
        except OSError:
            return None

    @staticmethod
    def exists(directory: str | Path) -> bool:
        """Whether ``directory`` holds a saved index (or one recoverable from a crashed save,
        or a damaged one, which :meth:`load` then reports instead of reading as empty)."""
        target = Path(directory)
        return (
            (target / _MANIFEST).is_file() or bool(_backups(target)) or _has_index_files(target)
        )


def _has_index_files(target: Path) -> bool:
    return any((target / name).exists() for name in (_INDEX_FILE, _CHUNKS_FILE, _DOCS_FILE))


def _backups(target: Path) -> list[Path]:
    if not target.parent.is_dir():
        return []
    return sorted(
        (p for p in target.parent.glob(f".{target.name}.old-*") if (p / _MANIFEST).is_file()),
        key=lambda p: p.stat().st_mtime,
    )


def _swap_into_place(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` to ``target``, moving an existing ``target`` aside first."""
    backup: Path | None = None
    if target.exists():
        backup = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:12]}"
        os.rename(target, backup)
    try:
        os.rename(tmp, target)
    except BaseException:
        if backup is not None:
            os.rename(backup, target)  # put the previous index back
        raise
    fsync_dir(target.parent)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def _recover_interrupted_swap(target: Path) -> None:
    """After a crash between the two renames of a save, restore the previous index."""
    if (target / _MANIFEST).is_file():
        return
    backups = _backups(target)
    if not backups:
        return
    if target.exists() and not any(target.iterdir()):
        target.rmdir()
    if not target.exists():
        os.rename(backups[-1], target)


def _remove_stale(parent: Path, name: str) -> None:
    now = time.time()
    for path in parent.glob(f".{name}.new-*"):
        try:
            if now - path.stat().st_mtime > _STALE_TMP_S:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass
