"""The Hit value and the fusion and scaling functions shared by retrieval and strategies."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ragft.rag.chunker import Chunk
from ragft.rag.hits import Hit, fuse_hits, minmax, rrf_scores


def chunk(cid: str, text: str = "Hotels are capped at $220. Meals are $75 per day.") -> Chunk:
    return Chunk(id=cid, document_id="doc.md", title="Doc", text=text, position=0, token_count=12)


def test_the_source_is_built_once_and_afresh_for_a_replaced_hit() -> None:
    hit = Hit(chunk("a"), 0.5, query="meal per diem")
    first = hit.source
    assert hit.source is first  # not rebuilt on every access
    assert "Meals are $75" in first.snippet
    rescored = dataclasses.replace(hit, score=0.9)
    assert rescored.source.score == 0.9 and hit.source.score == 0.5
    assert rescored == Hit(chunk("a"), 0.9)  # the cached source takes no part in equality


def test_rrf_scores_sum_reciprocal_ranks_from_one() -> None:
    scores = rrf_scores([["a", "b"], ["b", "c"]], rrf_k=60)
    assert scores == pytest.approx({"a": 1 / 61, "b": 1 / 62 + 1 / 61, "c": 1 / 62})
    assert list(scores) == ["a", "b", "c"]  # first-seen order, for stable tie-breaking


def test_fuse_hits_keeps_the_first_hit_per_chunk_and_cuts_to_k() -> None:
    a, b, c = Hit(chunk("a"), 1.0), Hit(chunk("b"), 0.8), Hit(chunk("c"), 0.7)
    b_again = Hit(chunk("b"), 0.1)
    fused = fuse_hits([[a, b], [b_again, c]], k=2)
    assert [h.chunk.id for h in fused] == ["b", "a"]
    assert fused[0].score == 0.8  # the first hit seen for the chunk, unchanged


def test_minmax_scales_to_unit_range_and_handles_ties() -> None:
    assert minmax(np.array([2.0, 4.0, 3.0])).tolist() == [0.0, 1.0, 0.5]
    assert minmax(np.array([0.3, 0.3])).tolist() == [1.0, 1.0]
    assert minmax(np.array([-0.2, -0.2])).tolist() == [0.0, 0.0]
