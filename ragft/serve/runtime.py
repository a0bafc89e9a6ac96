"""The strategies a server answers with, built over one loaded index version, and their
replacement when ``ragft index`` saves a newer version.

A :class:`Runtime` is immutable once built: every strategy in it shares one
:class:`~ragft.components.Components` (one index load, one set of models) and the server's
meter. :class:`RuntimeSlot` holds the current one. A reload builds a complete new runtime
aside — loading the index under its shared lock, so only a fully saved version is read — and
then swaps the reference in one assignment: a request uses the runtime it started with to the
end, and never sees a half-built one. A reload that fails (a corrupt save, an embedder
mismatch) leaves the previous runtime serving and is reported by ``/healthz``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ragft.components import Components
from ragft.config import RagftConfig
from ragft.errors import RagftError
from ragft.metering.meter import Meter
from ragft.rag.knowledge import KnowledgeBase
from ragft.strategies import BuildContext, Strategy, available_strategies

__all__ = ["Runtime", "RuntimeSlot", "build_runtime"]

log = logging.getLogger("ragft.serve")


@dataclass(frozen=True)
class Runtime:
    """Built strategies by name, the ones that could not be built (with why), and the id of
    the index version they were built over (``None``: no saved index when it was built)."""

    strategies: dict[str, Strategy]
    unavailable: dict[str, str]
    index_version: str | None
    built_at: float = field(default_factory=time.time)
    #: The parts the strategies share (models, clients, the loaded index).
    parts: Components | None = field(default=None, repr=False)

    def close(self) -> None:
        """Close the shared parts (SDK clients, model servers). Only once no request uses
        this runtime any more."""
        if self.parts is not None:
            self.parts.close()


def build_runtime(cfg: RagftConfig, meter: Meter, names: Sequence[str] = ()) -> Runtime:
    """Build every strategy in ``names`` (default: all registered) from ``cfg``.

    A saved index that cannot be loaded raises :class:`~ragft.errors.IndexStoreError`. A
    strategy that cannot be built — no trained model registered for ``finetuned``, an empty
    index for ``rag`` — is listed in :attr:`Runtime.unavailable` with the reason instead of
    stopping the others. The index version is noted *before* loading: if a save lands in
    between, the next check sees a newer id and reloads once more (never the reverse).
    """
    version = KnowledgeBase.saved_version(cfg.index_path)
    parts = Components(cfg, meter)
    if version is not None:
        # A saved index that cannot be loaded (corrupt, other embedder) fails the whole
        # build, so a reload keeps the previous runtime instead of serving without retrieval.
        parts.knowledge_base()
    context = BuildContext(cfg, meter, parts)
    built: dict[str, Strategy] = {}
    unavailable: dict[str, str] = {}
    for name in names or available_strategies():
        try:
            built[name] = context.build(name)
        except RagftError as exc:
            unavailable[name] = str(exc)
    return Runtime(built, unavailable, version, parts=parts)


class RuntimeSlot:
    """The runtime in service, and the reload that replaces it."""

    def __init__(self, cfg: RagftConfig, meter: Meter, names: Sequence[str] = ()):
        self.cfg = cfg
        self.meter = meter
        self.names = tuple(names)
        self._current: Runtime | None = None
        self._reload_lock = threading.Lock()
        #: Why the last reload failed (``None`` after a success).
        self.last_error: str | None = None
        #: The runtime the last successful reload replaced.
        self.retired: Runtime | None = None

    @property
    def loaded(self) -> bool:
        """Whether a runtime has been built."""
        return self._current is not None

    @property
    def current(self) -> Runtime:
        """The runtime requests use now."""
        if self._current is None:
            raise RuntimeError("the server's strategies are not built yet")
        return self._current

    def load(self) -> Runtime:
        """Build the first runtime (blocking) and log what is served."""
        runtime = build_runtime(self.cfg, self.meter, self.names)
        self._current = runtime
        for name, reason in sorted(runtime.unavailable.items()):
            log.warning("model %r is not served: %s", name, reason)
        log.info("serving models: %s", ", ".join(sorted(runtime.strategies)) or "(none)")
        return runtime

    def stale(self) -> bool:
        """Whether a different index version has been saved since the current one was built."""
        saved = KnowledgeBase.saved_version(self.cfg.index_path)
        return saved is not None and saved != self.current.index_version

    def reload_if_stale(self) -> bool | None:
        """Rebuild and swap in a new runtime if the saved index changed (blocking; run it off
        the event loop). ``True``: reloaded (the replaced runtime is in :attr:`retired`, for
        the caller to close once its requests are over); ``False``: it failed and the old one
        still serves; ``None``: nothing to do."""
        with self._reload_lock:
            if not self.stale():
                return None
            try:
                runtime = build_runtime(self.cfg, self.meter, self.names)
            except Exception as exc:  # noqa: BLE001 - any failure keeps the old runtime serving
                # Do not retry the same broken version on every tick: remember it as seen.
                self._current = dataclasses.replace(
                    self.current, index_version=KnowledgeBase.saved_version(self.cfg.index_path)
                )
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error("index reload failed, still serving the previous version: %s", self.last_error)
                return False
            self.retired = self._current
            self._current = runtime
            self.last_error = None
            log.info("index reloaded: serving %s", ", ".join(sorted(runtime.strategies)) or "(none)")
            return True
