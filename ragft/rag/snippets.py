"""Snippets: the short excerpt of a chunk an answer's source shows, centred on the query."""

from __future__ import annotations

from ragft.textutil import content_words, split_sentences

__all__ = ["SNIPPET_CHARS", "make_snippet"]

#: Longest snippet a :class:`~ragft.answer.Source` carries.
SNIPPET_CHARS = 240


def _clip(text: str, max_chars: int, focus: int = 0) -> str:
    """``text`` cut to ``max_chars`` around character ``focus``, at word boundaries, with …."""
    if len(text) <= max_chars:
        return text
    budget = max_chars - 2  # room for an ellipsis on each side
    start = max(0, min(focus - budget // 3, len(text) - budget))
    end = start + budget
    if start > 0:
        space = text.find(" ", start, start + 30)
        start = space + 1 if space >= 0 else start
    if end < len(text):
        space = text.rfind(" ", end - 30, end)
        end = space if space > start else end
    piece = text[start:end].strip()
    return ("…" if start > 0 else "") + piece + ("…" if end < len(text) else "")


def make_snippet(text: str, query: str, max_chars: int = SNIPPET_CHARS) -> str:
    """A snippet of ``text`` of at most ``max_chars``, around the sentence matching ``query`` best.

    The best sentence shares the most query content words; neighbouring sentences are added
    while they fit. A sentence longer than the limit is cut around its first matching word.
    """
    flat = " ".join(text.split())
    sentences = [" ".join(s.split()) for s in split_sentences(text)] or [flat]
    terms = set(content_words(query))
    overlaps = [len(terms & set(content_words(s))) for s in sentences]
    best = max(range(len(sentences)), key=lambda i: (overlaps[i], -i))
    chosen = sentences[best]
    if len(chosen) > max_chars:
        lowered = chosen.lower()
        hits = [lowered.find(t) for t in terms if lowered.find(t) >= 0]
        return _clip(chosen, max_chars, min(hits) if hits else 0)
    lo, hi = best, best
    while True:  # grow forwards first: what follows a matching sentence usually completes it
        if hi + 1 < len(sentences) and len(chosen) + 1 + len(sentences[hi + 1]) <= max_chars:
            hi += 1
            chosen = f"{chosen} {sentences[hi]}"
        elif lo > 0 and len(chosen) + 1 + len(sentences[lo - 1]) <= max_chars:
            lo -= 1
            chosen = f"{sentences[lo]} {chosen}"
        else:
            return chosen
