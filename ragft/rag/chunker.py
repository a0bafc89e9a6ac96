"""Token-aware chunking that follows a document's structure.

:func:`chunk_document` splits on Markdown headings first (a chunk never spans two sections,
and carries its section's heading path separately), then packs paragraphs greedily up to
``max_tokens``. Only a paragraph too long to fit is split into sentences, a sentence too long
into lines, and a line too long into token windows. Units are kept as character spans of the
original text, so a chunk's text is an exact slice of the document (tables, lists and code keep
their formatting).

Overlap carries the trailing units (sentences, usually) of one chunk into the next, up to
``overlap`` tokens, so a fact that straddles a boundary is whole in at least one chunk.

Chunk ids are ``sha256(document_id + "\\x00" + text)[:16]``: an unchanged passage keeps its
id, and the embedding cache (keyed by the text) never pays for it twice.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import tiktoken

from ragft.errors import ConfigError
from ragft.tokens import encoding_for_model
from ragft.rag.documents import Document
from ragft.serialize import from_record, to_record
from ragft.textutil import split_sentences

__all__ = ["DEFAULT_TOKEN_MODEL", "Chunk", "chunk_document", "chunk_id"]

#: Model whose tokenizer measures chunk sizes by default (cl100k_base).
DEFAULT_TOKEN_MODEL = "text-embedding-3-small"

_HEADING_LINE = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


@dataclass(frozen=True, slots=True)
class Chunk:
    """A retrievable passage of one document.

    ``text`` is an exact slice of the document; ``heading`` is the path of Markdown headings
    it sits under (``"Travel > Meals"``, empty when the document has none) and ``position`` its
    0-based order in the document.
    """

    id: str
    document_id: str
    title: str
    text: str
    position: int
    token_count: int
    heading: str = ""

    @property
    def embedding_text(self) -> str:
        """What gets embedded: the title and heading path, then the text.

        The context line lets a chunk about "Limits" under "Travel > Meals" match a question
        about meal limits on travel although its own text never names travel.
        """
        if self.heading:
            # The heading path usually starts with the title (the document's H1): say it once.
            context = (
                self.heading
                if self.heading == self.title or self.heading.startswith(self.title + " > ")
                else f"{self.title} — {self.heading}"
            )
        else:
            context = self.title
        return f"{context}\n{self.text}" if context else self.text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the index's on-disk record)."""
        return to_record(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Chunk:
        """Inverse of :meth:`to_dict` (title, position and token count optional)."""
        return from_record(cls, {"title": "", "position": 0, "token_count": 0, **data})


def chunk_id(document_id: str, text: str, occurrence: int = 0) -> str:
    """The stable id of a chunk: a function of its document and its exact text.

    ``occurrence`` > 0 distinguishes repeated identical passages within one document.
    """
    key = f"{document_id}\x00{text}"
    if occurrence:
        key += f"\x00{occurrence}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class _Section:
    heading: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class _Unit:
    start: int
    end: int
    tokens: int
    #: Offsets where sentences begin inside the unit (the first is ``start``): where an
    #: overlap may begin.
    starts: tuple[int, ...] = ()


def _sections(text: str) -> list[_Section]:
    """Split at Markdown headings (not inside code fences), tracking the heading path."""
    sections: list[_Section] = []
    stack: list[tuple[int, str]] = []
    body_start = 0
    heading = ""
    in_fence = False
    offset = 0
    for line in text.splitlines(keepends=True):
        stripped = line.rstrip("\r\n")
        if _FENCE.match(stripped):
            in_fence = not in_fence
        match = None if in_fence else _HEADING_LINE.match(stripped)
        if match:
            sections.append(_Section(heading, body_start, offset))
            level = len(match.group(1))
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, match.group(2).strip()))
            heading = " > ".join(name for _, name in stack)
            body_start = offset + len(line)
        offset += len(line)
    sections.append(_Section(heading, body_start, len(text)))
    return [s for s in sections if text[s.start : s.end].strip()]


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _locate(text: str, parts: list[str], start: int, end: int) -> list[tuple[int, int]]:
    """Character spans of ``parts`` (stripped substrings, in order) within text[start:end]."""
    spans: list[tuple[int, int]] = []
    cursor = start
    for part in parts:
        at = text.find(part, cursor, end)
        if at < 0:  # cannot happen for substrings, but never lose text if it does
            return [(start, end)]
        spans.append((at, at + len(part)))
        cursor = at + len(part)
    return spans


class _Splitter:
    """Turns a section into units no larger than the limit, coarsest structure first."""

    def __init__(self, text: str, enc: tiktoken.Encoding, max_tokens: int, window: int):
        self.text = text
        self.enc = enc
        self.max_tokens = max_tokens
        self.window = window

    def count(self, start: int, end: int) -> int:
        return len(self.enc.encode(self.text[start:end], disallowed_special=()))

    def paragraphs(self, start: int, end: int) -> list[_Unit]:
        units: list[_Unit] = []
        cursor = start
        for match in [*_PARAGRAPH_BREAK.finditer(self.text, start, end), None]:
            stop = match.start() if match else end
            s, e = _trimmed(self.text, cursor, stop)
            if e > s:
                units.extend(self._fit(s, e, level=0))
            if match:
                cursor = match.end()
        return units

    def _fit(self, start: int, end: int, level: int) -> list[_Unit]:
        tokens = self.count(start, end)
        if tokens <= self.max_tokens:
            starts: tuple[int, ...] = (start,)
            if level == 0:
                parts = split_sentences(self.text[start:end])
                if len(parts) > 1:
                    starts = tuple(s for s, _ in _locate(self.text, parts, start, end))
            return [_Unit(start, end, tokens, starts)]
        if level == 0:  # paragraph -> sentences
            spans = _locate(self.text, split_sentences(self.text[start:end]), start, end)
        elif level == 1:  # sentence -> lines (tables, hard-wrapped lists)
            lines = [ln.strip() for ln in self.text[start:end].split("\n") if ln.strip()]
            spans = _locate(self.text, lines, start, end)
        else:
            return self._windows(start, end)
        if len(spans) <= 1:
            return self._fit(start, end, level + 1)
        units: list[_Unit] = []
        for s, e in spans:
            units.extend(self._fit(s, e, level + 1))
        return units

    def _windows(self, start: int, end: int) -> list[_Unit]:
        """Last resort: fixed token windows, cut at token boundaries of the original text."""
        piece = self.text[start:end]
        tokens = self.enc.encode(piece, disallowed_special=())
        decoded, offsets = self.enc.decode_with_offsets(tokens)
        if decoded != piece:  # tokens split a multi-byte character oddly; fall back to chars
            step = max(1, len(piece) * self.window // max(1, len(tokens)))
            bounds = list(range(0, len(piece), step)) + [len(piece)]
        else:
            bounds = offsets[:: self.window] + [len(piece)]
        units: list[_Unit] = []
        for a, b in zip(bounds, bounds[1:], strict=False):
            if b > a:
                s, e = _trimmed(self.text, start + a, start + b)
                if e > s:
                    units.append(_Unit(s, e, self.count(s, e), (s,)))
        return units


def _carry(
    splitter: _Splitter, units: list[_Unit], first: int, last: int, chunk_start: int, overlap: int
) -> list[int]:
    """Sentence starts inside the chunk whose tail from there holds <= ``overlap`` tokens,
    earliest (longest overlap) first."""
    end = units[last].end
    found: list[int] = []
    for k in range(last, first - 1, -1):
        for s in reversed(units[k].starts):
            if s <= chunk_start:
                return found
            if splitter.count(s, end) > overlap:
                return found
            found.insert(0, s)
    return found


def _pack(
    splitter: _Splitter, units: list[_Unit], max_tokens: int, overlap: int
) -> list[tuple[int, int, int]]:
    """Greedily pack consecutive units into (start, end, tokens) spans of <= max_tokens."""
    spans: list[tuple[int, int, int]] = []
    n = len(units)
    i = 0
    carry: list[int] = []
    while i < n:
        # Begin at the earliest carried sentence that still leaves room for unit i.
        start = units[i].start
        tokens = units[i].tokens
        for s in carry:
            count = splitter.count(s, units[i].end)
            if count <= max_tokens:
                start, tokens = s, count
                break
        j = i
        # Extend while the exact count of the joined slice fits (BPE merges across unit
        # boundaries, so the sum of unit counts is only an estimate).
        while j + 1 < n:
            count = splitter.count(start, units[j + 1].end)
            if count > max_tokens:
                break
            j += 1
            tokens = count
        spans.append((start, units[j].end, tokens))
        carry = _carry(splitter, units, i, j, start, overlap) if overlap > 0 else []
        i = j + 1
    return spans


def chunk_document(
    doc: Document,
    *,
    max_tokens: int = 300,
    overlap: int = 50,
    model: str = DEFAULT_TOKEN_MODEL,
) -> list[Chunk]:
    """Split ``doc`` into chunks of at most ``max_tokens`` tokens (``model``'s tokenizer).

    Pure: the same document and settings always give the same chunks and ids. Raises
    :class:`~ragft.errors.ConfigError` unless ``0 <= overlap < max_tokens``.
    """
    if max_tokens < 1:
        raise ConfigError(f"max_tokens must be >= 1, got {max_tokens}")
    if overlap < 0 or overlap >= max_tokens:
        raise ConfigError(
            f"chunk overlap ({overlap}) must be >= 0 and smaller than max_tokens ({max_tokens}); "
            "lower [index] chunk_overlap or raise chunk_tokens"
        )
    enc = encoding_for_model(model)
    # Token windows are cut to the overlap size so that packing can carry whole windows.
    window = overlap if overlap > 0 else max_tokens
    window = max(1, min(window, max_tokens // 2 or 1))
    text = doc.text
    splitter = _Splitter(text, enc, max_tokens, window)
    chunks: list[Chunk] = []
    seen: dict[str, int] = {}
    for section in _sections(text):
        units = splitter.paragraphs(section.start, section.end)
        for start, end, tokens in _pack(splitter, units, max_tokens, overlap):
            body = text[start:end]
            occurrence = seen.get(body, 0)
            seen[body] = occurrence + 1
            chunks.append(
                Chunk(
                    id=chunk_id(doc.id, body, occurrence),
                    document_id=doc.id,
                    title=doc.title,
                    text=body,
                    position=len(chunks),
                    token_count=tokens,
                    heading=section.heading,
                )
            )
    return chunks
