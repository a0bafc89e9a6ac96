"""From model ids to live models: one registry of builders per id prefix, for chat and embedding
models. (Not to be confused with :mod:`ragft.finetune.registry`, which records the *versions*
of trained models that ``registry:NAME`` resolves to.)

A config names models by id (``gpt-4.1-mini``, ``local/extractive-reader``,
``local-ft:generator:support:ftjob-local-…``). :func:`build_chat_model` and
:func:`build_embedding_model` find the builder registered for the **longest prefix** of the id
and call it with the id and the run's :class:`ModelEnvironment`. The built-in backends are
registered below exactly the way a new one is; the empty prefix ``""`` catches every other id
and sends it to the OpenAI API (or the configured OpenAI-compatible server).

How to register a model
-----------------------
Write a builder ``(model_id, env) -> ChatModel`` (or ``-> Embedder``) and register it under the
prefix of the ids it serves; registering a prefix twice is refused unless ``replace=True``::

    from ragft.models.openai import OpenAIChatModel
    from ragft.models.registry import ModelEnvironment, register_chat_model

    def build_lora(model_id: str, env: ModelEnvironment) -> ChatModel:
        # e.g. "lora:support-v2": base GGUF + adapter stored under env.models_dir
        server = LlamaCppServer(base_gguf, lora=env.models_dir / "support-v2.gguf").start()
        client = env.openai_client(model=model_id, base_url=server.base_url)
        # a ChatModel of yours that delegates to the OpenAI model and whose close() stops
        # the server
        return ServedModel(OpenAIChatModel(server.model, client=client), server)

    register_chat_model("lora:", build_lora)

The environment gives a builder everything it may need and nothing it should read itself: the
directory of trained artifacts, an OpenAI SDK client factory (the configured backend, or any
OpenAI-compatible server by ``base_url``, with the configured timeouts and retries) and the
local embedder (metered and cached, or the one a model was trained with, by name).
:class:`~ragft.components.Components` builds the environment once per run, builds each model
once, meters every call, and on :meth:`~ragft.components.Components.close` closes every built
model that has a ``close()`` (:class:`~ragft.models.base.SupportsClose`) — so a builder that
starts a server returns a model whose ``close()`` stops it.

Builders import their backend lazily (inside the function), so the OpenAI SDK, onnxruntime or a
llama.cpp binding is only loaded when a config uses it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from ragft.config import LOCAL_CHAT, LOCAL_EMBEDDING
from ragft.errors import ConfigError
from ragft.models.base import ChatModel, Embedder
from ragft.models.local_ft import LOCAL_FT_PREFIX

if TYPE_CHECKING:
    import openai

__all__ = [
    "HASHING_PREFIX",
    "ChatModelBuilder",
    "ClientFactory",
    "EmbedderBuilder",
    "EmbedderLookup",
    "ModelEnvironment",
    "build_chat_model",
    "build_embedding_model",
    "chat_model_prefixes",
    "embedding_model_prefixes",
    "register_chat_model",
    "register_embedder",
]

#: ``local/hashing-<dim>`` selects the instant lexical :class:`~ragft.models.local.HashingEmbedder`.
HASHING_PREFIX = "local/hashing-"


class ClientFactory(Protocol):
    """Makes (or reuses) an OpenAI SDK client: for the configured backend when ``base_url`` is
    ``None``, else for the OpenAI-compatible server at ``base_url`` (e.g. a local llama.cpp
    server a builder started). ``model`` is named in the error when no credentials are set."""

    def __call__(self, *, model: str, base_url: str | None = None) -> openai.OpenAI:
        """The client for ``model``."""
        ...


class EmbedderLookup(Protocol):
    """The local embedder local models run on: the run's shared one (``name=None``), or the
    local embedder called ``name`` (the one a trained model's manifest names)."""

    def __call__(self, name: str | None = None) -> Embedder:
        """The embedder."""
        ...


@dataclass(frozen=True, slots=True)
class ModelEnvironment:
    """What every model builder receives; built once per run by ``components.py``."""

    #: Where trained artifacts live (``<home>/models``): local fine-tunes, adapters.
    models_dir: Path
    #: OpenAI SDK clients with the configured key, timeouts and retries.
    openai_client: ClientFactory
    #: The offline embedder local models use (metered and cached when built by Components).
    local_embedder: EmbedderLookup
    #: Requests one call may have in flight at once (``[backend] concurrency``): the OpenAI
    #: embedder's concurrent batches.
    concurrency: int = 4


ChatModelBuilder = Callable[[str, ModelEnvironment], ChatModel]
EmbedderBuilder = Callable[[str, ModelEnvironment], Embedder]
_M = TypeVar("_M")


class _PrefixRegistry(Generic[_M]):
    """Builders by id prefix; the longest matching prefix wins; duplicates are refused."""

    def __init__(self, what: str):
        self._what = what
        self._lock = threading.Lock()
        self._builders: dict[str, Callable[[str, ModelEnvironment], _M]] = {}

    def register(self, prefix: str, builder: Callable[[str, ModelEnvironment], _M], replace: bool) -> None:
        with self._lock:
            if prefix in self._builders and not replace:
                raise ValueError(f"a {self._what} builder is already registered for prefix "
                                 f"{prefix!r}; pass replace=True to override it")
            self._builders[prefix] = builder

    def build(self, model_id: str, env: ModelEnvironment) -> _M:
        with self._lock:
            matches = [p for p in self._builders if model_id.startswith(p)]
            if not matches:
                raise ConfigError(f"no {self._what} builder matches {model_id!r}; registered "
                                  f"prefixes: {sorted(self._builders)}")
            builder = self._builders[max(matches, key=len)]
        return builder(model_id, env)

    def prefixes(self) -> list[str]:
        with self._lock:
            return sorted(self._builders)


_chat_models: _PrefixRegistry[ChatModel] = _PrefixRegistry("chat model")
_embedders: _PrefixRegistry[Embedder] = _PrefixRegistry("embedding model")


def register_chat_model(prefix: str, builder: ChatModelBuilder, *, replace: bool = False) -> None:
    """Build chat model ids starting with ``prefix`` with ``builder``. A prefix registered
    already is refused unless ``replace``."""
    _chat_models.register(prefix, builder, replace)


def register_embedder(prefix: str, builder: EmbedderBuilder, *, replace: bool = False) -> None:
    """Build embedding model ids starting with ``prefix`` with ``builder``. A prefix registered
    already is refused unless ``replace``."""
    _embedders.register(prefix, builder, replace)


def build_chat_model(model_id: str, env: ModelEnvironment) -> ChatModel:
    """The chat model ``model_id`` names, from the builder of its longest registered prefix
    (not metered: :class:`~ragft.components.Components` and the strategies meter it)."""
    return _chat_models.build(model_id, env)


def build_embedding_model(model_id: str, env: ModelEnvironment) -> Embedder:
    """The embedder ``model_id`` names, from the builder of its longest registered prefix
    (not metered, not cached)."""
    return _embedders.build(model_id, env)


def chat_model_prefixes() -> list[str]:
    """Registered chat model prefixes, sorted (``""`` is the catch-all)."""
    return _chat_models.prefixes()


def embedding_model_prefixes() -> list[str]:
    """Registered embedding model prefixes, sorted (``""`` is the catch-all)."""
    return _embedders.prefixes()


# --------------------------------------------------------------------------- built-in chat models


def _extractive_reader(model_id: str, env: ModelEnvironment) -> ChatModel:
    if model_id != LOCAL_CHAT:
        return _unknown_local_chat(model_id, env)
    from ragft.models.local import ExtractiveReader

    return ExtractiveReader(env.local_embedder())


def _local_finetuned(model_id: str, env: ModelEnvironment) -> ChatModel:
    from ragft.models.local_ft import artifact_dir, load_local_model, read_artifact

    # Load it on the embedder it was trained with, whatever the run's local embedder is.
    manifest, _, _ = read_artifact(artifact_dir(env.models_dir, model_id))
    trained_on = str(manifest.get("embedder", {}).get("name"))
    return load_local_model(model_id, env.models_dir, env.local_embedder(trained_on))


def _lora(model_id: str, env: ModelEnvironment) -> ChatModel:
    # base GGUF + adapter in a llama.cpp server on 127.0.0.1 (see ragft.models.lora_server)
    from ragft.models.lora_server import build_lora_chat_model

    return build_lora_chat_model(model_id, env)


def _unknown_local_chat(model_id: str, env: ModelEnvironment) -> ChatModel:
    raise ConfigError(
        f"unknown local chat model {model_id!r}; the local backend has "
        f"{LOCAL_CHAT!r} and trained '{LOCAL_FT_PREFIX}...' models. For a local LLM, "
        f"serve it with an OpenAI-compatible server and set [backend] base_url"
    )


def _openai_chat(model_id: str, env: ModelEnvironment) -> ChatModel:
    from ragft.models.openai import OpenAIChatModel

    return OpenAIChatModel(model_id, client=env.openai_client(model=model_id))


# --------------------------------------------------------------------------- built-in embedders


def _minilm(model_id: str, env: ModelEnvironment) -> Embedder:
    if model_id != LOCAL_EMBEDDING:
        return _unknown_local_embedder(model_id, env)
    from ragft.models.local import MiniLMEmbedder

    return MiniLMEmbedder()


def _hashing(model_id: str, env: ModelEnvironment) -> Embedder:
    from ragft.models.local import HashingEmbedder

    suffix = model_id[len(HASHING_PREFIX):]
    if not suffix.isdigit():
        raise ConfigError(
            f"models.embedding {model_id!r}: expected {HASHING_PREFIX}<dimension>, "
            f"e.g. {HASHING_PREFIX}384"
        )
    return HashingEmbedder(int(suffix))


def _unknown_local_embedder(model_id: str, env: ModelEnvironment) -> Embedder:
    raise ConfigError(
        f"unknown local embedding model {model_id!r}; use {LOCAL_EMBEDDING!r} or "
        f"'{HASHING_PREFIX}<dimension>'"
    )


def _openai_embedder(model_id: str, env: ModelEnvironment) -> Embedder:
    from ragft.models.openai import OpenAIEmbedder

    return OpenAIEmbedder(model_id, client=env.openai_client(model=model_id),
                          concurrency=env.concurrency)


for _prefix, _chat_builder in {
    LOCAL_CHAT: _extractive_reader,
    LOCAL_FT_PREFIX: _local_finetuned,
    "lora:": _lora,
    "local/": _unknown_local_chat,
    "": _openai_chat,
}.items():
    register_chat_model(_prefix, _chat_builder)

for _prefix, _embed_builder in {
    LOCAL_EMBEDDING: _minilm,
    HASHING_PREFIX: _hashing,
    "local/": _unknown_local_embedder,
    "": _openai_embedder,
}.items():
    register_embedder(_prefix, _embed_builder)
