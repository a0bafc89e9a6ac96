"""The knowledge base: incremental sync, per-document updates, persistence, costs."""

from __future__ import annotations

import pytest

from ragft.errors import DocumentError, IndexStoreError, MassRemovalError, ModelUnavailableError
from ragft.metering.meter import Meter
from ragft.models.local import HashingEmbedder
from ragft.rag.documents import Document
from ragft.rag.knowledge import KnowledgeBase


def open_kb(path, embedder, **kw) -> KnowledgeBase:
    return KnowledgeBase.open(path, embedder, chunk_tokens=60, chunk_overlap=10, **kw)


def test_first_sync_adds_everything_and_saves(tmp_path, corpus_dir, embedder) -> None:
    kb = open_kb(tmp_path / "kb", embedder)
    report = kb.sync(corpus_dir, progress=False)
    assert len(report.added) == 4 and not (report.changed or report.removed or report.unchanged)
    assert report.indexed_chunks == len(kb) == report.embedded_chunks > 4
    assert report.usage.embedding_tokens > 0
    assert (tmp_path / "kb" / "vectors" / "manifest.json").is_file()
    assert (tmp_path / "kb" / "embeddings.sqlite").is_file()
    assert report.summary().startswith("added 4, changed 0, removed 0, unchanged 0 documents")


def test_resync_of_an_unchanged_corpus_embeds_nothing(tmp_path, corpus_dir, embedder) -> None:
    meter = Meter()
    kb = open_kb(tmp_path / "kb", meter.embedder(embedder))
    kb.sync(corpus_dir, progress=False)
    calls = len(meter.records)
    reopened = open_kb(tmp_path / "kb", meter.embedder(embedder))
    report = reopened.sync(corpus_dir, progress=False)
    assert len(report.unchanged) == 4 and not report.modified
    assert report.embedded_chunks == 0 and report.usage.embedding_tokens == 0
    assert len(meter.records) == calls  # not a single metered embedding call


def test_sync_reports_added_changed_removed_and_embeds_only_new_text(
    tmp_path, corpus_dir, embedder
) -> None:
    kb = open_kb(tmp_path / "kb", embedder)
    kb.sync(corpus_dir, progress=False)
    travel = corpus_dir / "policies" / "travel.md"
    travel.write_text(travel.read_text().replace("$220", "$250"))
    (corpus_dir / "product" / "webhooks.md").unlink()
    (corpus_dir / "faq.jsonl").write_text('{"id": "q1", "text": "Badges are issued here."}\n')
    before = embedder.texts_embedded
    report = kb.sync(corpus_dir, progress=False)
    assert report.added == ("faq.jsonl#q1",)
    assert report.changed == ("policies/travel.md",)
    assert report.removed == ("product/webhooks.md",)
    assert set(report.unchanged) == {"org/glossary.txt", "policies/leave.md"}
    # Only the edited Hotels chunk and the new record are embedded; the travel document's
    # other chunks come from the cache.
    assert report.embedded_chunks == 2 == embedder.texts_embedded - before
    assert report.indexed_chunks == len(kb.index.chunks_of("policies/travel.md")) + 1
    assert "product/webhooks.md" not in kb.document_ids()
    hotel = kb.retriever(mode="bm25", top_k=1).retrieve("hotel night cap")[0]
    assert "$250" in hotel.chunk.text


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_deleted_documents_disappear_from_dense_and_bm25_results(
    tmp_path, corpus_dir, embedder, mode
) -> None:
    kb = open_kb(tmp_path / "kb", embedder)
    kb.sync(corpus_dir, progress=False)
    retriever = kb.retriever(mode=mode, top_k=10)
    hits = retriever.retrieve("webhooks retried")
    assert any(h.chunk.document_id == "product/webhooks.md" for h in hits)
    assert kb.delete_document("product/webhooks.md") is True
    assert kb.delete_document("product/webhooks.md") is False
    for k in (kb, open_kb(tmp_path / "kb", embedder)):  # in memory and after reloading
        hits = k.retriever(mode=mode, top_k=10).retrieve("webhooks retried")
        assert all(h.chunk.document_id != "product/webhooks.md" for h in hits)


def test_upsert_document_adds_replaces_and_skips_unchanged(tmp_path, corpus_dir, embedder) -> None:
    kb = open_kb(tmp_path / "kb", embedder)
    kb.sync(corpus_dir, progress=False)
    doc = Document.from_text("notes/new.md", "# Badges\n\nBadges are issued at reception.")
    assert kb.upsert_document(doc).added == ("notes/new.md",)
    assert kb.upsert_document(doc).unchanged == ("notes/new.md",)
    edited = Document.from_text("notes/new.md", "# Badges\n\nBadges are issued by security.")
    report = kb.upsert_document(edited)
    assert report.changed == ("notes/new.md",) and report.embedded_chunks == 1
    reloaded = open_kb(tmp_path / "kb", embedder)
    (chunk,) = reloaded.index.chunks_of("notes/new.md")
    assert "security" in chunk.text
    assert reloaded.bm25.search("security badges", 1)[0][0].id == chunk.id


def test_rebuild_starts_empty_but_reuses_cached_embeddings(tmp_path, corpus_dir, embedder) -> None:
    open_kb(tmp_path / "kb", embedder).sync(corpus_dir, progress=False)
    before = embedder.texts_embedded
    report = open_kb(tmp_path / "kb", embedder, rebuild=True).sync(corpus_dir, progress=False)
    assert len(report.added) == 4 and report.embedded_chunks == 0
    assert report.usage.embedding_tokens == 0 and embedder.texts_embedded == before


def test_changed_chunking_settings_rechunk_every_document(tmp_path, corpus_dir, embedder) -> None:
    open_kb(tmp_path / "kb", embedder).sync(corpus_dir, progress=False)
    kb = KnowledgeBase.open(tmp_path / "kb", embedder, chunk_tokens=30, chunk_overlap=5)
    report = kb.sync(corpus_dir, progress=False)
    assert len(report.changed) == 4
    assert all(c.token_count <= 30 for c in kb.index.chunks())
    again = KnowledgeBase.open(tmp_path / "kb", embedder, chunk_tokens=30, chunk_overlap=5)
    assert len(again.sync(corpus_dir, progress=False).unchanged) == 4


def test_an_index_from_another_embedder_is_refused(tmp_path, corpus_dir, embedder) -> None:
    open_kb(tmp_path / "kb", embedder).sync(corpus_dir, progress=False)
    with pytest.raises(IndexStoreError, match=r"ragft index --rebuild"):
        open_kb(tmp_path / "kb", HashingEmbedder(64))
    with pytest.raises(IndexStoreError, match="ragft index"):
        open_kb(tmp_path / "missing", embedder, create=False)


class FailingEmbedder(HashingEmbedder):
    """Fails on the call after ``ok_calls`` successful ones, like an API outage mid-sync."""

    def __init__(self, ok_calls: int):
        super().__init__(128)
        self.ok_calls = ok_calls

    def embed(self, texts, *, kind="document"):
        if self.ok_calls <= 0:
            raise ModelUnavailableError("503 from the embeddings endpoint")
        self.ok_calls -= 1
        return super().embed(texts, kind=kind)


def test_a_failed_embedding_call_leaves_the_index_unchanged(tmp_path, corpus_dir, embedder) -> None:
    kb = open_kb(tmp_path / "kb", embedder)
    kb.sync(corpus_dir, progress=False)
    (corpus_dir / "new.md").write_text("# New\n\nSomething entirely new.")
    failing = open_kb(tmp_path / "kb", FailingEmbedder(0))
    with pytest.raises(ModelUnavailableError):
        failing.sync(corpus_dir, progress=False)
    assert "new.md" not in failing.document_ids()
    assert len(open_kb(tmp_path / "kb", embedder).document_ids()) == 4


def test_stats_and_kind(tmp_path, corpus_dir, embedder) -> None:
    kb = open_kb(tmp_path / "kb", embedder, kind="hnsw")
    kb.sync(corpus_dir, progress=False)
    stats = kb.stats()
    assert stats["kind"] == "hnsw" and stats["documents"] == 4
    assert stats["chunking"] == {"max_tokens": 60, "overlap": 10, "model": "text-embedding-3-small"}
    assert stats["cached_embeddings"] == stats["chunks"]
    flat = open_kb(tmp_path / "kb", embedder, kind="flat")
    assert flat.index.kind == "flat" and len(flat) == len(kb)


# -- issue 9: losing or skipping data without saying so ------------------------------------------


def test_sync_refuses_to_remove_most_documents_unless_asked(tmp_path, corpus_dir, embedder) -> None:
    kb = open_kb(tmp_path / "kb", embedder)
    kb.sync(corpus_dir, progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MassRemovalError, match=r"all 4 indexed documents.*allow_removal") as err:
        kb.sync(empty, progress=False)
    assert "policies/travel.md" in str(err.value)
    for name in ("policies/travel.md", "policies/leave.md", "product/webhooks.md"):
        (corpus_dir / name).unlink()
    with pytest.raises(MassRemovalError, match="3 of the 4"):
        kb.sync(corpus_dir, progress=False)
    with pytest.raises(MassRemovalError):
        kb.sync_documents([], progress=False)
    # Nothing was removed, in memory or on disk.
    assert len(kb.document_ids()) == 4 == len(open_kb(tmp_path / "kb", embedder).document_ids())
    report = kb.sync(corpus_dir, progress=False, allow_removal=True)
    assert len(report.removed) == 3 and kb.document_ids() == ["org/glossary.txt"]


def test_removing_half_or_fewer_needs_no_flag(tmp_path, corpus_dir, embedder) -> None:
    kb = open_kb(tmp_path / "kb", embedder)
    kb.sync(corpus_dir, progress=False)
    (corpus_dir / "policies" / "travel.md").unlink()
    (corpus_dir / "policies" / "leave.md").unlink()
    assert len(kb.sync(corpus_dir, progress=False).removed) == 2


def test_an_unreadable_file_is_skipped_and_reported_and_its_indexed_version_kept(
    tmp_path, corpus_dir, embedder
) -> None:
    kb = open_kb(tmp_path / "kb", embedder)
    kb.sync(corpus_dir, progress=False)
    (corpus_dir / "policies" / "leave.md").write_bytes("# Leave\n\ncongé".encode("latin-1"))
    (corpus_dir / "new.md").write_text("# New\n\nA new document about badges.")
    report = kb.sync(corpus_dir, progress=False)
    assert report.added == ("new.md",)
    assert [s.path for s in report.skipped] == ["policies/leave.md"]
    assert report.problems and "UTF-8" in report.skipped[0].reason
    assert "policies/leave.md" in kb.document_ids()  # not dropped because it failed to read
    assert "skipped 1 file" in report.summary()
    with pytest.raises(DocumentError, match="leave.md"):
        kb.sync(corpus_dir, progress=False, strict=True)


def test_an_empty_corpus_is_an_error_not_added_0(tmp_path, embedder) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "page.html").write_text("<p>x</p>")
    kb = open_kb(tmp_path / "kb", embedder)
    with pytest.raises(DocumentError, match=r"no documents.*page\.html.*unsupported"):
        kb.sync(empty, progress=False)


def test_two_writers_do_not_lose_each_others_updates(tmp_path, corpus_dir, embedder) -> None:
    open_kb(tmp_path / "kb", embedder).sync(corpus_dir, progress=False)
    first = open_kb(tmp_path / "kb", embedder)
    second = open_kb(tmp_path / "kb", embedder)  # both loaded the same saved version
    first.upsert_document(Document.from_text("x.md", "# X\n\nbadges are blue"))
    second.upsert_document(Document.from_text("y.md", "# Y\n\nlaptops are grey"))
    assert {"x.md", "y.md"} <= set(open_kb(tmp_path / "kb", embedder).document_ids())
    (corpus_dir / "x.md").write_text("# X\n\nbadges are blue")
    (corpus_dir / "y.md").write_text("# Y\n\nlaptops are grey")
    first.sync(corpus_dir, progress=False)
    report = second.sync(corpus_dir, progress=False)  # sees the first one's work: no re-embedding
    assert not report.modified and report.embedded_chunks == 0


def test_a_second_writer_fails_fast_before_embedding_or_waits_with_a_message(
    tmp_path, corpus_dir, embedder, capsys
) -> None:
    import threading
    import time

    from ragft.errors import IndexBusyError

    holder = open_kb(tmp_path / "kb", embedder)
    waiter = open_kb(tmp_path / "kb", embedder)
    with holder.writing():
        with pytest.raises(IndexBusyError, match="another process is writing"):
            waiter.sync(corpus_dir, progress=False, wait=False)
        assert embedder.calls == []  # refused before any embedding call
        done: list[object] = []
        thread = threading.Thread(target=lambda: done.append(waiter.sync(corpus_dir)))
        thread.start()
        seen = ""
        while "waiting for another writer" not in seen and thread.is_alive():
            seen += capsys.readouterr().err
            time.sleep(0.01)
        assert "waiting for another writer" in seen and not done
    thread.join()
    assert len(done[0].added) == 4  # type: ignore[attr-defined]
