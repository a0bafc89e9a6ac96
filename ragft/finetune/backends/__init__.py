"""Fine-tuning backends, one module each, and the registry that picks one by name.

* :mod:`.openai` — :class:`~ragft.finetune.backends.openai.OpenAIFineTuneBackend`, the
  official SDK (api.openai.com, Azure OpenAI, OpenAI-compatible servers);
* :mod:`.local` — :class:`~ragft.finetune.backends.local.LocalFineTuneBackend`, trains small
  models offline with the trainers of :mod:`ragft.finetune.trainers`.

A backend is selected by name (``ragft finetune start --backend NAME``) and found again from
a job id (``ragft finetune status ID``) through one :class:`BackendSpec` per backend. The
built-ins are registered below exactly as a new backend is: write the module, then call
:func:`register_backend` with its spec — the CLI's ``--backend`` choices, job-id routing,
price estimate and wiring all follow from it. Builders import their module lazily, so reading
the registry loads no SDK and no training code.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragft.errors import FineTuneError

if TYPE_CHECKING:
    from ragft.finetune.jobs import FineTuneBackend, JobEvent
    from ragft.metering.prices import PriceTable
    from ragft.models.base import Embedder

__all__ = [
    "BackendContext",
    "BackendSpec",
    "backend_for_job",
    "backend_names",
    "backend_spec",
    "register_backend",
]


@dataclass(frozen=True)
class BackendContext:
    """What a backend may be built from, supplied by the caller (the CLI builds it from the
    config). Factories are called only by the backends that need them, so building the local
    backend asks for no API key and building the OpenAI one loads no embedder."""

    models_dir: Path
    """Where trained artifacts (and local job state) live: ``<home>/models``."""
    embedder: Callable[[], Embedder]
    """The local embedder trainers embed with."""
    openai_client: Callable[[], Any]
    """An ``openai.OpenAI`` client (or a compatible one) from the configured key and URL."""
    prices: Callable[[], PriceTable]
    """The price table (retirement dates, training prices)."""
    on_event: Callable[[JobEvent], None] | None = None
    """Live progress from backends that train in this process."""


@dataclass(frozen=True)
class BackendSpec:
    """How one backend is named, built and recognised.

    ``job_prefix`` is how the backend's job ids start (the longest matching prefix wins, so
    ``ftjob-local-`` beats OpenAI's ``ftjob-``). ``priced``: training is billed per token, so
    the CLI prints the estimate before anything is uploaded. ``in_process``: jobs train in this
    process (``start`` follows them to the end and shows their progress as it happens).
    """

    name: str
    build: Callable[[BackendContext], FineTuneBackend]
    job_prefix: str
    description: str
    priced: bool = False
    in_process: bool = False


_lock = threading.Lock()
_SPECS: dict[str, BackendSpec] = {}


def register_backend(spec: BackendSpec) -> None:
    """Make ``spec`` selectable by its name; a name or job prefix already taken is refused."""
    with _lock:
        if spec.name in _SPECS:
            raise FineTuneError(f"a fine-tuning backend named {spec.name!r} is already registered")
        for other in _SPECS.values():
            if other.job_prefix == spec.job_prefix:
                raise FineTuneError(
                    f"backend {spec.name!r} uses job prefix {spec.job_prefix!r}, already taken "
                    f"by {other.name!r}; give its job ids their own prefix"
                )
        _SPECS[spec.name] = spec


def backend_names() -> list[str]:
    """Registered backend names, sorted (the CLI's ``--backend`` choices)."""
    return sorted(_SPECS)


def backend_spec(name: str) -> BackendSpec:
    """The spec registered as ``name``."""
    try:
        return _SPECS[name]
    except KeyError:
        raise FineTuneError(
            f"no fine-tuning backend {name!r}; choose one of {', '.join(backend_names())}"
        ) from None


def backend_for_job(job_id: str) -> BackendSpec:
    """The backend whose job ids ``job_id`` looks like (the longest matching prefix);
    anything else is not a job id — said before any backend is built or called."""
    matches = [s for s in _SPECS.values() if job_id.startswith(s.job_prefix)]
    if not matches:
        raise FineTuneError(
            f"{job_id!r} is not a fine-tuning job id (they look like ftjob-...); "
            "`ragft finetune list` shows the jobs started from this home"
        )
    return max(matches, key=lambda s: len(s.job_prefix))


# --------------------------------------------------------------------------- built-ins


def _build_openai(ctx: BackendContext) -> FineTuneBackend:
    from ragft.finetune.backends.openai import OpenAIFineTuneBackend

    return OpenAIFineTuneBackend(ctx.openai_client(), prices=ctx.prices())


def _build_local(ctx: BackendContext) -> FineTuneBackend:
    from ragft.finetune.backends.local import LocalFineTuneBackend

    return LocalFineTuneBackend(ctx.models_dir, ctx.embedder(), on_event=ctx.on_event)


register_backend(BackendSpec(
    name="openai", build=_build_openai, job_prefix="ftjob-",
    description="OpenAI's fine-tuning API (or a compatible server)", priced=True,
))
register_backend(BackendSpec(
    name="local", build=_build_local, job_prefix="ftjob-local-",
    description="small models trained offline on the local embedder", in_process=True,
))
