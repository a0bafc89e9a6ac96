"""Documents and loading them from a directory.

A :class:`Document` is the unit of update: the knowledge base diffs a corpus by document id and
content hash, so ids must be stable (the path relative to the loaded root, with forward
slashes) and the hash must depend only on the text.

Supported files:

Extensions match case-insensitively (``NOTE.TXT`` is a text file); UTF-8 is expected, UTF-16
with a byte-order mark is read too.

* ``*.md`` / ``*.txt`` — one document each; the title is the first Markdown heading, else the
  file name's stem.
* ``*.json`` — an object with a text field (one document, id = the path) or a list of such
  objects (one document per record, id = ``file.json#<record id>``).
* ``*.jsonl`` — one record per line, id = ``file.jsonl#<record id>``.

A record's text is its ``text``, ``content`` or ``body`` field; its id is ``id`` or ``_id``
(else its 1-based line/item number); its title is ``title`` (else the file stem). Its other
fields become the document's metadata.
"""

from __future__ import annotations

import codecs
import fnmatch
import hashlib
import json
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragft.errors import DocumentError

__all__ = [
    "DEFAULT_PATTERNS",
    "TEXT_FIELDS",
    "Document",
    "DocumentWarning",
    "LoadedCorpus",
    "SkippedFile",
    "content_hash",
    "load_corpus",
    "load_directory",
    "title_from_text",
]

#: File patterns :func:`load_directory` reads by default.
DEFAULT_PATTERNS: tuple[str, ...] = ("*.md", "*.txt", "*.json", "*.jsonl")
#: Record fields that may hold a JSON/JSONL record's text, in order of preference.
TEXT_FIELDS: tuple[str, ...] = ("text", "content", "body")
_ID_FIELDS = ("id", "_id")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


class DocumentWarning(UserWarning):
    """A file or record was skipped while loading with ``strict=False``."""


def content_hash(text: str) -> str:
    """SHA-256 hex digest of ``text`` (UTF-8): what decides whether a document changed."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def title_from_text(text: str, fallback: str) -> str:
    """The first Markdown heading of ``text``, else ``fallback``."""
    match = _HEADING.search(text)
    return match.group(1).strip() if match else fallback


@dataclass(frozen=True, slots=True)
class Document:
    """One source document.

    ``content_hash`` is computed from ``text`` when not given; pass it only when restoring a
    document whose hash is already known.
    """

    id: str
    title: str
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    content_hash: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            raise DocumentError("a document needs a non-empty id")
        if not self.content_hash:
            object.__setattr__(self, "content_hash", content_hash(self.text))

    @classmethod
    def from_text(
        cls,
        id: str,
        text: str,
        *,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Document:
        """A document whose title defaults to its first heading, else the id's stem."""
        stem = Path(id.split("#", 1)[0]).stem or id
        return cls(
            id=id,
            title=title if title else title_from_text(text, stem),
            text=text,
            metadata=dict(metadata or {}),
        )


@dataclass(frozen=True, slots=True)
class SkippedFile:
    """A file (or one record of it) that loading left out, and why.

    ``unreadable`` is true for a file ragft should have read but could not (binary, bad
    encoding, bad JSON): a problem to report with a non-zero exit. It is false for a file of a
    type ragft does not read (``.html``, ``.pdf``), which is listed but is no error.
    """

    path: str
    reason: str
    unreadable: bool = True


@dataclass(frozen=True, slots=True)
class LoadedCorpus:
    """What :func:`load_corpus` found: the documents, sorted by id, and what it skipped."""

    documents: list[Document]
    skipped: tuple[SkippedFile, ...] = ()


class _Problems:
    """Collects skipped files; in strict mode the first unreadable one raises instead."""

    def __init__(self, strict: bool):
        self.strict = strict
        self.skipped: list[SkippedFile] = []

    def report(self, rel: str, message: str) -> None:
        if self.strict:
            raise DocumentError(f"{rel}{message}")
        self.skipped.append(SkippedFile(rel, message.lstrip(": ")))


def _read_text(path: Path, rel: str, problems: _Problems) -> str | None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        problems.report(rel, f": cannot read file: {exc.strerror or exc}")
        return None
    # Windows tools write UTF-16 with a byte-order mark; it is text, not binary.
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            problems.report(rel, f": not valid UTF-16 (byte {exc.start}); re-save it as UTF-8")
            return None
    # NUL bytes never occur in UTF-8 text files; they are the cheapest reliable binary sign.
    if b"\x00" in data:
        problems.report(
            rel,
            ": looks like a binary file (or UTF-16 without a byte-order mark), not UTF-8 "
            "text; re-save it as UTF-8, or move it out of the corpus directory",
        )
        return None
    try:
        return data.decode("utf-8-sig")  # -sig: tolerate a BOM from Windows editors
    except UnicodeDecodeError as exc:
        problems.report(rel, f": not valid UTF-8 (byte {exc.start}); re-save the file as UTF-8")
        return None


def _record_document(
    record: Any, rel: str, where: str, default_id: str, stem: str, problems: _Problems
) -> Document | None:
    if not isinstance(record, Mapping):
        problems.report(rel, f" {where}: expected a JSON object, got {type(record).__name__}")
        return None
    text_field = next((f for f in TEXT_FIELDS if f in record), None)
    if text_field is None:
        problems.report(
            rel, f" {where}: record has no text field; add one of {', '.join(TEXT_FIELDS)}"
        )
        return None
    text = record[text_field]
    if not isinstance(text, str):
        problems.report(rel, f" {where}: field {text_field!r} must be a string")
        return None
    if not text.strip():
        return None
    rid = next((record[f] for f in _ID_FIELDS if record.get(f) not in (None, "")), default_id)
    title = record.get("title")
    title = title.strip() if isinstance(title, str) and title.strip() else ""
    skip = {text_field, "title", *_ID_FIELDS}
    metadata = {k: v for k, v in record.items() if k not in skip}
    metadata.update({"source": rel, "location": where})
    return Document(
        id=f"{rel}#{rid}",
        title=title or title_from_text(text, stem),
        text=text,
        metadata=metadata,
    )


def _json_documents(text: str, rel: str, stem: str, problems: _Problems) -> Iterator[Document]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        problems.report(rel, f" line {exc.lineno}: invalid JSON: {exc.msg}")
        return
    if isinstance(data, list):
        for number, record in enumerate(data, start=1):
            doc = _record_document(record, rel, f"item {number}", str(number), stem, problems)
            if doc is not None:
                yield doc
        return
    # A single object is one document whose id is the file itself (no "#record" suffix).
    doc = _record_document(data, rel, "top level", "", stem, problems)
    if doc is not None:
        yield Document(id=rel, title=doc.title, text=doc.text, metadata=doc.metadata)


def _jsonl_documents(text: str, rel: str, stem: str, problems: _Problems) -> Iterator[Document]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.report(rel, f" line {number}: invalid JSON: {exc.msg}")
            continue
        doc = _record_document(record, rel, f"line {number}", str(number), stem, problems)
        if doc is not None:
            yield doc


def _file_documents(path: Path, rel: str, problems: _Problems) -> Iterator[Document]:
    text = _read_text(path, rel, problems)
    if text is None or not text.strip():
        return  # empty files carry nothing to retrieve
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        yield from _jsonl_documents(text, rel, path.stem, problems)
    elif suffix == ".json":
        yield from _json_documents(text, rel, path.stem, problems)
    else:
        yield Document(
            id=rel,
            title=title_from_text(text, path.stem),
            text=text,
            metadata={"source": rel, "format": suffix.lstrip(".") or "txt"},
        )


def _matches(name: str, patterns: Sequence[str]) -> bool:
    # Case-insensitive everywhere: NOTE.TXT and UPPER.MD are text files on every OS.
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, p.lower()) for p in patterns)


def _candidate_files(root: Path, patterns: Sequence[str]) -> tuple[list[Path], list[Path]]:
    """Files under ``root`` that match ``patterns``, and those that do not (both sorted)."""
    matched: list[Path] = []
    other: list[Path] = []
    for path in sorted(root.rglob("*")):
        rel_parts = path.relative_to(root).parts
        # Hidden files and folders (.git, editor swap files) are never corpus content.
        if any(part.startswith(".") for part in rel_parts) or not path.is_file():
            continue
        (matched if _matches(path.name, patterns) else other).append(path)
    return matched, other


def load_corpus(
    root: str | Path,
    *,
    patterns: Iterable[str] = DEFAULT_PATTERNS,
    strict: bool = True,
) -> LoadedCorpus:
    """Every document under ``root`` (recursively) matching ``patterns`` (case-insensitive),
    sorted by id, and every file left out with the reason.

    Files that match no pattern are listed as unsupported (``unreadable=False``). With
    ``strict=True`` an unreadable, binary or non-UTF-8 file, or a bad JSON/JSONL record,
    raises :class:`~ragft.errors.DocumentError` naming the file (and line); with
    ``strict=False`` it is listed in :attr:`LoadedCorpus.skipped` instead. Empty files are
    skipped silently (they hold nothing to retrieve). Two documents with the same id (a
    repeated record id) raise in both modes, since one would silently replace the other.
    """
    base = Path(root)
    if not base.is_dir():
        raise DocumentError(f"corpus directory {base} does not exist or is not a directory")
    patterns = tuple(patterns)
    problems = _Problems(strict)
    matched, other = _candidate_files(base, patterns)
    documents: dict[str, Document] = {}
    for path in matched:
        rel = path.relative_to(base).as_posix()
        for doc in _file_documents(path, rel, problems):
            if doc.id in documents:
                raise DocumentError(
                    f"{rel}: duplicate document id {doc.id!r}; give each record a unique id"
                )
            documents[doc.id] = doc
    readable = ", ".join(p.lstrip("*") for p in patterns)
    unsupported = [
        SkippedFile(
            path.relative_to(base).as_posix(),
            f"unsupported file type {path.suffix.lower() or '(no extension)'!r}; ragft reads "
            f"{readable}",
            unreadable=False,
        )
        for path in other
    ]
    skipped = sorted([*problems.skipped, *unsupported], key=lambda s: s.path)
    return LoadedCorpus([documents[k] for k in sorted(documents)], tuple(skipped))


def load_directory(
    root: str | Path,
    *,
    patterns: Iterable[str] = DEFAULT_PATTERNS,
    strict: bool = True,
) -> list[Document]:
    """The documents of :func:`load_corpus`, sorted by id.

    With ``strict=False`` each unreadable file or record is skipped with a
    :class:`DocumentWarning`; files of unsupported types are left out silently.
    """
    loaded = load_corpus(root, patterns=patterns, strict=strict)
    for skip in loaded.skipped:
        if skip.unreadable:
            warnings.warn(f"{skip.path}: {skip.reason} (skipped)", DocumentWarning, stacklevel=2)
    return loaded.documents
