"""An on-disk embedding cache, so a text is embedded (and paid for) once per model.

:class:`EmbeddingCache` is a SQLite file (stdlib, WAL mode so readers never block each other
or the writer) holding float32 vectors keyed by ``(embedder name, kind, sha256(text))``.
:class:`CachedEmbedder` wraps any :class:`~ragft.models.base.Embedder`, embeds only the misses
in one call to the wrapped embedder, and returns the usage of that call alone: cached texts
cost no tokens, and wrapping a :class:`~ragft.metering.meter.MeteredEmbedder` means the meter
records only real calls.

Only ``kind="document"`` texts are cached by default: queries are cheap, rarely repeat in
production, and caching them would make per-query cost in evaluations look free.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ragft.answer import Usage
from ragft.errors import IndexStoreError
from ragft.models.base import Embedder, Embeddings, EmbedKind

__all__ = ["CacheStats", "CachedEmbedder", "EmbeddingCache", "text_key"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    model TEXT NOT NULL,
    kind TEXT NOT NULL,
    text_sha256 TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (model, kind, text_sha256)
) WITHOUT ROWID
"""
# SQLite's default limit on host parameters is 999 in old builds; stay well below it.
_BATCH = 500


def text_key(text: str) -> str:
    """The cache key of ``text``: its SHA-256 hex digest."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Float32 vectors on disk, keyed by (model, kind, sha256 of the text).

    Safe to share between threads (one connection behind a lock) and between processes
    (SQLite WAL: concurrent readers, one writer at a time, ``busy_timeout`` waits for locks).
    """

    def __init__(self, path: str | Path, *, timeout_s: float = 30.0):
        self.path = Path(path)
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        # Opened on first use: building a cache (e.g. for `ragft ask` before any `ragft
        # index`) must not leave an empty index folder behind.
        self._connection: sqlite3.Connection | None = None

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=self.timeout_s, check_same_thread=False, isolation_level=None
            )
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                # NORMAL is durable enough for a cache: a lost tail only means re-embedding.
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(_SCHEMA)
            except BaseException:
                conn.close()
                raise
        except sqlite3.DatabaseError as exc:
            raise IndexStoreError(
                f"embedding cache {self.path} is unusable ({exc}); run `ragft index --rebuild`, "
                "which replaces it (it only holds cached vectors)"
            ) from exc
        return conn

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = self._open()
        return self._connection

    def repair(self) -> bool:
        """Check the file (SQLite ``quick_check``) and, when it is damaged (truncated,
        overwritten), move it aside as ``<name>.damaged`` and start an empty cache.

        Returns whether the cache was replaced. Only vectors are lost, and they are
        re-embedded on demand; ``ragft index --rebuild`` calls this.
        """
        with self._lock:
            try:
                rows = self._conn.execute("PRAGMA quick_check").fetchall()
                if rows == [("ok",)]:
                    return False
            except (IndexStoreError, sqlite3.DatabaseError):
                pass
            if self._connection is not None:
                self._connection.close()
                self._connection = None
            for side in (self.path, *self.path.parent.glob(f"{self.path.name}-*")):
                if side.exists():
                    side.replace(side.with_name(side.name + ".damaged"))
            self._connection = self._open()
            return True

    def get_many(
        self, model: str, keys: Iterable[str], *, kind: str = "document", dim: int | None = None
    ) -> dict[str, np.ndarray]:
        """The cached vectors among ``keys`` (text hashes); missing keys are absent.

        Rows with a different ``dim`` (the same model name configured to another size) are
        treated as misses.
        """
        wanted = list(dict.fromkeys(keys))
        found: dict[str, np.ndarray] = {}
        try:
            with self._lock:
                for start in range(0, len(wanted), _BATCH):
                    batch = wanted[start : start + _BATCH]
                    marks = ",".join("?" * len(batch))
                    rows = self._conn.execute(
                        "SELECT text_sha256, dim, vector FROM embeddings "
                        f"WHERE model = ? AND kind = ? AND text_sha256 IN ({marks})",
                        (model, kind, *batch),
                    ).fetchall()
                    for key, row_dim, blob in rows:
                        if dim is not None and row_dim != dim:
                            continue
                        found[key] = np.frombuffer(blob, dtype=np.float32)
        except sqlite3.DatabaseError as exc:
            raise IndexStoreError(
                f"embedding cache {self.path} could not be read ({exc}); run `ragft index "
                "--rebuild`, which replaces it"
            ) from exc
        return found

    def put_many(
        self, model: str, vectors: Mapping[str, np.ndarray], *, kind: str = "document"
    ) -> None:
        """Store ``vectors`` (text hash -> vector) in one transaction."""
        rows = [
            (model, kind, key, int(vec.shape[0]), np.ascontiguousarray(vec, np.float32).tobytes())
            for key, vec in vectors.items()
        ]
        if not rows:
            return
        try:
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    self._conn.executemany(
                        "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?, ?)", rows
                    )
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
        except sqlite3.DatabaseError as exc:
            raise IndexStoreError(
                f"embedding cache {self.path} could not be written ({exc}); check the disk, "
                "or delete the file and re-index"
            ) from exc

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])

    def close(self) -> None:
        """Close the connection (a later use opens it again)."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


class CacheStats:
    """Running counts of a :class:`CachedEmbedder`'s lookups: ``misses`` texts were really
    embedded, ``hits`` were served from the cache (or from a duplicate in the same batch)."""

    __slots__ = ("hits", "misses")

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"CacheStats(hits={self.hits}, misses={self.misses})"


class CachedEmbedder:
    """An :class:`~ragft.models.base.Embedder` that consults an :class:`EmbeddingCache` first.

    Only cache misses reach ``inner`` (in one call, duplicates in the batch embedded once);
    the returned usage is that call's usage, or zero tokens when everything was cached.
    The wrapper exposes only the embedder protocol; a backend's own attributes (batch size,
    meter) are reached explicitly through :attr:`inner`.
    ``cache_queries`` also caches ``kind="query"`` texts (off by default, see the module doc).
    """

    def __init__(self, inner: Embedder, cache: EmbeddingCache, *, cache_queries: bool = False):
        self.inner = inner
        self.cache = cache
        self.cache_queries = cache_queries
        self.stats = CacheStats()

    @property
    def name(self) -> str:
        """The wrapped embedder's id (the cache and the index are keyed by it)."""
        return self.inner.name

    @property
    def dimension(self) -> int:
        """The wrapped embedder's vector size."""
        return self.inner.dimension

    def embed(self, texts: Sequence[str], *, kind: EmbedKind = "document") -> Embeddings:
        """Embed ``texts``, reusing cached vectors; usage covers only what was embedded."""
        if kind == "query" and not self.cache_queries:
            return self.inner.embed(texts, kind=kind)
        dim = self.dimension
        keys = [text_key(t) for t in texts]
        cached = self.cache.get_many(self.name, keys, kind=kind, dim=dim)
        missing: dict[str, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in cached and key not in missing:
                missing[key] = text
        # misses = texts sent to the inner embedder; a duplicate within the batch is a hit.
        self.stats.misses += len(missing)
        self.stats.hits += len(texts) - len(missing)
        usage = Usage(model=self.name, kind="embedding")
        fresh: dict[str, np.ndarray] = {}
        cut: set[str] = set()
        window = None
        if missing:
            result = self.inner.embed(list(missing.values()), kind=kind)
            usage, window = result.usage, result.window
            fresh = dict(zip(missing, result.vectors, strict=True))
            missing_keys = list(missing)
            cut = {missing_keys[i] for i in result.truncated}
            self.cache.put_many(self.name, fresh, kind=kind)
        out = np.empty((len(texts), dim), dtype=np.float32)
        for row, key in enumerate(keys):
            out[row] = fresh[key] if key in fresh else cached[key]
        truncated = tuple(row for row, key in enumerate(keys) if key in cut)
        return Embeddings(out, usage, truncated=truncated, window=window)
