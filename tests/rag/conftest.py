"""Fixtures for the retrieval tests: small real corpora on disk and real (fast) embedders."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from ragft.models.base import Embeddings, EmbedKind
from ragft.models.local import HashingEmbedder

#: A tiny corpus: three Markdown policies and one text file, with distinct vocabularies.
CORPUS: dict[str, str] = {
    "policies/travel.md": (
        "# Travel Policy\n\nStaff travel must be booked through the travel desk.\n\n"
        "## Meals\n\nThe meal per diem is $75 per day. Alcohol is never reimbursed.\n\n"
        "## Hotels\n\nHotel rooms are capped at $220 per night in large cities.\n"
    ),
    "policies/leave.md": (
        "# Leave Policy\n\nEmployees receive 25 days of paid vacation each year.\n\n"
        "## Parental leave\n\nNew parents get 20 weeks of paid parental leave.\n"
    ),
    "product/webhooks.md": (
        "# Webhooks\n\nWebhooks deliver events to your HTTPS endpoint. Failed deliveries are "
        "retried with exponential backoff for up to 24 hours.\n"
    ),
    "org/glossary.txt": (
        "GLOSSARY\n\nCANARY - the first stage of a release rollout on 5% of workspaces.\n\n"
        "DRAIN - an appliance state that accepts no new runs.\n"
    ),
}


def write_corpus(root: Path, files: dict[str, str] | None = None) -> Path:
    """Write ``files`` (default :data:`CORPUS`) under ``root`` and return ``root``."""
    for rel, text in (CORPUS if files is None else files).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


class CountingEmbedder:
    """A real HashingEmbedder that also counts its calls and the texts it embedded."""

    def __init__(self, dimension: int = 128):
        self.inner = HashingEmbedder(dimension)
        self.calls: list[tuple[EmbedKind, int]] = []

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def embed(self, texts: Sequence[str], *, kind: EmbedKind = "document") -> Embeddings:
        self.calls.append((kind, len(texts)))
        return self.inner.embed(texts, kind=kind)

    @property
    def texts_embedded(self) -> int:
        return sum(n for _, n in self.calls)


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    """A directory holding :data:`CORPUS`."""
    return write_corpus(tmp_path / "corpus")


@pytest.fixture
def embedder() -> CountingEmbedder:
    """A fast, deterministic, lexical embedder that counts its calls."""
    return CountingEmbedder(128)


@pytest.fixture
def make_corpus():
    """The :func:`write_corpus` helper (fixtures, not imports, share helpers here)."""
    return write_corpus
