"""Config -> wired objects: one small builder function per component.

Everything that turns a :class:`~ragft.config.RagftConfig` into live objects lives here, so the
CLI and the strategies never construct clients themselves. Backends are imported lazily: the
OpenAI SDK is only loaded when a config asks for an OpenAI model.

Sections: metering, embeddings and the knowledge base (chat-model builders go beside them).
"""

from __future__ import annotations

from typing import Any

from ragft.config import LOCAL_EMBEDDING, RagftConfig
from ragft.errors import ConfigError
from ragft.metering.meter import Budget, Ledger, Meter
from ragft.metering.prices import PriceTable
from ragft.models.base import Embedder
from ragft.rag.embedcache import CachedEmbedder, EmbeddingCache
from ragft.rag.knowledge import CACHE_FILE, KnowledgeBase
from ragft.rag.retriever import Retriever

__all__ = [
    "HASHING_PREFIX",
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


def build_meter(cfg: RagftConfig, *, ledger: bool = True) -> Meter:
    """A :class:`Meter` with the config's price overrides and budget, logging to
    ``<home>/ledger.jsonl`` unless ``ledger=False``."""
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
    """
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
    }
    # A dense weight other than the default means the user asked for weighted fusion.
    settings["fusion"] = "weighted" if r.dense_weight != 0.5 else "rrf"
    if r.rerank == "embedding":
        from ragft.rag.rerank import EmbeddingReranker

        settings["reranker"] = EmbeddingReranker(kb.embedder)
    settings.update(overrides)
    return kb.retriever(**settings)
