"""Loading documents: ids, titles, formats, and errors that name the file and line."""

from __future__ import annotations

import hashlib
import json

import pytest

from ragft.errors import DocumentError
from ragft.rag.documents import Document, DocumentWarning, load_corpus, load_directory


def test_markdown_and_text_files_get_relative_ids_titles_and_hashes(corpus_dir) -> None:
    docs = load_directory(corpus_dir)
    assert [d.id for d in docs] == [
        "org/glossary.txt",
        "policies/leave.md",
        "policies/travel.md",
        "product/webhooks.md",
    ]
    by_id = {d.id: d for d in docs}
    assert by_id["policies/travel.md"].title == "Travel Policy"  # first heading
    assert by_id["org/glossary.txt"].title == "glossary"  # no heading: file stem
    travel = by_id["policies/travel.md"]
    assert travel.content_hash == hashlib.sha256(travel.text.encode()).hexdigest()
    assert travel.metadata["format"] == "md"


def test_hidden_empty_and_unmatched_files_are_skipped(tmp_path, make_corpus) -> None:
    make_corpus(
        tmp_path,
        {
            "a.md": "# A\n\nalpha",
            "empty.md": "   \n",
            ".git/notes.md": "# hidden",
            ".draft.md": "# hidden too",
            "image.png": "not text",
        },
    )
    assert [d.id for d in load_directory(tmp_path)] == ["a.md"]


def test_jsonl_records_become_documents(tmp_path) -> None:
    lines = [
        {"id": "r1", "title": "First", "text": "one", "lang": "en"},
        {"content": "two"},  # no id: its line number; no title: the file stem
        {"_id": "x", "body": "three"},
    ]
    (tmp_path / "faq.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    docs = {d.id: d for d in load_directory(tmp_path)}
    assert sorted(docs) == ["faq.jsonl#2", "faq.jsonl#r1", "faq.jsonl#x"]
    assert docs["faq.jsonl#r1"].title == "First"
    assert docs["faq.jsonl#r1"].metadata["lang"] == "en"
    assert docs["faq.jsonl#2"].title == "faq"
    assert docs["faq.jsonl#x"].text == "three"


def test_json_object_and_list(tmp_path) -> None:
    (tmp_path / "one.json").write_text(json.dumps({"title": "Single", "text": "solo"}))
    (tmp_path / "many.json").write_text(json.dumps([{"id": 7, "text": "seven"}, {"text": "b"}]))
    ids = [d.id for d in load_directory(tmp_path)]
    assert ids == ["many.json#2", "many.json#7", "one.json"]


def test_bad_jsonl_line_names_file_and_line(tmp_path) -> None:
    (tmp_path / "data.jsonl").write_text('{"text": "ok"}\n{"text": broken}\n')
    with pytest.raises(DocumentError, match=r"data\.jsonl line 2"):
        load_directory(tmp_path)


def test_record_without_text_field_says_which_fields_work(tmp_path) -> None:
    (tmp_path / "data.jsonl").write_text('{"title": "no text"}\n')
    with pytest.raises(DocumentError, match=r"data\.jsonl line 1: .*text, content, body"):
        load_directory(tmp_path)


def test_lenient_mode_skips_bad_lines_with_a_warning(tmp_path) -> None:
    (tmp_path / "data.jsonl").write_text('{"text": "ok"}\nnot json\n{"text": "also ok"}\n')
    with pytest.warns(DocumentWarning, match="line 2"):
        docs = load_directory(tmp_path, strict=False)
    assert [d.text for d in docs] == ["ok", "also ok"]


def test_binary_and_non_utf8_files_raise_naming_the_file(tmp_path) -> None:
    (tmp_path / "blob.txt").write_bytes(b"\x89PNG\x00\x00binary")
    with pytest.raises(DocumentError, match=r"blob\.txt.*binary"):
        load_directory(tmp_path)
    (tmp_path / "blob.txt").unlink()
    (tmp_path / "latin1.md").write_bytes("café".encode("latin-1"))
    with pytest.raises(DocumentError, match=r"latin1\.md.*UTF-8"):
        load_directory(tmp_path)
    with pytest.warns(DocumentWarning, match="latin1.md"):
        assert load_directory(tmp_path, strict=False) == []


def test_duplicate_record_ids_are_refused(tmp_path) -> None:
    (tmp_path / "d.jsonl").write_text('{"id": 1, "text": "a"}\n{"id": 1, "text": "b"}\n')
    with pytest.raises(DocumentError, match="duplicate"):
        load_directory(tmp_path)


def test_missing_directory(tmp_path) -> None:
    with pytest.raises(DocumentError, match="does not exist"):
        load_directory(tmp_path / "nope")


def test_document_from_text_and_hash_changes_with_text() -> None:
    a = Document.from_text("notes/a.md", "# Heading\n\nbody")
    b = Document.from_text("notes/a.md", "# Heading\n\nbody changed")
    assert a.title == "Heading"
    assert a.content_hash != b.content_hash
    assert Document.from_text("x/plain.txt", "no heading").title == "plain"


# -- issue 9: nothing skipped without saying so -------------------------------------------------


def _bad_files(root) -> None:
    (root / "random.bin.txt").write_bytes(bytes(range(256)) * 4)
    (root / "latin1.md").write_bytes("# Café\n\ncrème brûlée".encode("latin-1"))
    (root / "elf.json").write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00\x00")


def test_lenient_loading_reports_every_skipped_file_with_its_reason(tmp_path) -> None:
    (tmp_path / "good.md").write_text("# Good\n\nkept")
    _bad_files(tmp_path)
    loaded = load_corpus(tmp_path, strict=False)
    assert [d.id for d in loaded.documents] == ["good.md"]
    reasons = {s.path: s.reason for s in loaded.skipped}
    assert set(reasons) == {"random.bin.txt", "latin1.md", "elf.json"}
    assert "binary" in reasons["elf.json"] and "UTF-8" in reasons["latin1.md"]
    assert all(s.unreadable for s in loaded.skipped)
    # The old hint pointed at "load patterns" that neither the CLI nor the config exposes.
    assert not any("pattern" in r for r in reasons.values())


def test_utf16_with_a_bom_is_read(tmp_path) -> None:
    (tmp_path / "wide.txt").write_bytes("# Wide\n\nUTF-16 text".encode("utf-16"))
    (tmp_path / "wide_be.md").write_bytes(b"\xfe\xff" + "big endian".encode("utf-16-be"))
    docs = {d.id: d.text for d in load_directory(tmp_path)}
    assert docs == {"wide.txt": "# Wide\n\nUTF-16 text", "wide_be.md": "big endian"}


def test_upper_case_extensions_are_read_and_unsupported_types_listed(tmp_path) -> None:
    (tmp_path / "NOTE.TXT").write_text("upper text")
    (tmp_path / "UPPER.MD").write_text("# Upper\n\nmarkdown")
    (tmp_path / "page.html").write_text("<p>html</p>")
    (tmp_path / "paper.pdf").write_bytes(b"%PDF-1.4")
    loaded = load_corpus(tmp_path)
    assert [d.id for d in loaded.documents] == ["NOTE.TXT", "UPPER.MD"]
    assert loaded.documents[1].metadata["format"] == "md"
    skipped = {s.path: s for s in loaded.skipped}
    assert set(skipped) == {"page.html", "paper.pdf"}
    assert "unsupported" in skipped["page.html"].reason and ".md" in skipped["page.html"].reason
    assert not any(s.unreadable for s in loaded.skipped)  # not an error: just not corpus
