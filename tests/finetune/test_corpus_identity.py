"""The shared corpus-identity mechanism of the model registry: a registered version remembers
which corpus it was trained against, and using it against another index warns."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from ragft.finetune.registry import (
    CorpusIdentity,
    CorpusMismatchWarning,
    ModelRegistry,
    check_corpus,
)

DOCS = {"policies/travel.md": "a" * 64, "policies/expenses.md": "b" * 64}


def test_identity_depends_on_ids_and_content_not_order() -> None:
    one = CorpusIdentity.of(DOCS)
    assert one == CorpusIdentity.of(dict(reversed(list(DOCS.items()))))
    assert one.documents == 2
    assert one != CorpusIdentity.of({**DOCS, "policies/travel.md": "c" * 64})
    assert one != CorpusIdentity.of({**DOCS, "policies/new.md": "d" * 64})
    assert one.fingerprint != CorpusIdentity.of({}).fingerprint


def test_registered_version_keeps_its_corpus(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry.json")
    corpus = CorpusIdentity.of(DOCS)
    registry.register("router", model_id="m1", base_model="local", purpose="router", corpus=corpus)
    registry.register("router", model_id="m2", base_model="local", purpose="router")
    again = ModelRegistry(tmp_path / "registry.json")
    assert again.get("router", 1).corpus == corpus
    assert again.get("router", 2).corpus is None


def test_check_corpus_warns_on_another_index_only(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry.json")
    version = registry.register("router", model_id="m1", base_model="local", purpose="router",
                                corpus=CorpusIdentity.of(DOCS))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_corpus(version, CorpusIdentity.of(DOCS)) is True
        assert check_corpus(version, None) is True  # no index to compare with
    other = CorpusIdentity.of({"notes.md": "e" * 64})
    with pytest.warns(CorpusMismatchWarning, match=r"router@1 .*2 documents.*1 document"):
        assert check_corpus(version, other) is False
    unknown = registry.register("router", model_id="m2", base_model="local", purpose="router")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_corpus(unknown, other) is True  # trained before identities were recorded
