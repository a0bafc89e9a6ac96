"""The vector index: search, per-document updates, atomic persistence, refusing bad files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from ragft.errors import IndexStoreError
from ragft.rag import index as index_module
from ragft.rag.chunker import Chunk
from ragft.rag.index import VectorIndex

DIM = 16


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def make_chunks(doc: str, n: int) -> list[Chunk]:
    return [Chunk(f"{doc}-{i}", doc, doc.upper(), f"text {doc} {i}", i, 3) for i in range(n)]


def build(kind: str = "flat", docs: int = 5, per_doc: int = 4, **kw) -> tuple[VectorIndex, dict]:
    rng = np.random.default_rng(0)
    index = VectorIndex(DIM, embedder="test/emb", kind=kind, **kw)
    vectors = {}
    for d in range(docs):
        chunks = make_chunks(f"doc{d}", per_doc)
        vecs = unit(rng, per_doc)
        index.add(chunks, vecs, document_hashes={f"doc{d}": f"hash{d}"})
        vectors.update({c.id: v for c, v in zip(chunks, vecs)})
    return index, vectors


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_search_finds_the_nearest_chunk_with_cosine_scores(kind) -> None:
    index, vectors = build(kind)
    assert len(index) == 20 and index.kind == kind
    for cid, vec in list(vectors.items())[:5]:
        (chunk, score), *_ = index.search(vec, 3)
        assert chunk.id == cid
        assert score == pytest.approx(1.0, abs=1e-5)
    batch = index.search(np.stack(list(vectors.values())[:2]), 2, batch=True)
    assert [hits[0][0].id for hits in batch] == list(vectors)[:2]


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_remove_document_drops_its_chunks_from_results(kind) -> None:
    index, vectors = build(kind)
    assert index.remove_document("doc1") == 4
    assert "doc1" not in index.document_ids()
    assert index.document_hash("doc1") is None
    assert len(index) == 16
    for hits in index.search(np.stack(list(vectors.values())), 20, batch=True):
        assert all(c.document_id != "doc1" for c, _ in hits)
        assert len(hits) == 16
    if kind == "hnsw":
        assert index.tombstones == 4  # HNSW cannot delete: excluded at search time


def test_hnsw_rebuilds_on_save_when_tombstones_pile_up(tmp_path) -> None:
    index, _ = build("hnsw", rebuild_fraction=0.1)
    index.remove_document("doc0")
    index.remove_document("doc2")
    assert index.tombstones == 8
    index.save(tmp_path / "idx")
    assert index.tombstones == 0 and index.ntotal == 12
    loaded = VectorIndex.load(tmp_path / "idx")
    assert loaded.tombstones == 0 and len(loaded) == 12


def test_auto_kind_switches_to_hnsw_above_the_threshold() -> None:
    index, vectors = build("auto", docs=3, per_doc=10, auto_threshold=25)
    assert index.kind == "hnsw" and index.requested_kind == "auto"
    cid, vec = next(iter(vectors.items()))
    assert index.search(vec, 1)[0][0].id == cid


def test_readding_a_chunk_id_replaces_it() -> None:
    index, _ = build()
    rng = np.random.default_rng(5)
    new = make_chunks("doc0", 1)
    vec = unit(rng, 1)
    index.add(new, vec)
    assert len(index) == 20
    assert index.search(vec[0], 1)[0][0].id == "doc0-0"
    assert np.allclose(index.vectors(["doc0-0"])[0], vec[0])


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_save_and_load_round_trip(tmp_path, kind) -> None:
    index, vectors = build(kind)
    index.remove_document("doc3")
    index.set_document_hash("empty-doc", "h-empty")  # a document that produced no chunks
    index.meta["chunking"] = {"max_tokens": 300}
    index.save(tmp_path / "idx")
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["embedder"] == "test/emb" and manifest["dimension"] == DIM
    assert manifest["kind"] == kind and manifest["counts"]["chunks"] == 16
    assert set(manifest["files"]) == {"index.faiss", "chunks.jsonl", "documents.jsonl"}

    loaded = VectorIndex.load(tmp_path / "idx", expected_embedder="test/emb", expected_dim=DIM)
    assert loaded.kind == kind
    assert loaded.document_ids() == index.document_ids()
    assert loaded.document_hash("doc0") == "hash0"
    assert loaded.document_hash("empty-doc") == "h-empty"
    assert loaded.meta["chunking"] == {"max_tokens": 300}
    assert [c.id for c in loaded.chunks_of("doc2")] == [f"doc2-{i}" for i in range(4)]
    query = vectors["doc2-1"]
    assert [(c.id, round(s, 5)) for c, s in loaded.search(query, 5)] == [
        (c.id, round(s, 5)) for c, s in index.search(query, 5)
    ]
    # Updates after a load keep working (fresh FAISS ids do not collide).
    loaded.add(make_chunks("doc9", 2), unit(np.random.default_rng(9), 2))
    assert len(loaded) == 18


def _previous_index_still_loads(path: Path) -> None:
    loaded = VectorIndex.load(path)
    assert len(loaded) == 20
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no leftovers


def test_a_failure_while_writing_leaves_the_previous_index(tmp_path, monkeypatch) -> None:
    path = tmp_path / "idx"
    index, _ = build()
    index.save(path)
    index.remove_document("doc0")
    real_write = index_module._write_file
    written = []

    def failing_write(target, data):
        written.append(sorted(p.name for p in target.parent.iterdir()))
        if target.name == "chunks.jsonl":  # index.faiss is already written: a mid-save crash
            raise OSError(28, "No space left on device")
        return real_write(target, data)

    monkeypatch.setattr(index_module, "_write_file", failing_write)
    with pytest.raises(OSError, match="No space"):
        index.save(path)
    assert written == [["index.faiss"]]  # failed half-way through the new files
    monkeypatch.undo()
    _previous_index_still_loads(path)


def test_a_failure_during_the_swap_rolls_back(tmp_path, monkeypatch) -> None:
    path = tmp_path / "idx"
    index, _ = build()
    index.save(path)
    index.remove_document("doc0")
    real_rename = os.rename

    def failing_rename(src, dst):
        if Path(src).name.startswith(".idx.new-"):  # the new directory moving into place
            raise OSError(5, "I/O error")
        return real_rename(src, dst)

    monkeypatch.setattr(index_module.os, "rename", failing_rename)
    with pytest.raises(OSError, match="I/O error"):
        index.save(path)
    monkeypatch.undo()
    _previous_index_still_loads(path)


def test_a_crash_between_the_renames_is_recovered_on_load(tmp_path) -> None:
    path = tmp_path / "idx"
    index, _ = build()
    index.save(path)
    # What a power cut after "move the old index aside" and before "move the new one in"
    # leaves behind: the old index under its backup name and a half-written new directory.
    os.rename(path, tmp_path / ".idx.old-deadbeef")
    (tmp_path / ".idx.new-crashed").mkdir()
    assert VectorIndex.exists(path)
    assert len(VectorIndex.load(path)) == 20
    assert (path / "manifest.json").is_file()


def test_corrupt_files_raise_index_store_error_with_the_fix(tmp_path) -> None:
    path = tmp_path / "idx"
    build()[0].save(path)
    blob = bytearray((path / "index.faiss").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (path / "index.faiss").write_bytes(bytes(blob))
    with pytest.raises(IndexStoreError, match=r"corrupt.*ragft index --rebuild"):
        VectorIndex.load(path)

    build()[0].save(path)
    chunks = path / "chunks.jsonl"
    chunks.write_bytes(chunks.read_bytes()[:-40])
    with pytest.raises(IndexStoreError, match=r"truncated.*--rebuild"):
        VectorIndex.load(path)

    (path / "manifest.json").write_text("{not json")
    with pytest.raises(IndexStoreError, match="--rebuild"):
        VectorIndex.load(path)


def test_missing_and_mismatched_indexes_are_refused(tmp_path) -> None:
    with pytest.raises(IndexStoreError, match="ragft index"):
        VectorIndex.load(tmp_path / "nothing")
    path = tmp_path / "idx"
    build()[0].save(path)
    with pytest.raises(IndexStoreError, match=r"built with embedder 'test/emb'.*--rebuild"):
        VectorIndex.load(path, expected_embedder="text-embedding-3-small")
    with pytest.raises(IndexStoreError, match="16 dimensions"):
        VectorIndex.load(path, expected_embedder="test/emb", expected_dim=384)


def test_convert_between_kinds_keeps_the_live_vectors() -> None:
    index, vectors = build("hnsw")
    index.remove_document("doc4")
    index.convert("flat")
    assert index.kind == "flat" and index.tombstones == 0 and len(index) == 16
    cid = "doc1-2"
    assert index.search(vectors[cid], 1)[0][0].id == cid


def test_loads_during_saves_see_the_old_or_the_new_index_never_a_missing_one(tmp_path) -> None:
    # A save swaps directories with two renames; a reader (`ragft ask` while `ragft index`
    # updates a document) must not land between them, nor recover a "crash" that is a save in
    # progress, nor read the manifest of one version and the files of the next.
    import threading
    import time

    path = tmp_path / "idx"
    index, _ = build()
    index.save(path)
    errors: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        try:
            for n in range(150):
                index.meta["n"] = n
                index.save(path)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(f"save: {type(exc).__name__}: {exc}")
        finally:
            stop.set()

    def reader() -> None:
        while not stop.is_set():
            try:
                assert len(VectorIndex.load(path)) == 20
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(f"load: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(3)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, f"{len(errors)} failures in {time.monotonic() - start:.1f}s, e.g. {errors[:3]}"
