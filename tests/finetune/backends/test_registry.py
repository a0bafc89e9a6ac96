"""The backend registry: built-ins registered like any other, names and job ids routed."""

from __future__ import annotations

import pytest

from ragft.errors import FineTuneError
from ragft.finetune import backends
from ragft.finetune.backends import (
    BackendSpec,
    backend_for_job,
    backend_names,
    backend_spec,
    register_backend,
)
from ragft.finetune.backends.local import LOCAL_JOB_PREFIX, LocalFineTuneBackend


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    # Registrations made by a test must not outlive it.
    monkeypatch.setattr(backends, "_SPECS", dict(backends._SPECS))


def test_builtins_are_registered() -> None:
    assert backend_names() == ["local", "openai"]
    assert backend_spec("openai").priced and not backend_spec("openai").in_process
    assert backend_spec("local").in_process and not backend_spec("local").priced


def test_job_ids_route_by_longest_prefix() -> None:
    assert backend_for_job(f"{LOCAL_JOB_PREFIX}0123abcd").name == "local"
    assert backend_for_job("ftjob-abc123").name == "openai"
    with pytest.raises(FineTuneError, match="not a fine-tuning job id"):
        backend_for_job("file-abc123")
    with pytest.raises(FineTuneError, match="choose one of local, openai"):
        backend_spec("lora")


def test_a_new_backend_plugs_in_by_registering(isolated_registry, tmp_path, hashing) -> None:  # type: ignore[no-untyped-def]
    spec = BackendSpec(name="offline2", job_prefix="ftjob-offline2-", description="test",
                       build=lambda ctx: LocalFineTuneBackend(ctx.models_dir, ctx.embedder()))
    register_backend(spec)
    assert "offline2" in backend_names()
    assert backend_for_job("ftjob-offline2-42") is spec
    assert backend_for_job("ftjob-42").name == "openai"


def test_duplicate_names_and_prefixes_are_refused(isolated_registry) -> None:  # type: ignore[no-untyped-def]
    def never(ctx):  # type: ignore[no-untyped-def]
        raise AssertionError("not built")

    with pytest.raises(FineTuneError, match="already registered"):
        register_backend(BackendSpec(name="local", build=never, job_prefix="x-",
                                     description=""))
    with pytest.raises(FineTuneError, match="already taken by 'openai'"):
        register_backend(BackendSpec(name="other", build=never, job_prefix="ftjob-",
                                     description=""))
    assert backend_names() == ["local", "openai"]
