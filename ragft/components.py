"""Config -> wired objects: one small builder function per component.

Everything that turns a :class:`~ragft.config.RagftConfig` into live objects lives here, so the
CLI and the strategies never construct clients themselves. Backends are imported lazily: the
OpenAI SDK is only loaded when a config asks for an OpenAI model.

Sections: metering, embeddings and the knowledge base (chat-model builders go beside them).
"""

from __future__ import annotations

from typing import Any

from ragft.config import LOCAL_EMBEDDING, RagftConfig
from ragft.errors import ConfigError, IndexStoreError
from ragft.metering.meter import Budget, Ledger, Meter
from ragft.metering.prices import PriceTable
from ragft.models.base import Embedder
from ragft.rag.embedcache import CachedEmbedder, EmbeddingCache
from ragft.rag.index import VectorIndex
from ragft.rag.knowledge import CACHE_FILE, INDEX_DIR, KnowledgeBase
from ragft.rag.retriever import Retriever

__all__ = [
    "HASHING_PREFIX",
    "MODELS_DIR",
    "REGISTRY_FILE",
    "Components",
    "LEDGER_FILE",
    "build_base_embedder",
    "build_embedder",
    "build_meter",
    "build_retriever",
    "open_knowledge_base",
]

#: ``local/hashing-<dim>`` selects the instant lexical :class:`~ragft.models.local.HashingEmbedder`.
HASHING_PREFIX = "local/hashing-"
#: File under the home directory where every metered call is appended.
LEDGER_FILE = "ledger.jsonl"

# --------------------------------------------------------------------------- metering


def build_meter(cfg: RagftConfig, *, ledger: bool = True, keep_records: bool = True) -> Meter:
    """A :class:`Meter` with the config's price overrides and budget, logging to
    ``<home>/ledger.jsonl`` unless ``ledger=False``; ``keep_records=False`` for a long-lived
    meter (a server) that must not hold every call in memory."""
    prices = PriceTable.load(cfg.path(cfg.prices.file) if cfg.prices.file else None)
    if cfg.prices.models or cfg.prices.unpriced or cfg.prices.free_prefixes:
        prices = prices.with_overrides(
            cfg.prices.models,
            unpriced=cfg.prices.unpriced,
            free_prefixes=cfg.prices.free_prefixes,
        )
    return Meter(
        prices,
        ledger=Ledger(cfg.home_path / LEDGER_FILE) if ledger else None,
        budget=Budget(total_usd=cfg.budget.total_usd, per_query_usd=cfg.budget.per_query_usd),
        keep_records=keep_records,
    )


# --------------------------------------------------------------------------- embeddings


def build_base_embedder(cfg: RagftConfig) -> Embedder:
    """The bare embedder named by ``cfg.embedding_model`` (not metered, not cached)."""
    model = cfg.embedding_model
    if model == LOCAL_EMBEDDING:
        from ragft.models.local import MiniLMEmbedder

        return MiniLMEmbedder()
    if model.startswith(HASHING_PREFIX):
        from ragft.models.local import HashingEmbedder

        suffix = model[len(HASHING_PREFIX) :]
        if not suffix.isdigit():
            raise ConfigError(
                f"models.embedding {model!r}: expected {HASHING_PREFIX}<dimension>, "
                f"e.g. {HASHING_PREFIX}384"
            )
        return HashingEmbedder(int(suffix))
    if model.startswith("local/"):
        raise ConfigError(
            f"unknown local embedding model {model!r}; use {LOCAL_EMBEDDING!r} or "
            f"'{HASHING_PREFIX}<dimension>'"
        )
    from ragft.models.openai import OpenAIEmbedder, make_client

    client = make_client(
        api_key=cfg.api_key,
        base_url=cfg.base_url,
        timeout=cfg.backend.timeout_s,
        max_retries=cfg.backend.max_retries,
    )
    return OpenAIEmbedder(model, client=client)


def build_embedder(cfg: RagftConfig, meter: Meter) -> CachedEmbedder:
    """The configured embedder, metered by ``meter`` and behind the on-disk embedding cache
    (``<index path>/embeddings.sqlite``), so only cache misses are called and billed."""
    metered = meter.embedder(build_base_embedder(cfg))
    return CachedEmbedder(metered, EmbeddingCache(cfg.index_path / CACHE_FILE))


# --------------------------------------------------------------------------- knowledge base


def open_knowledge_base(
    cfg: RagftConfig,
    meter: Meter,
    *,
    embedder: Embedder | None = None,
    rebuild: bool = False,
    kind: str | None = None,
    create: bool = True,
) -> KnowledgeBase:
    """The knowledge base at ``cfg.index_path`` with the config's chunking and index kind.

    ``embedder`` defaults to :func:`build_embedder`; ``kind`` overrides ``[index] kind``.
    With ``create=False`` a missing index raises before any model is loaded.
    """
    if not create and not rebuild and not VectorIndex.exists(cfg.index_path / INDEX_DIR):
        raise IndexStoreError(
            f"no knowledge base at {cfg.index_path}; build it with `ragft index` "
            f"(corpus: {cfg.corpus_path})"
        )
    return KnowledgeBase.open(
        cfg.index_path,
        embedder if embedder is not None else build_embedder(cfg, meter),
        kind=(kind or cfg.index.kind),  # type: ignore[arg-type]
        chunk_tokens=cfg.index.chunk_tokens,
        chunk_overlap=cfg.index.chunk_overlap,
        create=create,
        rebuild=rebuild,
    )


def build_retriever(cfg: RagftConfig, kb: KnowledgeBase, **overrides: Any) -> Retriever:
    """A retriever over ``kb`` with the ``[retrieval]`` settings (``overrides`` win).

    ``[retrieval] rerank = "embedding"`` adds an :class:`~ragft.rag.rerank.EmbeddingReranker`
    over the knowledge base's embedder; ``"llm"`` needs a chat model, so callers that have one
    pass ``reranker=LLMReranker(model)`` themselves.
    """
    r = cfg.retrieval
    settings: dict[str, Any] = {
        "mode": r.mode,
        "top_k": r.top_k,
        "candidates": r.candidates,
        "min_score": r.min_score,
        "dense_weight": r.dense_weight,
        "fusion": r.fusion,
    }
    if r.rerank == "embedding":
        from ragft.rag.rerank import EmbeddingReranker

        settings["reranker"] = EmbeddingReranker(kb.embedder)
    settings.update(overrides)
    return kb.retriever(**settings)


# --------------------------------------------------------------------------- chat models and parts

#: Under the home directory: the model registry and local fine-tuned model artifacts.
REGISTRY_FILE = "registry.json"
MODELS_DIR = "models"


class Components:
    """The parts strategies are built from, made on first use and shared.

    One instance per run: the evaluation harness builds every strategy from one
    ``Components`` so the index and the models load once. Every model it hands out is metered
    by ``meter`` (strategies meter again with their purpose label; wrapping is idempotent).
    """

    def __init__(self, cfg: RagftConfig, meter: Meter):
        self.cfg = cfg
        self.meter = meter
        self._cache: dict[str, Any] = {}

    def _once(self, key: str, make: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    # -- retrieval ----------------------------------------------------------------------------
    def embedder(self) -> CachedEmbedder:
        """The configured embedder (metered, cached on disk)."""
        return self._once("embedder", lambda: build_embedder(self.cfg, self.meter))

    def knowledge_base(self) -> KnowledgeBase:
        """The knowledge base at the configured index path (created empty if absent)."""
        return self._once("kb", lambda: open_knowledge_base(self.cfg, self.meter, embedder=self.embedder()))

    def retriever(self) -> Retriever:
        """A retriever over the knowledge base; refuses an empty index with what to run."""

        def make() -> Retriever:
            kb = self.knowledge_base()
            if len(kb) == 0:
                from ragft.errors import IndexStoreError

                raise IndexStoreError(
                    f"the index at {self.cfg.index_path} is empty: run `ragft index "
                    f"{self.cfg.corpus_path}` (or `ragft quickstart`) first"
                )
            overrides: dict[str, Any] = {}
            if self.cfg.retrieval.rerank == "llm":
                from ragft.rag.rerank import LLMReranker

                model = self.chat(self.generative(self.cfg.models.reranker or self.cfg.chat_model,
                                                  "[retrieval] rerank = \"llm\""))
                overrides["reranker"] = LLMReranker(self.meter.chat_model(model).with_purpose("rerank"))
            return build_retriever(self.cfg, kb, **overrides)

        return self._once("retriever", make)

    # -- chat models --------------------------------------------------------------------------
    def local_embedder(self) -> Embedder:
        """The offline embedder local models use (MiniLM, or the configured local one), metered
        and behind the on-disk embedding cache: the extractive reader embeds the sentences of
        every passage it reads, and the same passages recur across queries and strategies."""

        def make() -> Embedder:
            if self.cfg.embedding_model.startswith("local/"):
                return self.embedder()  # the same model: share its cache
            from ragft.models.local import MiniLMEmbedder

            cache = EmbeddingCache(self.cfg.home_path / "local-embeddings.sqlite")
            return CachedEmbedder(self.meter.embedder(MiniLMEmbedder()), cache)

        return self._once("local_embedder", make)

    def registry(self) -> Any:
        """The model registry at ``<home>/registry.json``."""
        from ragft.finetune.registry import ModelRegistry

        return self._once("registry", lambda: ModelRegistry(self.cfg.home_path / REGISTRY_FILE))

    def resolve(self, ref: str) -> str:
        """A model id for ``ref``: ``registry:NAME[@N]`` via the registry, anything else as is."""
        from ragft.errors import RegistryError

        try:
            return str(self.registry().resolve(ref))
        except RegistryError as exc:
            raise RegistryError(
                f"{exc}. Train and promote one (offline: `python examples/finetune_local.py`; "
                f"or `ragft finetune start FILE --register ...` then `ragft models promote`), "
                f"or set [models] in the config to a model id"
            ) from None

    def chat(self, ref: str) -> Any:
        """The chat model ``ref`` names (a model id or ``registry:NAME``), built once."""
        model_id = self.resolve(ref)

        def make() -> Any:
            if model_id == "local/extractive-reader":
                from ragft.models.local import ExtractiveReader

                return ExtractiveReader(self.local_embedder())
            if model_id.startswith("local-ft:"):
                from ragft.models.local_ft import load_local_model

                return load_local_model(model_id, self.cfg.home_path / MODELS_DIR, self.local_embedder())
            if model_id.startswith("local/"):
                raise ConfigError(
                    f"unknown local chat model {model_id!r}; the local backend has "
                    f"'local/extractive-reader' and trained 'local-ft:...' models. For a local LLM, "
                    f"serve it with an OpenAI-compatible server and set [backend] base_url"
                )
            from ragft.models.openai import OpenAIChatModel, make_client

            if self.cfg.base_url is None and self.cfg.api_key is None:
                from ragft.errors import AuthenticationError

                raise AuthenticationError(
                    f"model {model_id!r} needs the OpenAI API: set {self.cfg.backend.api_key_env} "
                    f"(or [backend] base_url for an OpenAI-compatible server), or use the offline "
                    f"backend with [backend] provider = \"local\"",
                    model=model_id,
                )
            client = self._once(
                "openai_client",
                lambda: make_client(
                    api_key=self.cfg.api_key,
                    base_url=self.cfg.base_url,
                    timeout=self.cfg.backend.timeout_s,
                    max_retries=self.cfg.backend.max_retries,
                ),
            )
            return OpenAIChatModel(model_id, client=client)

        return self._once(f"chat:{model_id}", make)

    def generative(self, ref: str, feature: str) -> str:
        """``ref`` if it names a generative model; a :class:`ConfigError` for the extractive
        reader, which cannot follow a scoring or labelling prompt (it would fail every call)."""
        if self.resolve(ref) == "local/extractive-reader":
            raise ConfigError(
                f"{feature} needs a generative chat model, and the offline backend's "
                f"local/extractive-reader only extracts sentences. Use the OpenAI backend, a "
                f"local server via [backend] base_url, or another option (rerank = \"embedding\", "
                f"classifier = \"trained\" or \"rules\")"
            )
        return ref

    def base_chat(self) -> Any:
        """The base chat model (``[models] chat`` or the backend default)."""
        return self.chat(self.cfg.chat_model)

    def finetuned_chat(self) -> Any:
        """The fine-tuned generator (``[models] finetuned``)."""
        return self.chat(self.cfg.models.finetuned)

    def finetuned_generator_over_context(self) -> Any:
        """The fine-tuned generator for pattern 1 (generator over retrieved context).

        API models read the context themselves. The local fine-tuned generator is a memory of
        trained answers, so it is paired with the extractive reader for what it does not know
        (see :class:`~ragft.models.grounded.GroundedGenerator`).
        """
        model = self.finetuned_chat()
        if not model.name.startswith("local-ft:"):
            return model
        from ragft.models.grounded import GroundedGenerator

        return self._once(
            f"grounded:{model.name}",
            lambda: GroundedGenerator(model, self.chat("local/extractive-reader"),
                                      threshold=getattr(model, "threshold", 0.5)),
        )

    def rewriter_chat(self) -> Any:
        """The query rewriter (``[models] rewriter``)."""
        return self.chat(self.cfg.models.rewriter)

    def router_chat(self) -> Any:
        """The trained router classifier (``[models] router``)."""
        return self.chat(self.cfg.models.router)
