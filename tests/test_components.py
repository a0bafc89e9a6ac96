"""components.py: config -> live parts, each built once, metered, and released by close().

Real parts throughout: a knowledge base of the sample corpus on the hashing embedder, a local
generator trained by the local backend, and small chat models registered under test prefixes
(the way any backend registers)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from ragft.answer import Usage
from ragft.cli import main as cli
from ragft.components import (
    MODELS_DIR,
    REGISTRY_FILE,
    Components,
    OpenAIClients,
    build_meter,
    build_retriever,
    local_embedding_model,
    open_knowledge_base,
)
from ragft.config import LOCAL_CHAT, LOCAL_EMBEDDING, load_config
from ragft.errors import AuthenticationError, ConfigError, IndexStoreError
from ragft.finetune.backends.local import LocalFineTuneBackend
from ragft.finetune.data import generator_examples, write_jsonl
from ragft.finetune.jobs import JobManager
from ragft.finetune.registry import ModelRegistry
from ragft.metering.meter import Meter, MeteredEmbedder
from ragft.models.base import Completion, Message
from ragft.models.grounded import GroundedGenerator
from ragft.models.local import HashingEmbedder
from ragft.models.local_ft import LocalGeneratorModel
from ragft.models.registry import ModelEnvironment, register_chat_model
from ragft.rag.embedcache import CachedEmbedder
from ragft.rag.rerank import EmbeddingReranker

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "test-closable:"


class ClosableChat:
    """A chat model holding a resource: it echoes the question and counts its close() calls."""

    def __init__(self, name: str):
        self.name = name
        self.closed = 0

    def complete(self, messages: Sequence[Message], *, max_tokens: int | None = None,
                 temperature: float = 0.0, logprobs: bool = False) -> Completion:
        text = f"echo: {messages[-1]['content']}"
        return Completion(text, Usage(model=self.name, input_tokens=3, output_tokens=2), self.name)

    def close(self) -> None:
        self.closed += 1


def _closable(model_id: str, env: ModelEnvironment) -> ClosableChat:
    return ClosableChat(model_id)


register_chat_model(PREFIX, _closable, replace=True)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index of the sample corpus and a promoted local generator, on the hashing embedder."""
    home = tmp_path_factory.mktemp("home")
    (home / "ragft.toml").write_text(
        f'home = "{home}"\n[models]\nembedding = "local/hashing-256"\n'
        f'[index]\ncorpus = "{ROOT / "corpus" / "docs"}"\n'
        f'[prices]\nfree_prefixes = ["{PREFIX}"]\n'
    )
    assert cli(["index", "--config", str(home / "ragft.toml"), "--quiet"]) == 0
    rows = [json.loads(x) for x in (ROOT / "corpus" / "finetune" / "qa_train.jsonl").read_text().splitlines()
            if x.strip()]
    write_jsonl(generator_examples(rows), home / "generator.jsonl")
    manager = JobManager(LocalFineTuneBackend(home / MODELS_DIR, HashingEmbedder(256)), home / "jobs" / "local")
    job = manager.start(home / "generator.jsonl", model="local", suffix="t")
    status = manager.follow(job.job_id)
    registry = ModelRegistry(home / REGISTRY_FILE)
    version = registry.register("generator", model_id=str(status.fine_tuned_model), base_model="local",
                                purpose="generator")
    registry.promote("generator", version.version)
    return home


def config(home: Path, **overrides: object):
    return load_config(home / "ragft.toml", env={}, overrides=overrides)


def test_parts_are_built_once_and_embeddings_are_metered_then_cached(home) -> None:
    meter = Meter()
    with Components(config(home), meter) as parts:
        embedder = parts.embedder()
        assert parts.embedder() is embedder and parts.knowledge_base() is parts.knowledge_base()
        assert isinstance(embedder, CachedEmbedder) and isinstance(embedder.inner, MeteredEmbedder)
        assert embedder.inner.meter is meter and embedder.name == "local/hashing-256"
        embedder.embed(["a text never embedded before 7f3a"])
        assert len(meter.records) == 1 and meter.records[0].usage.embedding_tokens > 0
        embedder.embed(["a text never embedded before 7f3a"])
        assert len(meter.records) == 1  # the second time comes from the cache, unbilled
        assert parts.chat(f"{PREFIX}a") is parts.chat(f"{PREFIX}a")


def test_close_closes_every_built_model_once(home) -> None:
    parts = Components(config(home), Meter())
    a, b = parts.chat(f"{PREFIX}a"), parts.chat(f"{PREFIX}b")
    parts.close()
    parts.close()  # harmless twice
    assert (a.closed, b.closed) == (1, 1)


def test_generative_refuses_models_that_answer_one_fixed_way_however_named(home) -> None:
    with Components(config(home), Meter()) as parts:
        with pytest.raises(ConfigError, match=r"\[retrieval\] rerank.*needs a generative chat model"):
            parts.generative(LOCAL_CHAT, '[retrieval] rerank = "llm"')
        # A registry reference to the local fine-tuned memory is refused too.
        with pytest.raises(ConfigError, match="local fine-tuned model"):
            parts.generative("registry:generator", "[strategy.router] classifier = \"llm\"")
        model = parts.generative(f"{PREFIX}g", "feature")
        assert model is parts.chat(f"{PREFIX}g")


def test_the_local_generator_over_context_reads_with_its_own_threshold(home) -> None:
    with Components(config(home), Meter()) as parts:
        memory = parts.finetuned_chat()
        assert isinstance(memory, LocalGeneratorModel)
        over_context = parts.finetuned_generator_over_context()
        assert isinstance(over_context, GroundedGenerator)
        assert over_context.memory is memory and over_context.threshold == memory.threshold
        assert parts.finetuned_generator_over_context() is over_context
    # A generator that reads context itself is used as it is.
    cfg = config(home, **{"models.finetuned": f"{PREFIX}ft"})
    with Components(cfg, Meter()) as parts:
        assert parts.finetuned_generator_over_context() is parts.chat(f"{PREFIX}ft")


def test_retriever_settings_come_from_the_config_and_overrides_win(home) -> None:
    cfg = config(home, **{"retrieval.top_k": 3, "retrieval.rerank": "embedding"})
    meter = Meter()
    kb = open_knowledge_base(cfg, meter, create=False)
    retriever = build_retriever(cfg, kb)
    assert (retriever.top_k, retriever.fusion, retriever.mode) == (3, "weighted", "hybrid")
    assert isinstance(retriever.reranker, EmbeddingReranker)
    overridden = build_retriever(cfg, kb, top_k=1, fusion="rrf")
    assert (overridden.top_k, overridden.fusion) == (1, "rrf")
    (hit,) = overridden.retrieve("meal per diem")
    assert hit.chunk.document_id.startswith("policies/travel")


def test_a_missing_index_names_the_command_before_loading_a_model(tmp_path) -> None:
    cfg = load_config(env={}, overrides={"home": str(tmp_path), "models.embedding": "local/hashing-64"})
    with pytest.raises(IndexStoreError, match="ragft index"):
        open_knowledge_base(cfg, Meter(), create=False)
    with Components(cfg, Meter()) as parts, pytest.raises(IndexStoreError, match="is empty: run `ragft index"):
        parts.retriever()


def test_openai_clients_need_credentials_or_a_server_and_are_reused(tmp_path) -> None:
    cfg = load_config(env={}, overrides={"home": str(tmp_path)})
    clients = OpenAIClients(cfg)
    with pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
        clients(model="gpt-4.1-mini")
    local = clients(model="m", base_url="http://127.0.0.1:9/v1")
    assert clients(model="other", base_url="http://127.0.0.1:9/v1") is local
    assert str(local.base_url).startswith("http://127.0.0.1:9/v1")
    clients.close()
    keyed = OpenAIClients(load_config(env={"OPENAI_API_KEY": "sk-test-123"}, overrides={"home": str(tmp_path)}))
    assert keyed(model="gpt-4.1-mini").api_key == "sk-test-123"
    keyed.close()


def test_local_training_never_runs_on_a_paid_embedder(tmp_path) -> None:
    openai_cfg = load_config(env={}, overrides={"home": str(tmp_path), "models.embedding": "text-embedding-3-small"})
    assert local_embedding_model(openai_cfg) == LOCAL_EMBEDDING
    hashing = load_config(env={}, overrides={"home": str(tmp_path), "models.embedding": "local/hashing-64"})
    assert local_embedding_model(hashing) == "local/hashing-64"


def test_the_meter_takes_the_config_budget_prices_and_ledger(tmp_path) -> None:
    cfg = load_config(env={}, overrides={"home": str(tmp_path), "budget.total_usd": 0.5,
                                         "prices.free_prefixes": [PREFIX]})
    meter = build_meter(cfg)
    assert meter.budget.total_usd == 0.5
    assert meter.prices.cost(Usage(model=f"{PREFIX}x", input_tokens=10)) == 0.0
    meter.record(Usage(model=f"{PREFIX}x", input_tokens=10), latency_s=0.1)
    assert (tmp_path / "ledger.jsonl").read_text().count("\n") == 1
    assert build_meter(cfg, ledger=False).ledger is None
