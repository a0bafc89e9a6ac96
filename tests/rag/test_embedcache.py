"""The embedding cache: misses only, zero-token usage for hits, shared across instances."""

from __future__ import annotations

import numpy as np

from ragft.metering.meter import Meter
from ragft.rag.embedcache import CachedEmbedder, EmbeddingCache


def test_only_misses_are_embedded_and_billed(tmp_path, embedder) -> None:
    meter = Meter()
    cached = CachedEmbedder(meter.embedder(embedder), EmbeddingCache(tmp_path / "c.sqlite"))
    first = cached.embed(["alpha beta", "gamma delta", "alpha beta"])
    assert embedder.calls == [("document", 2)]  # the duplicate is embedded once
    assert first.usage.embedding_tokens == 4
    assert np.allclose(first.vectors[0], first.vectors[2])

    second = cached.embed(["gamma delta", "epsilon"])
    assert embedder.calls[-1] == ("document", 1)
    assert second.usage.embedding_tokens == 1
    direct = embedder.inner.embed(["gamma delta", "epsilon"]).vectors
    assert np.allclose(second.vectors, direct)

    third = cached.embed(["alpha beta"])
    assert third.usage.embedding_tokens == 0 and len(embedder.calls) == 2
    assert len(meter.records) == 2  # the all-cached call never reached the meter
    assert (cached.stats.hits, cached.stats.misses) == (3, 3)


def test_cache_persists_across_instances(tmp_path, embedder) -> None:
    path = tmp_path / "c.sqlite"
    CachedEmbedder(embedder, EmbeddingCache(path)).embed(["persisted text"])
    again = CachedEmbedder(embedder, EmbeddingCache(path))
    assert again.embed(["persisted text"]).usage.embedding_tokens == 0
    assert len(embedder.calls) == 1
    assert len(again.cache) == 1


def test_queries_are_not_cached_by_default(tmp_path, embedder) -> None:
    cached = CachedEmbedder(embedder, EmbeddingCache(tmp_path / "c.sqlite"))
    cached.embed(["what is x"], kind="query")
    cached.embed(["what is x"], kind="query")
    assert embedder.calls == [("query", 1), ("query", 1)]
    opted_in = CachedEmbedder(embedder, EmbeddingCache(tmp_path / "c.sqlite"), cache_queries=True)
    opted_in.embed(["what is y"], kind="query")
    opted_in.embed(["what is y"], kind="query")
    assert embedder.calls[2:] == [("query", 1)]


def test_vectors_of_another_dimension_are_misses(tmp_path) -> None:
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    cache.put_many("m", {"k": np.ones(4, np.float32)})
    assert set(cache.get_many("m", ["k"], dim=4)) == {"k"}
    assert cache.get_many("m", ["k"], dim=8) == {}


def test_the_wrapper_forwards_nothing_beyond_the_protocol(tmp_path) -> None:
    from ragft.models.local import HashingEmbedder

    inner = HashingEmbedder(64)
    inner.batch_size = 7  # type: ignore[attr-defined]  # a backend extra
    cached = CachedEmbedder(inner, EmbeddingCache(tmp_path / "c.sqlite"))
    assert cached.inner.batch_size == 7  # type: ignore[attr-defined]  # reached explicitly
    assert not hasattr(cached, "batch_size")  # no silent forwarding through the wrapper
    assert (cached.name, cached.dimension) == (inner.name, inner.dimension)
