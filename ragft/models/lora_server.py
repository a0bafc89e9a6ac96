"""Serve ``lora:`` model ids: the base GGUF plus the trained adapter, in a local llama.cpp server.

A LoRA fine-tune is stored as files, never as a copy of its base (``ragft finetune start
--backend lora``): ``<models>/lora/adapters/<job id>/`` holds peft's ``adapter_config.json``
and ``adapter_model.safetensors`` beside a ``lora.json`` manifest that names the base model
(``base_model.directory`` and, for a GGUF base, ``base_model.gguf_file``). Its model id is
``lora:<suffix>:<job id>`` and ``registry:NAME`` resolves to it.

:func:`build_lora_chat_model` (registered for the ``lora:`` prefix in
:mod:`ragft.models.registry`) turns such an id into a chat model:

1. the adapter is converted to a GGUF LoRA adapter (:mod:`ragft.models.gguf_adapter`) once,
   cached under ``<models>/lora/gguf/`` by the SHA-256 of its weights, so a retrained adapter
   is never served from a stale file;
2. a :class:`~ragft.models.llamacpp.LlamaCppServer` starts on 127.0.0.1 with base + adapter;
3. the returned :class:`ServedChatModel` is ragft's ordinary OpenAI backend pointed at it, so
   usage, cached tokens, logprobs (the cascade's confidence) and streaming come from the real
   server; its ``close()`` stops the server (``Components.close()`` calls it).

A base that is a Hugging Face directory rather than a GGUF cannot be served by llama.cpp
without converting the whole model: serve it with vLLM (``--enable-lora``) instead, as the
error says.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragft.errors import ConfigError, ModelUnavailableError
from ragft.models.gguf_adapter import ADAPTER_WEIGHTS, export_lora_gguf
from ragft.models.llamacpp import LlamaCppServer
from ragft.models.lora_layout import LORA_MANIFEST, LORA_PREFIX, lora_adapter_dir
from ragft.models.openai import OpenAIChatModel

if TYPE_CHECKING:
    from ragft.models.registry import ModelEnvironment

__all__ = [
    "LORA_MANIFEST",
    "LORA_PREFIX",
    "ServedChatModel",
    "base_gguf_of",
    "build_lora_chat_model",
    "gguf_adapter_for",
    "lora_adapter_dir",
]

_VLLM_HINT = (
    "serve it behind vLLM instead (`vllm serve BASE --enable-lora --lora-modules NAME=ADAPTER_DIR`, "
    "then [backend] base_url), or train on a GGUF base (--model smollm2 or a .gguf file)"
)


class ServedChatModel(OpenAIChatModel):
    """The OpenAI backend talking to a llama.cpp server this model owns.

    Everything a strategy sees is :class:`~ragft.models.openai.OpenAIChatModel`'s (usage from
    the response, logprobs, streaming); :meth:`close` also stops the server.
    """

    def __init__(self, model: str, *, server: LlamaCppServer, client: Any) -> None:
        super().__init__(model, client=client)
        self.server = server

    def close(self) -> None:
        """Stop the server (safe to call twice); the client belongs to whoever made it."""
        self.server.stop()


def base_gguf_of(adapter_dir: Path) -> Path:
    """The base GGUF the adapter in ``adapter_dir`` was trained on (from its manifest)."""
    manifest_path = adapter_dir / LORA_MANIFEST
    if not manifest_path.is_file():
        raise ModelUnavailableError(
            f"no LoRA adapter at {adapter_dir} ({LORA_MANIFEST} missing): train one with "
            "`ragft finetune start FILE --backend lora --model smollm2 --suffix NAME`"
        )
    try:
        base = json.loads(manifest_path.read_text(encoding="utf-8"))["base_model"]
        directory, gguf_file = Path(base["directory"]), base.get("gguf_file")
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ModelUnavailableError(f"{manifest_path} does not name its base model: {exc}") from exc
    if not gguf_file:
        raise ConfigError(
            f"the LoRA adapter at {adapter_dir} was trained on a Hugging Face model directory "
            f"({directory}), which llama.cpp cannot load as is; {_VLLM_HINT}"
        )
    path = directory / str(gguf_file)
    if not path.is_file():
        raise ModelUnavailableError(f"the adapter's base GGUF {path} is missing; reinstall it or retrain")
    return path


def gguf_adapter_for(adapter_dir: Path, base_gguf: Path, cache_dir: Path) -> Path:
    """The GGUF form of the peft adapter in ``adapter_dir``, exported on first use and kept in
    ``cache_dir`` under the SHA-256 of its weights."""
    weights = adapter_dir / ADAPTER_WEIGHTS
    digest = hashlib.sha256()
    with open(weights, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    target = cache_dir / f"{adapter_dir.name}-{digest.hexdigest()[:16]}.gguf"
    if not target.is_file():
        export_lora_gguf(adapter_dir, base_gguf, target, name=adapter_dir.name)
    return target


def build_lora_chat_model(model_id: str, env: ModelEnvironment, **server_options: Any) -> ServedChatModel:
    """A chat model for ``lora:<suffix>:<job id>``: base GGUF + adapter in a llama.cpp server
    on 127.0.0.1, talked to through the OpenAI backend. ``server_options`` go to
    :class:`~ragft.models.llamacpp.LlamaCppServer` (``n_ctx``, ``n_threads``...)."""
    adapter_dir = lora_adapter_dir(env.models_dir, model_id)
    base = base_gguf_of(adapter_dir)
    adapter = gguf_adapter_for(adapter_dir, base, Path(env.models_dir) / "lora" / "gguf")
    server = LlamaCppServer(base, alias=model_id, lora_adapters=[adapter], **server_options).start()
    try:
        client = env.openai_client(model=model_id, base_url=server.base_url)
        return ServedChatModel(model_id, server=server, client=client)
    except BaseException:
        server.stop()
        raise
