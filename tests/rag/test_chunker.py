"""Chunking: token limits, structure, overlap, stable ids."""

from __future__ import annotations

import pytest

from ragft.errors import ConfigError
from ragft.tokens import count_tokens
from ragft.rag.chunker import chunk_document
from ragft.rag.documents import Document
from ragft.textutil import split_sentences

MODEL = "text-embedding-3-small"


def numbered_sentences(n: int, start: int = 0) -> str:
    return " ".join(
        f"Sentence number {i} talks about topic {i * 7 % 13} in some detail."
        for i in range(start, start + n)
    )


LONG_DOC = (
    "# Handbook\n\nIntro paragraph about the handbook.\n\n"
    "## Travel\n\n" + numbered_sentences(40) + "\n\n"
    "### Meals\n\nThe meal per diem is $75 per day.\n\n"
    "| Item | Limit |\n|---|---|\n" + "".join(f"| item {i} | ${i}.00 |\n" for i in range(80)) + "\n"
    "## Run-on\n\n" + "word " * 700 + "\n\n"
    "```\n# not a heading inside code\nprint('x')\n```\n"
)


@pytest.fixture
def long_doc() -> Document:
    return Document.from_text("handbook.md", LONG_DOC)


def test_every_chunk_fits_the_token_limit(long_doc) -> None:
    for max_tokens, overlap in [(64, 16), (120, 30), (300, 50), (50, 0)]:
        chunks = chunk_document(long_doc, max_tokens=max_tokens, overlap=overlap, model=MODEL)
        assert len(chunks) > 3
        for chunk in chunks:
            assert chunk.token_count == count_tokens(chunk.text, MODEL)
            assert chunk.token_count <= max_tokens
        assert [c.position for c in chunks] == list(range(len(chunks)))


def test_chunk_text_is_an_exact_slice_and_nothing_is_lost(long_doc) -> None:
    chunks = chunk_document(long_doc, max_tokens=80, overlap=20)
    for chunk in chunks:
        assert chunk.text in long_doc.text
    joined = "\n".join(c.text for c in chunks)
    for sentence in split_sentences(numbered_sentences(40)):
        assert sentence in joined


def test_headings_are_tracked_as_a_path_and_code_fences_are_not_headings(long_doc) -> None:
    chunks = chunk_document(long_doc, max_tokens=120, overlap=20)
    headings = {c.heading for c in chunks}
    assert "Handbook" in headings
    assert "Handbook > Travel" in headings
    assert "Handbook > Travel > Meals" in headings
    assert "Handbook > Run-on" in headings
    assert not any("not a heading" in h for h in headings)
    meals = next(c for c in chunks if "per diem" in c.text)
    assert meals.heading == "Handbook > Travel > Meals"
    # The heading path starts with the title, so the embedding text states it once.
    assert meals.embedding_text.startswith("Handbook > Travel > Meals\n")
    assert "#" not in meals.text  # heading lines live in `heading`, not in the text


def test_embedding_text_names_title_and_heading_when_they_differ() -> None:
    doc = Document("a.md", "Custom Title", "## Section\n\nBody text here.")
    (chunk,) = chunk_document(doc)
    assert chunk.heading == "Section"
    assert chunk.embedding_text == "Custom Title — Section\nBody text here."


def test_overlap_carries_trailing_sentences_into_the_next_chunk() -> None:
    doc = Document.from_text("s.md", numbered_sentences(30))
    chunks = chunk_document(doc, max_tokens=80, overlap=30)
    assert len(chunks) >= 4
    for prev, nxt in zip(chunks, chunks[1:]):
        last_sentence = split_sentences(prev.text)[-1]
        assert nxt.text.startswith(split_sentences(nxt.text)[0])
        assert last_sentence in nxt.text  # carried over
        shared = prev.text[prev.text.index(split_sentences(nxt.text)[0]) :]
        assert count_tokens(shared, MODEL) <= 30


def test_no_overlap_when_zero() -> None:
    doc = Document.from_text("s.md", numbered_sentences(30))
    chunks = chunk_document(doc, max_tokens=80, overlap=0)
    sentences = [s for c in chunks for s in split_sentences(c.text)]
    assert len(sentences) == len(set(sentences)) == 30


def test_small_paragraphs_are_packed_together() -> None:
    doc = Document.from_text("p.md", "\n\n".join(f"Paragraph {i} is short." for i in range(10)))
    (chunk,) = chunk_document(doc, max_tokens=300, overlap=50)
    assert chunk.text == doc.text


def test_ids_are_stable_and_change_only_with_the_text(long_doc) -> None:
    first = chunk_document(long_doc, max_tokens=120, overlap=20)
    again = chunk_document(Document.from_text("handbook.md", LONG_DOC), max_tokens=120, overlap=20)
    assert [c.id for c in first] == [c.id for c in again]
    assert len({c.id for c in first}) == len(first)

    edited = LONG_DOC.replace("per diem is $75 per day.", "per diem is $80 per day.")
    changed = chunk_document(Document.from_text("handbook.md", edited), max_tokens=120, overlap=20)
    old_ids, new_ids = {c.id for c in first}, {c.id for c in changed}
    assert old_ids != new_ids
    # Only the edited section's chunk changes; the rest keep their ids (and cached vectors).
    assert len(old_ids - new_ids) == 1
    other_doc = chunk_document(Document.from_text("copy.md", LONG_DOC), max_tokens=120, overlap=20)
    assert not old_ids & {c.id for c in other_doc}  # the document id is part of the id


def test_repeated_passages_get_distinct_ids() -> None:
    doc = Document.from_text("r.md", "# A\n\nTBD\n\n# B\n\nTBD\n")
    chunks = chunk_document(doc)
    assert [c.text for c in chunks] == ["TBD", "TBD"]
    assert chunks[0].id != chunks[1].id


def test_overlap_must_be_smaller_than_max_tokens(long_doc) -> None:
    with pytest.raises(ConfigError, match="overlap"):
        chunk_document(long_doc, max_tokens=50, overlap=50)
    with pytest.raises(ConfigError):
        chunk_document(long_doc, max_tokens=50, overlap=-1)


def test_chunk_round_trips_through_dict(long_doc) -> None:
    from ragft.rag.chunker import Chunk

    for chunk in chunk_document(long_doc, max_tokens=100, overlap=10):
        assert Chunk.from_dict(chunk.to_dict()) == chunk
