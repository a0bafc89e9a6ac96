"""Okapi BM25 over chunks: an inverted index updatable per document, scored with numpy.

Analysis: :func:`ragft.textutil.content_words` (lower-case, accents stripped, stopwords
removed) then Porter stemming of alphabetic words; a hyphenated word (``anti-inflammatory``)
also contributes its parts, so either spelling matches. Chunks are indexed by their
:attr:`~ragft.rag.chunker.Chunk.embedding_text` (title and heading path included), as search
engines index title and body together.

Persistence: none of its own. Re-analysing the chunks when a knowledge base opens is cheap
(see ``benchmarks/index_scale.py``) and keeps one source of truth — the vector index's
``chunks.jsonl`` — so the two can never disagree after a crash.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from ragft.rag.chunker import Chunk
from ragft.textutil import analyze, porter_stem

__all__ = ["BM25Index", "analyze", "porter_stem"]

class BM25Index:
    """Okapi BM25 (``k1``, ``b``; idf ``log(1 + (N - df + 0.5) / (df + 0.5))``) over chunks.

    Chunks are added and removed per document; removed slots are masked at once and
    compacted away when they pass a third of the index. Thread-safe.
    """

    def __init__(
        self,
        *,
        k1: float = 1.2,
        b: float = 0.75,
        analyzer: Callable[[str], list[str]] = analyze,
    ):
        self.k1 = k1
        self.b = b
        self.analyzer = analyzer
        self._lock = threading.RLock()
        self._reset()

    def _reset(self) -> None:
        self._vocab: dict[str, int] = {}
        self._post_slots: list[array] = []  # term id -> slots (int32)
        self._post_tfs: list[array] = []  # term id -> term frequency per slot (float32)
        self._df = array("i")
        self._lengths = array("f")
        self._alive = bytearray()
        self._slot_terms: list[tuple[np.ndarray, np.ndarray] | None] = []
        self._slot_chunk: list[Chunk | None] = []
        self._slot_of: dict[str, int] = {}
        self._doc_slots: dict[str, list[int]] = {}
        self._live = 0
        self._total_len = 0.0
        self._dead = 0
        self._norm: np.ndarray | None = None  # k1 * (1 - b + b * dl / avgdl), per slot

    @classmethod
    def from_chunks(cls, chunks: Iterable[Chunk], **kwargs: object) -> BM25Index:
        """A new index holding ``chunks`` (keyword arguments as for the constructor)."""
        index = cls(**kwargs)  # type: ignore[arg-type]
        index.add(chunks)
        return index

    def __len__(self) -> int:
        return self._live

    def __contains__(self, chunk_id: object) -> bool:
        return chunk_id in self._slot_of

    # -- updating ----------------------------------------------------------------------
    def add(self, chunks: Iterable[Chunk]) -> None:
        """Index ``chunks`` (a chunk already present is replaced)."""
        with self._lock:
            for chunk in chunks:
                if chunk.id in self._slot_of:
                    self.remove_chunks([chunk.id])
                counts = Counter(self.analyzer(chunk.embedding_text))
                slot = len(self._slot_chunk)
                term_ids = np.empty(len(counts), dtype=np.int32)
                tfs = np.empty(len(counts), dtype=np.float32)
                for n, (term, tf) in enumerate(counts.items()):
                    tid = self._vocab.get(term)
                    if tid is None:
                        tid = self._vocab[term] = len(self._post_slots)
                        self._post_slots.append(array("i"))
                        self._post_tfs.append(array("f"))
                        self._df.append(0)
                    self._post_slots[tid].append(slot)
                    self._post_tfs[tid].append(tf)
                    self._df[tid] += 1
                    term_ids[n] = tid
                    tfs[n] = tf
                length = float(sum(counts.values()))
                self._slot_terms.append((term_ids, tfs))
                self._slot_chunk.append(chunk)
                self._lengths.append(length)
                self._alive.append(1)
                self._slot_of[chunk.id] = slot
                self._doc_slots.setdefault(chunk.document_id, []).append(slot)
                self._live += 1
                self._total_len += length
            self._norm = None

    def remove_chunks(self, chunk_ids: Iterable[str]) -> int:
        """Remove chunks by id (unknown ids ignored); returns how many were removed."""
        removed = 0
        with self._lock:
            for cid in chunk_ids:
                slot = self._slot_of.pop(cid, None)
                if slot is None:
                    continue
                chunk = self._slot_chunk[slot]
                assert chunk is not None
                slots = self._doc_slots.get(chunk.document_id, [])
                if slot in slots:
                    slots.remove(slot)
                if not slots:
                    self._doc_slots.pop(chunk.document_id, None)
                terms = self._slot_terms[slot]
                assert terms is not None
                for tid in terms[0].tolist():
                    self._df[tid] -= 1
                self._alive[slot] = 0
                self._live -= 1
                self._total_len -= self._lengths[slot]
                self._slot_chunk[slot] = None
                self._slot_terms[slot] = None
                self._dead += 1
                removed += 1
            if removed:
                self._norm = None
                if self._dead > 1000 and self._dead > len(self._slot_chunk) / 3:
                    self._compact()
        return removed

    def remove_document(self, document_id: str) -> int:
        """Remove every chunk of ``document_id``; returns how many were removed."""
        with self._lock:
            slots = list(self._doc_slots.get(document_id, []))
            ids = [c.id for s in slots if (c := self._slot_chunk[s]) is not None]
            return self.remove_chunks(ids)

    def _compact(self) -> None:
        """Drop dead slots by re-adding the live chunks (postings and vocabulary rebuilt)."""
        live = [c for c in self._slot_chunk if c is not None]
        self._reset()
        self.add(live)

    # -- scoring -----------------------------------------------------------------------
    def _norms(self) -> np.ndarray:
        if self._norm is None:
            lengths = (
                np.frombuffer(self._lengths, dtype=np.float32)
                if self._lengths
                else np.zeros(0, np.float32)
            )
            avgdl = self._total_len / self._live if self._live else 1.0
            self._norm = (self.k1 * (1.0 - self.b + self.b * lengths / max(avgdl, 1e-9))).astype(
                np.float32
            )
        return self._norm

    def _query_terms(self, query: str) -> list[tuple[int, float]]:
        counts = Counter(self.analyzer(query))
        n = self._live
        weighted = []
        for term, qtf in counts.items():
            tid = self._vocab.get(term)
            if tid is None or self._df[tid] <= 0:
                continue
            df = self._df[tid]
            idf = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
            weighted.append((tid, idf * qtf))
        return weighted

    def _scores(self, query: str) -> np.ndarray:
        scores = np.zeros(len(self._slot_chunk), dtype=np.float32)
        norms = self._norms()
        k1p1 = self.k1 + 1.0
        for tid, weight in self._query_terms(query):
            slots = np.frombuffer(self._post_slots[tid], dtype=np.int32)
            tf = np.frombuffer(self._post_tfs[tid], dtype=np.float32)
            scores[slots] += weight * tf * k1p1 / (tf + norms[slots])
        if self._dead:
            scores *= np.frombuffer(bytes(self._alive), dtype=np.uint8)
        return scores

    def search(self, query: str, k: int) -> list[tuple[Chunk, float]]:
        """The ``k`` best-scoring chunks for ``query`` (only those matching a term), best first."""
        return self.search_and_score(query, k, ())[0]

    def search_and_score(
        self, query: str, k: int, chunk_ids: Sequence[str]
    ) -> tuple[list[tuple[Chunk, float]], list[float]]:
        """:meth:`search` plus the scores of ``chunk_ids`` (as :meth:`score_chunks`), from one
        scoring pass: hybrid retrieval needs both."""
        with self._lock:
            if not self._live:
                return [], [0.0] * len(chunk_ids)
            scores = self._scores(query)
            extra = [
                float(scores[s]) if (s := self._slot_of.get(cid)) is not None else 0.0
                for cid in chunk_ids
            ]
            if k <= 0:
                return [], extra
            matched = np.flatnonzero(scores > 0)
            if len(matched) > k:
                top = matched[np.argpartition(-scores[matched], k - 1)[:k]]
            else:
                top = matched
            top = top[np.argsort(-scores[top], kind="stable")]
            found = [(self._slot_chunk[s], float(scores[s])) for s in top.tolist()]
            return [(c, s) for c, s in found if c is not None], extra

    def score_chunks(self, query: str, chunk_ids: Sequence[str]) -> list[float]:
        """BM25 scores of specific chunks for ``query`` (0.0 for unknown ids)."""
        with self._lock:
            if not self._live:
                return [0.0] * len(chunk_ids)
            scores = self._scores(query)
            return [
                float(scores[s]) if (s := self._slot_of.get(cid)) is not None else 0.0
                for cid in chunk_ids
            ]
