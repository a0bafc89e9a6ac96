"""BM25: the Okapi formula, per-document updates, analysis."""

from __future__ import annotations

import math

import pytest

from ragft.rag.bm25 import BM25Index, analyze, porter_stem
from ragft.rag.chunker import Chunk


def chunk(cid: str, doc: str, text: str) -> Chunk:
    # Empty title/heading: embedding_text == text, so the arithmetic below sees only `text`.
    return Chunk(cid, doc, "", text, 0, 0)


@pytest.fixture
def index() -> BM25Index:
    return BM25Index.from_chunks(
        [
            chunk("a", "d1", "apple banana apple"),
            chunk("b", "d1", "banana cherry"),
            chunk("c", "d2", "cherry durian elderberry fig"),
        ],
        analyzer=lambda t: t.split(),  # plain whitespace terms keep the hand arithmetic simple
    )


def test_scores_match_the_okapi_formula(index) -> None:
    k1, b = 1.2, 0.75
    n, avgdl = 3, (3 + 2 + 4) / 3  # document lengths 3, 2, 4

    def term(tf: float, df: int, dl: int) -> float:
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        return idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))

    # "apple" occurs twice in a (dl 3), df 1; "banana" once in a and once in b, df 2.
    expected_a = term(2, 1, 3) + term(1, 2, 3)
    expected_b = term(1, 2, 2)
    hits = index.search("apple banana", 5)
    assert [c.id for c, _ in hits] == ["a", "b"]  # c matches no term: not returned
    assert hits[0][1] == pytest.approx(expected_a, rel=1e-5)
    assert hits[1][1] == pytest.approx(expected_b, rel=1e-5)
    assert index.score_chunks("apple banana", ["b", "c", "zzz"]) == pytest.approx(
        [expected_b, 0.0, 0.0], rel=1e-5
    )


def test_remove_document_updates_results_and_statistics(index) -> None:
    assert index.remove_document("d1") == 2
    assert len(index) == 1 and "a" not in index
    assert index.search("apple banana", 5) == []
    # With d1 gone, "cherry" has df 1 in a one-document collection of avgdl 4.
    (hit, score), = index.search("cherry", 5)
    idf = math.log(1 + (1 - 1 + 0.5) / (1 + 0.5))
    assert hit.id == "c" and score == pytest.approx(idf * 2.2 / (1 + 1.2), rel=1e-5)


def test_readding_a_chunk_replaces_it(index) -> None:
    index.add([chunk("a", "d1", "kiwi")])
    assert len(index) == 3
    assert [c.id for c, _ in index.search("kiwi apple", 5)] == ["a"]
    assert index.search("apple", 5) == []


def test_compaction_keeps_results_identical() -> None:
    chunks = [chunk(f"c{i}", f"d{i % 50}", f"term{i % 7} common word{i}") for i in range(3000)]
    index = BM25Index.from_chunks(chunks)
    for d in range(0, 40):
        index.remove_document(f"d{d}")
    fresh = BM25Index.from_chunks([c for c in chunks if int(c.document_id[1:]) >= 40])
    assert len(index) == len(fresh) == 600
    assert index._dead < 1000  # compacted away
    got = [(c.id, round(s, 4)) for c, s in index.search("term3 common", 10)]
    assert got == [(c.id, round(s, 4)) for c, s in fresh.search("term3 common", 10)]


def test_analysis_stems_drops_stopwords_and_splits_hyphens() -> None:
    assert analyze("The connections were connecting") == ["connect", "connect"]
    assert analyze("anti-inflammatory drugs") == [
        "anti-inflammatory", "anti", "inflammatori", "drug",
    ]
    assert analyze("Lumen 4.5 lum-4031") == ["lumen", "4.5", "lum-4031", "lum", "4031"]
    assert [porter_stem(w) for w in ["caresses", "ponies", "relational", "hopping"]] == [
        "caress", "poni", "relat", "hop",
    ]


def test_chunks_are_indexed_with_title_and_heading() -> None:
    index = BM25Index.from_chunks([Chunk("x", "d", "Travel Policy", "limits", 0, 1, "Meals")])
    assert [c.id for c, _ in index.search("travel meals", 3)] == ["x"]
