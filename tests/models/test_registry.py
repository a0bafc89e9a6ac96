"""The model registry: builders by id prefix (longest wins, duplicates refused), one frozen
environment per run from ``Components``, built models closed with the run — including a real
llama.cpp server started by a registered builder."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest

from ragft.answer import Usage
from ragft.components import Components, bare_environment
from ragft.config import RagftConfig, load_config
from ragft.errors import AuthenticationError, ConfigError, RagftError
from ragft.metering.meter import Meter
from ragft.models.base import ChatModel, Completion, Message, SupportsClose
from ragft.models.local import ExtractiveReader, HashingEmbedder
from ragft.models.openai import OpenAIChatModel, OpenAIEmbedder
from ragft.models.registry import (
    ModelEnvironment,
    build_chat_model,
    build_embedding_model,
    chat_model_prefixes,
    register_chat_model,
    register_embedder,
)


class EchoModel:
    """A chat model that names the builder that made it and counts its closes."""

    def __init__(self, name: str, built_by: str, env: ModelEnvironment):
        self.name = name
        self.built_by = built_by
        self.env = env
        self.closed = 0

    def complete(self, messages: Sequence[Message], *, max_tokens: int | None = None,
                 temperature: float = 0.0, logprobs: bool = False) -> Completion:
        return Completion(text=self.built_by, usage=Usage(model=self.name), model=self.name)

    def close(self) -> None:
        self.closed += 1


def _prefix() -> str:
    # The registry is process-wide: every test registers its own prefixes.
    return f"test-{uuid.uuid4().hex[:8]}:"


def _cfg(tmp_path: Path, env: dict[str, str] | None = None, **models: str) -> RagftConfig:
    return load_config(env=env or {}, overrides={"home": str(tmp_path),
                                                 **{f"models.{k}": v for k, v in models.items()}})


def test_the_longest_registered_prefix_builds_the_model(tmp_path: Path) -> None:
    prefix = _prefix()
    register_chat_model(prefix, lambda mid, env: EchoModel(mid, "short", env))
    register_chat_model(prefix + "lora:", lambda mid, env: EchoModel(mid, "long", env))
    env = bare_environment(_cfg(tmp_path))
    model = build_chat_model(prefix + "lora:support", env)
    assert isinstance(model, ChatModel) and model.complete([]).text == "long"
    assert build_chat_model(prefix + "plain", env).complete([]).text == "short"
    assert {prefix, prefix + "lora:"} <= set(chat_model_prefixes())


def test_a_prefix_registered_twice_is_refused_unless_replaced(tmp_path: Path) -> None:
    prefix = _prefix()
    register_chat_model(prefix, lambda mid, env: EchoModel(mid, "first", env))
    with pytest.raises(ValueError, match="already registered"):
        register_chat_model(prefix, lambda mid, env: EchoModel(mid, "second", env))
    with pytest.raises(ValueError, match="already registered"):
        register_embedder("local/", lambda mid, env: HashingEmbedder(8))
    register_chat_model(prefix, lambda mid, env: EchoModel(mid, "second", env), replace=True)
    assert build_chat_model(prefix + "x", bare_environment(_cfg(tmp_path))).complete([]).text == "second"


def test_builtin_ids_build_the_builtin_backends(tmp_path: Path) -> None:
    env = bare_environment(_cfg(tmp_path))
    hashing = build_embedding_model("local/hashing-64", env)
    assert isinstance(hashing, HashingEmbedder) and hashing.dimension == 64
    for bad in ("local/hashing-x", "local/word2vec", "local/all-MiniLM-L6-v2-int8-large"):
        with pytest.raises(ConfigError, match="local embedding model|expected local/hashing-<dimension>"):
            build_embedding_model(bad, env)
    with pytest.raises(ConfigError, match="unknown local chat model 'local/llama'.*base_url"):
        build_chat_model("local/llama", env)
    # Anything else is the OpenAI API, which needs a key or a server.
    with pytest.raises(AuthenticationError, match="'gpt-4.1-mini' needs the OpenAI API: set OPENAI_API_KEY"):
        build_chat_model("gpt-4.1-mini", env)
    keyed = bare_environment(_cfg(tmp_path, env={"OPENAI_API_KEY": "sk-test"}))
    chat = build_chat_model("gpt-4.1-mini", keyed)
    embedder = build_embedding_model("text-embedding-3-small", keyed)
    assert isinstance(chat, OpenAIChatModel) and chat.name == "gpt-4.1-mini"
    assert isinstance(embedder, OpenAIEmbedder) and embedder.name == "text-embedding-3-small"


def test_components_builds_one_frozen_environment_and_closes_what_it_built(tmp_path: Path) -> None:
    prefix = _prefix()
    register_chat_model(prefix, lambda mid, env: EchoModel(mid, "echo", env))
    cfg = _cfg(tmp_path, embedding="local/hashing-32", chat=prefix + "a")
    with Components(cfg, Meter()) as parts:
        a, again, b = parts.chat(prefix + "a"), parts.chat(prefix + "a"), parts.chat(prefix + "b")
        assert a is again and isinstance(a, EchoModel) and isinstance(b, EchoModel)
        assert a.env is b.env is parts.env and parts.env.models_dir == tmp_path / "models"
        with pytest.raises(dataclasses.FrozenInstanceError):
            parts.env.models_dir = tmp_path  # type: ignore[misc]
        # Local models get the run's shared, metered local embedder through the environment.
        reader = parts.chat("local/extractive-reader")
        assert isinstance(reader, ExtractiveReader) and parts.env.local_embedder() is parts.local_embedder()
        assert parts.local_embedder().name == "local/hashing-32"
        assert parts.env.local_embedder("local/hashing-16").dimension == 16
        assert isinstance(a, SupportsClose) and a.closed == 0
    assert a.closed == 1 and b.closed == 1


@pytest.mark.llamacpp
@pytest.mark.slow
def test_a_registered_builder_can_serve_a_model_from_a_local_llamacpp_server(tmp_path: Path) -> None:
    """What the LoRA backend needs: a builder that starts a llama.cpp server, talks to it
    through the environment's client factory, and stops it when the run's parts close."""
    pytest.importorskip("xllamacpp")
    from ragft.models.llamacpp import LlamaCppServer, gguf_path_smollm2

    try:
        gguf = gguf_path_smollm2()
    except RagftError as exc:
        pytest.skip(str(exc))
    servers: list[LlamaCppServer] = []

    class Served:
        """The server's model, stopping the server on close."""

        def __init__(self, model: OpenAIChatModel, server: LlamaCppServer):
            self.model, self.server = model, server
            self.name = model.name

        def complete(self, messages: Sequence[Message], *, max_tokens: int | None = None,
                     temperature: float = 0.0, logprobs: bool = False) -> Completion:
            return self.model.complete(messages, max_tokens=max_tokens, temperature=temperature,
                                       logprobs=logprobs)

        def close(self) -> None:
            self.server.stop()

    def build(model_id: str, env: ModelEnvironment) -> ChatModel:
        server = LlamaCppServer(gguf, n_ctx=512, n_threads=2).start()
        servers.append(server)
        client = env.openai_client(model=model_id, base_url=server.base_url)
        return Served(OpenAIChatModel(server.model, client=client), server)

    prefix = _prefix()
    register_chat_model(prefix, build)
    # No API key and no base_url: the server the builder started needs neither.
    with Components(_cfg(tmp_path), Meter()) as parts:
        reply = parts.chat(prefix + "smollm2").complete(
            [{"role": "user", "content": "Say hello."}], max_tokens=4)
        assert reply.text.strip() and reply.usage.output_tokens > 0
        assert servers[0].running
    assert len(servers) == 1 and not servers[0].running
