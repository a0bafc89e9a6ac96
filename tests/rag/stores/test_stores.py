"""The same retrieval, update, concurrency and crash tests on every store backend."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ragft.errors import IndexBusyError, ModelUnavailableError
from ragft.models.local import HashingEmbedder
from ragft.rag.chunker import Chunk
from ragft.rag.documents import Document


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_each_mode_finds_the_matching_section(open_kb, corpus_dir, embedder, mode) -> None:
    kb = open_kb(embedder)
    kb.sync(corpus_dir, progress=False)
    hits = kb.retriever(mode=mode, top_k=3).retrieve("meal per diem alcohol")
    assert hits[0].chunk.document_id == "policies/travel.md"
    assert "per diem" in hits[0].chunk.text
    assert hits[0].source.document == "policies/travel.md"


def test_dense_scores_are_cosines_and_a_document_filter_restricts(open_kb, corpus_dir,
                                                                  embedder) -> None:
    kb = open_kb(embedder)
    kb.sync(corpus_dir, progress=False)
    q = embedder.embed(["webhooks retried backoff"], kind="query").vectors
    (hits,) = kb.store.search_many(q, 3)
    top, score = hits[0]
    assert top.document_id == "product/webhooks.md"
    assert score == pytest.approx(float(kb.store.vectors([top.id])[0] @ q[0]), abs=1e-5)
    (only,) = kb.store.search_many(q, 3, document_ids=["policies/leave.md"])
    assert only and {c.document_id for c, _ in only} == {"policies/leave.md"}


def test_updates_removals_and_reopening(open_kb, corpus_dir, embedder) -> None:
    kb = open_kb(embedder)
    kb.sync(corpus_dir, progress=False)
    travel = corpus_dir / "policies" / "travel.md"
    travel.write_text(travel.read_text().replace("$220", "$250"))
    (corpus_dir / "product" / "webhooks.md").unlink()
    before = embedder.texts_embedded
    report = open_kb(embedder).sync(corpus_dir, progress=False)
    assert report.changed == ("policies/travel.md",)
    assert report.removed == ("product/webhooks.md",)
    assert report.embedded_chunks == 1 == embedder.texts_embedded - before  # the edited chunk
    reopened = open_kb(embedder)
    assert reopened.document_ids() == ["org/glossary.txt", "policies/leave.md",
                                       "policies/travel.md"]
    hotel = reopened.retriever(mode="dense", top_k=1).retrieve("hotel rooms capped night")[0]
    assert "$250" in hotel.chunk.text
    assert reopened.delete_document("policies/leave.md") is True
    assert reopened.delete_document("policies/leave.md") is False
    assert "policies/leave.md" not in open_kb(embedder).document_ids()
    assert len(open_kb(embedder).sync(corpus_dir, progress=False).added) == 1


class FailingEmbedder(HashingEmbedder):
    """Fails on the call after ``ok_calls`` successful ones, like an API outage mid-sync."""

    def __init__(self, ok_calls: int):
        super().__init__(128)
        self.ok_calls = ok_calls

    def embed(self, texts, *, kind="document"):  # type: ignore[no-untyped-def]
        if self.ok_calls <= 0:
            raise ModelUnavailableError("503 from the embeddings endpoint")
        self.ok_calls -= 1
        return super().embed(texts, kind=kind)


def test_a_failure_mid_sync_applies_nothing_and_a_rerun_completes(open_kb, corpus_dir,
                                                                  embedder) -> None:
    open_kb(embedder).sync(corpus_dir, progress=False)
    (corpus_dir / "new.md").write_text("# New\n\nSomething entirely new.")
    travel = corpus_dir / "policies" / "travel.md"
    travel.write_text(travel.read_text() + "\nTaxis need a receipt.\n")
    with pytest.raises(ModelUnavailableError):
        open_kb(FailingEmbedder(0)).sync(corpus_dir, progress=False)
    after_failure = open_kb(embedder)
    assert "new.md" not in after_failure.document_ids()
    assert all("Taxis" not in c.text for c in after_failure.store.chunks_of("policies/travel.md"))
    report = after_failure.sync(corpus_dir, progress=False)
    assert report.added == ("new.md",) and report.changed == ("policies/travel.md",)


def test_two_writers_serialise_without_lost_updates_or_double_embedding(open_kb, corpus_dir,
                                                                       embedder) -> None:
    open_kb(embedder).sync(corpus_dir, progress=False)
    first, second = open_kb(embedder), open_kb(embedder)
    first.upsert_document(Document.from_text("x.md", "# X\n\nbadges are blue"))
    second.upsert_document(Document.from_text("y.md", "# Y\n\nlaptops are grey"))
    assert {"x.md", "y.md"} <= set(open_kb(embedder).document_ids())
    (corpus_dir / "x.md").write_text("# X\n\nbadges are blue")
    (corpus_dir / "y.md").write_text("# Y\n\nlaptops are grey")
    first.sync(corpus_dir, progress=False)
    before = embedder.texts_embedded
    report = second.sync(corpus_dir, progress=False)
    assert not report.modified and embedder.texts_embedded == before
    # The second writer's lexical index sees the first one's document.
    assert second.retriever(mode="bm25", top_k=1).retrieve("badges blue")[0].chunk.document_id == "x.md"
    with first.writing():
        with pytest.raises(IndexBusyError, match="another process is writing"):
            second.sync(corpus_dir, progress=False, wait=False)


def test_a_reader_sees_a_document_before_or_after_its_replace_never_half(open_kb,
                                                                         embedder) -> None:
    kb = open_kb(embedder)
    versions = {
        "A": Document.from_text("doc.md", "\n\n".join(f"## A{i}\n\n" + "alpha " * 40 for i in range(4))),
        "B": Document.from_text("doc.md", "\n\n".join(f"## B{i}\n\n" + "beta " * 40 for i in range(2))),
    }
    kb.upsert_document(versions["A"])
    expected = {name: sorted(c.id for c in kb._chunk(doc)) for name, doc in versions.items()}
    reader = open_kb(embedder).store
    seen: list[list[str]] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.append(sorted(c.id for c in reader.chunks_of("doc.md")))

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for i in range(30):
            kb.upsert_document(versions["B" if i % 2 == 0 else "A"])
    finally:
        done.set()
        thread.join()
    assert seen and all(ids in (expected["A"], expected["B"]) for ids in seen)


def test_rebuild_starts_empty(open_kb, corpus_dir, embedder) -> None:
    open_kb(embedder).sync(corpus_dir, progress=False)
    rebuilt = open_kb(embedder, rebuild=True)
    (corpus_dir / "policies" / "leave.md").unlink()
    report = rebuilt.sync(corpus_dir, progress=False)
    assert len(report.added) == 3 and report.embedded_chunks == 0  # all from the cache
    assert open_kb(embedder).document_ids() == ["org/glossary.txt", "policies/travel.md",
                                                "product/webhooks.md"]


def test_replace_refuses_misaligned_vectors(open_kb, embedder) -> None:
    store = open_kb(embedder).store
    chunk = Chunk(id="d#0", document_id="d", title="d", text="t", position=0, token_count=1)
    with pytest.raises(ValueError, match="shape"):
        store.replace_document("d", "h", [chunk], np.zeros((2, 128), np.float32))


def test_a_new_retriever_sees_documents_another_writer_added(open_kb, backend, corpus_dir,
                                                            embedder) -> None:
    reader = open_kb(embedder)
    reader.sync(corpus_dir, progress=False)
    assert reader.retriever(mode="bm25").retrieve("badges blue") == []
    open_kb(embedder).upsert_document(Document.from_text("x.md", "# X\n\nbadges are blue"))
    if backend == "faiss":  # an in-process index adopts another writer's save when it writes
        with reader.writing():
            pass
    hits = reader.retriever(mode="hybrid", top_k=1).retrieve("badges blue")
    assert hits[0].chunk.document_id == "x.md"
