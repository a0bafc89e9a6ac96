"""The top-level API stays small, sorted and complete (as httpx checks its own)."""

import ragft


def test_all_is_sorted_and_complete() -> None:
    public = {name for name in vars(ragft) if not name.startswith("_")}
    subpackages = {"answer", "config", "errors", "strategies", "metering", "models", "rag",
                   "finetune", "eval", "components", "storage", "textutil", "metrics", "cli",
                   "prompts", "redact", "route", "defaults", "serialize", "tokens", "serve"}
    assert sorted(ragft.__all__) == ragft.__all__
    assert public - subpackages == set(ragft.__all__)


def test_every_export_has_a_docstring() -> None:
    for name in ragft.__all__:
        assert getattr(ragft, name).__doc__, name
