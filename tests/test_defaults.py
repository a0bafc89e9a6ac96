"""One default per setting: code that builds parts by hand gets what a config that leaves the
setting out gets."""

from __future__ import annotations

import inspect

from ragft import defaults
from ragft.config import load_config
from ragft.rag.knowledge import KnowledgeBase
from ragft.rag.retriever import Retriever
from ragft.strategies import RAG, FineTuned


def _default(func, name: str):
    return inspect.signature(func).parameters[name].default


def test_the_library_and_the_config_share_every_default(tmp_path) -> None:
    cfg = load_config(env={}, overrides={"home": str(tmp_path)})
    assert (cfg.index.chunk_tokens, cfg.index.chunk_overlap) == (defaults.CHUNK_TOKENS, defaults.CHUNK_OVERLAP)
    assert _default(KnowledgeBase.open, "chunk_tokens") == cfg.index.chunk_tokens
    assert _default(KnowledgeBase.open, "chunk_overlap") == cfg.index.chunk_overlap
    r = cfg.retrieval
    for setting in ("top_k", "candidates", "fusion", "dense_weight"):
        assert _default(Retriever.__init__, setting) == getattr(r, setting), setting
    assert _default(RAG.__init__, "context_tokens") == r.context_tokens
    assert _default(RAG.__init__, "max_tokens") == cfg.strategy.max_tokens
    assert _default(FineTuned.__init__, "max_tokens") == cfg.strategy.max_tokens


def test_a_knowledge_base_opened_by_hand_chunks_like_the_default_config(tmp_path) -> None:
    from ragft.models.local import HashingEmbedder

    kb = KnowledgeBase.open(tmp_path / "kb", HashingEmbedder(32))
    assert (kb.chunk_tokens, kb.chunk_overlap) == (200, 40)
    assert kb.retriever().fusion == "weighted"
