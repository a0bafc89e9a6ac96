"""Text helpers: the Porter stemmer (PyStemmer) against the hand-written one it replaced."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ragft.textutil import analyze, porter_stem

#: Words the previous stemmer stemmed differently: it applied Porter's later 'logi' -> 'log'
#: revision, which Snowball's "porter" (the 1980 algorithm) does not.
REVISED = {"technology": "technologi"}


def test_porter_stem_matches_the_previous_stems_of_the_sample_corpus_vocabulary() -> None:
    rows = (Path(__file__).parent / "data" / "porter_reference.tsv").read_text().splitlines()
    reference = dict(line.split("\t") for line in rows if not line.startswith("#"))
    assert len(reference) > 2500
    differ = {w: porter_stem(w) for w, old in reference.items() if porter_stem(w) != old}
    assert differ == REVISED


def test_short_words_are_kept_and_analysis_is_unchanged() -> None:
    assert porter_stem("as") == "as" and porter_stem("us") == "us"
    assert analyze("The connections were connecting") == ["connect", "connect"]


def test_porter_stem_is_safe_across_threads() -> None:
    words = ["connections", "relational", "hopping", "ponies", "generalizations"] * 400
    expected = [porter_stem(w) for w in words]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(porter_stem, words))
    assert results == expected
