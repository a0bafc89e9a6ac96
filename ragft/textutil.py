"""Small pure text helpers shared by the lexical parts (BM25, the local reader, metrics):
word splitting, stopwords, sentence splitting and Porter stemming."""

from __future__ import annotations

import re
import threading
import unicodedata

import Stemmer

__all__ = ["STOPWORDS", "analyze", "content_words", "normalize", "porter_stem", "split_sentences", "words"]

_WORD = re.compile(r"[a-z0-9]+(?:[.'-][a-z0-9]+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n\s*\n|\n(?=\s*(?:[-*+]|\d+[.)]|#+)\s)")

#: Function words that carry no topic; small on purpose so "not", "no" and numbers survive.
STOPWORDS = frozenset(
    """a an and are as at be been but by can could did do does for from had has have how i if in
    into is it its me my of on or our should so than that the their them then there these they
    this to was we were what when where which who whom why will with would you your about also
    any up out over just may might must shall us""".split()
)


def normalize(text: str) -> str:
    """Lower-case, strip accents and collapse whitespace (for matching, not display)."""
    if text.isascii():  # nothing to decompose: skip the per-character pass (most text)
        return " ".join(text.lower().split())
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(text.lower().split())


def words(text: str) -> list[str]:
    """Lower-case word tokens; keeps numbers, versions (4.5), codes (lum-4031) and $ amounts' digits."""
    return _WORD.findall(normalize(text))


def content_words(text: str) -> list[str]:
    """:func:`words` without stopwords."""
    return [w for w in words(text) if w not in STOPWORDS]


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences; list items and blank-line paragraphs are their own units."""
    parts = _SENTENCE_END.split(text)
    return [p.strip() for p in parts if p and p.strip()]


# -- Porter stemming: Snowball's "porter" algorithm (M.F. Porter, 1980) through PyStemmer, the C
# implementation of the reference code, instead of a hand-written copy. Stemmer objects are not
# thread-safe, so each thread gets its own (readers and BM25 run on eval worker threads).
_stemmers = threading.local()


def porter_stem(word: str) -> str:
    """The Porter stem of a lower-case alphabetic ``word`` (``"connections"`` -> ``"connect"``).

    Words of one or two letters are kept as they are ("as", "us"), as before.
    """
    if len(word) <= 2:
        return word
    stemmer = getattr(_stemmers, "porter", None)
    if stemmer is None:
        stemmer = _stemmers.porter = Stemmer.Stemmer("porter")
    return str(stemmer.stemWord(word))


def analyze(text: str, *, stem: bool = True) -> list[str]:
    """BM25 terms of ``text``: content words, Porter-stemmed, hyphenated words also split."""
    terms: list[str] = []
    for word in content_words(text):
        if word.isalpha():
            terms.append(porter_stem(word) if stem else word)
            continue
        terms.append(word)
        if "-" in word:
            for part in word.split("-"):
                if part and part.isalpha():
                    terms.append(porter_stem(part) if stem else part)
                elif part:
                    terms.append(part)
    return terms
