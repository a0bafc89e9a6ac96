"""Index speed and memory at 100k chunks: ragft's Retriever vs raw FAISS, updates, saves.

Run: python benchmarks/index_scale.py [--chunks 100000] [--queries 300]

For each index kind (flat, hnsw), in a fresh subprocess so memory figures do not mix:

* build time, FAISS index bytes (serialised size) and process RSS growth while adding;
* query latency p50/p95 (top-10, one query at a time) through ``Retriever(mode="dense")``
  vs ``faiss_index.search`` on the same index and vectors, interleaved query by query so
  machine drift hits both; the ratio of medians is the overhead ragft adds (target <= 1.2x).
  The retriever's embedder returns precomputed vectors, so model time is excluded;
* HNSW recall@10 against exact search;
* single-document update (remove a document + add one of 5 chunks) with and without the
  atomic save, target <= 1 s; save and load times;
* BM25 over the same synthetic chunk text: build time, query latency, per-document update.

Vectors are random unit vectors (dim 384, MiniLM's size); text is Zipf-distributed words.
Writes benchmarks/results/index_scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragft.answer import Usage  # noqa: E402
from ragft.models.base import Embeddings, EmbedKind  # noqa: E402
from ragft.rag.bm25 import BM25Index  # noqa: E402
from ragft.rag.chunker import Chunk  # noqa: E402
from ragft.rag.index import VectorIndex  # noqa: E402
from ragft.rag.retriever import Retriever  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
DIM = 384
PER_DOC = 5
K = 10


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class LookupEmbedder:
    """Returns precomputed vectors for known query texts: retrieval without model time."""

    def __init__(self, name: str, vectors: dict[str, np.ndarray]):
        self.name = name
        self.dimension = DIM
        self.vectors = vectors

    def embed(self, texts: Sequence[str], *, kind: EmbedKind = "document") -> Embeddings:
        return Embeddings(np.stack([self.vectors[t] for t in texts]), Usage(model=self.name, kind="embedding"))


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM), dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def synthetic_chunks(n: int, rng: np.random.Generator, start: int = 0, doc_prefix: str = "doc") -> list[Chunk]:
    vocab = np.array([f"w{i}" for i in range(20_000)])
    ranks = np.minimum(rng.zipf(1.3, size=(n, 40)), len(vocab)) - 1
    return [
        Chunk(
            id=f"c{start + i}",
            document_id=f"{doc_prefix}{(start + i) // PER_DOC}",
            title=f"Document {(start + i) // PER_DOC}",
            text=" ".join(vocab[ranks[i]].tolist()),
            position=(start + i) % PER_DOC,
            token_count=40,
        )
        for i in range(n)
    ]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1000.0, q))


def run_kind(kind: str, n: int, n_queries: int) -> dict:
    rng = np.random.default_rng(42)
    vectors = unit(rng, n)
    chunks = synthetic_chunks(n, rng)
    out: dict = {"kind": kind, "chunks": n}

    index = VectorIndex(DIM, embedder="bench/random", kind=kind)  # type: ignore[arg-type]
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    for s in range(0, n, 10_000):
        index.add(chunks[s : s + 10_000], vectors[s : s + 10_000])
    out["build_s"] = round(time.perf_counter() - t0, 2)
    out["rss_delta_mb"] = round((rss_bytes() - rss0) / 2**20, 1)
    import faiss

    out["faiss_index_mb"] = round(len(faiss.serialize_index(index._index)) / 2**20, 1)
    out["raw_vectors_mb"] = round(vectors.nbytes / 2**20, 1)

    # Queries near stored vectors (a realistic "there is an answer" distribution).
    targets = rng.choice(n, size=n_queries, replace=False)
    queries = vectors[targets] + 0.05 * rng.standard_normal((n_queries, DIM), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    texts = [f"q{i}" for i in range(n_queries)]
    embedder = LookupEmbedder("bench/random", dict(zip(texts, queries, strict=True)))
    retriever = Retriever(index, embedder, None, mode="dense", top_k=K)
    raw = index._index
    params = index._search_params(K)  # the same efSearch for the raw HNSW call
    for i in range(20):  # warm-up
        retriever.retrieve(texts[i])
        raw.search(queries[i : i + 1], K) if params is None else raw.search(queries[i : i + 1], K, params=params)
    def latency() -> dict[str, float]:
        raw_t, ours_t = [], []
        def time_raw(q: np.ndarray) -> None:
            t = time.perf_counter()
            if params is None:
                raw.search(q, K)
            else:
                raw.search(q, K, params=params)
            raw_t.append(time.perf_counter() - t)

        def time_ours(text: str) -> None:
            t = time.perf_counter()
            retriever.retrieve(text)
            ours_t.append(time.perf_counter() - t)

        for i, text in enumerate(texts):
            # Alternate who goes first: the second search of a query finds warm caches.
            if i % 2:
                time_raw(queries[i : i + 1])
                time_ours(text)
            else:
                time_ours(text)
                time_raw(queries[i : i + 1])
        return {
            "raw_faiss_p50": round(pct(raw_t, 50), 3),
            "raw_faiss_p95": round(pct(raw_t, 95), 3),
            "retriever_p50": round(pct(ours_t, 50), 3),
            "retriever_p95": round(pct(ours_t, 95), 3),
            "ratio_p50": round(float(np.median(ours_t) / np.median(raw_t)), 3),
            "ratio_p95": round(pct(ours_t, 95) / pct(raw_t, 95), 3),
        }

    out["omp_threads_default"] = faiss.omp_get_max_threads()
    out["query_ms"] = latency()
    # One query at a time gains nothing from OpenMP on 2 cores and pays its thread wake-ups
    # (badly, when other processes compete for the cores): measure single-threaded too.
    default_threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    out["query_ms_1_thread"] = latency()
    faiss.omp_set_num_threads(default_threads)
    if kind == "hnsw":
        exact = faiss.IndexFlatIP(DIM)
        exact.add(vectors)
        _, truth = exact.search(queries, K)
        got = [[int(c.id[1:]) for c, _ in hits] for hits in index.search(queries, K, batch=True)]
        out["hnsw_recall@10"] = round(
            float(np.mean([len(set(g) & set(t.tolist())) / K for g, t in zip(got, truth, strict=True)])), 4
        )
        # Random 384-d vectors are HNSW's worst case (no neighbourhood structure beyond the
        # planted target): whether the target itself is found is the telling figure.
        out["hnsw_target_found"] = round(
            float(np.mean([int(t) in g for g, t in zip(got, targets.tolist(), strict=True)])), 4
        )

    # Single-document updates: replace a document by a new version of 5 chunks.
    update_t, save_t = [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "idx"
        t = time.perf_counter()
        index.save(path)
        out["first_save_s"] = round(time.perf_counter() - t, 3)
        out["on_disk_mb"] = round(sum(f.stat().st_size for f in path.iterdir()) / 2**20, 1)
        for j in range(10):
            doc_id = f"doc{j * 997}"
            new_chunks = synthetic_chunks(PER_DOC, rng, start=n + j * PER_DOC, doc_prefix="new")
            new_chunks = [Chunk(c.id, doc_id, c.title, c.text, c.position, c.token_count) for c in new_chunks]
            new_vecs = unit(rng, PER_DOC)
            t = time.perf_counter()
            index.remove_document(doc_id)
            index.add(new_chunks, new_vecs, document_hashes={doc_id: f"v{j}"})
            update_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            index.save(path)
            save_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        loaded = VectorIndex.load(path, expected_embedder="bench/random", expected_dim=DIM)
        out["load_s"] = round(time.perf_counter() - t, 3)
        assert len(loaded) == len(index)
    out["update_ms"] = {
        "without_save_p50": round(pct(update_t, 50), 2),
        "without_save_max": round(max(update_t) * 1000, 2),
        "save_p50": round(pct(save_t, 50), 1),
        "save_max": round(max(save_t) * 1000, 1),
        "with_save_p50": round(pct([u + s for u, s in zip(update_t, save_t, strict=True)], 50), 1),
    }
    out["tombstones_after_updates"] = index.tombstones

    if kind == "flat":  # BM25 does not depend on the vector index kind: measure once
        t = time.perf_counter()
        bm25 = BM25Index.from_chunks(chunks)
        bm25_build = time.perf_counter() - t
        words = [c.text.split()[:3] for c in chunks[:n_queries]]
        lat = []
        for ws in words:
            t = time.perf_counter()
            bm25.search(" ".join(ws), K)
            lat.append(time.perf_counter() - t)
        upd = []
        for j in range(10):
            doc_id = f"doc{j * 991}"
            fresh = [Chunk(f"b{j}-{i}", doc_id, "t", chunks[i].text, i, 40) for i in range(PER_DOC)]
            t = time.perf_counter()
            bm25.remove_document(doc_id)
            bm25.add(fresh)
            upd.append(time.perf_counter() - t)
        hybrid = Retriever(index, embedder, bm25, mode="hybrid", top_k=K, candidates=30)
        hyb = []
        for i, text in enumerate(texts[:100]):
            t = time.perf_counter()
            hybrid.retrieve(text)
            hyb.append(time.perf_counter() - t)
        out["bm25"] = {
            "build_s": round(bm25_build, 2),
            "query_p50_ms": round(pct(lat, 50), 2),
            "query_p95_ms": round(pct(lat, 95), 2),
            "update_p50_ms": round(pct(upd, 50), 2),
            "hybrid_retrieve_p50_ms": round(pct(hyb, 50), 2),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--kind", choices=("flat", "hnsw"), help="(internal) run one kind, print JSON")
    args = parser.parse_args()
    if args.kind:
        print(json.dumps(run_kind(args.kind, args.chunks, args.queries)))
        return
    results = []
    for kind in ("flat", "hnsw"):
        proc = subprocess.run(
            [sys.executable, __file__, "--kind", kind, "--chunks", str(args.chunks), "--queries", str(args.queries)],
            check=True, capture_output=True, text=True,
        )
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    for r in results:
        q, u = r["query_ms"], r["update_ms"]
        print(f"\n== {r['kind']} index, {r['chunks']:,} chunks x {DIM} dims ==")
        print(f"build {r['build_s']} s; FAISS index {r['faiss_index_mb']} MB (raw vectors {r['raw_vectors_mb']} MB); "
              f"RSS +{r['rss_delta_mb']} MB while adding; on disk {r['on_disk_mb']} MB")
        print(f"query top-{K}: raw FAISS p50 {q['raw_faiss_p50']} ms / p95 {q['raw_faiss_p95']} ms; "
              f"Retriever p50 {q['retriever_p50']} ms / p95 {q['retriever_p95']} ms; "
              f"ratio p50 {q['ratio_p50']}x, p95 {q['ratio_p95']}x")
        q1 = r["query_ms_1_thread"]
        print(f"  with FAISS on 1 thread: raw p50 {q1['raw_faiss_p50']} ms / p95 {q1['raw_faiss_p95']} ms; "
              f"Retriever p50 {q1['retriever_p50']} ms / p95 {q1['retriever_p95']} ms; "
              f"ratio p50 {q1['ratio_p50']}x, p95 {q1['ratio_p95']}x")
        if "hnsw_recall@10" in r:
            print(f"HNSW recall@10 vs exact: {r['hnsw_recall@10']}; planted nearest vector found: "
                  f"{r['hnsw_target_found']}")
        print(f"single-document update (remove + add 5 chunks): {u['without_save_p50']} ms p50 "
              f"(max {u['without_save_max']} ms); atomic save {u['save_p50']} ms p50 (max {u['save_max']} ms); "
              f"with save {u['with_save_p50']} ms p50; load {r['load_s']} s")
        if "bm25" in r:
            b = r["bm25"]
            print(f"BM25: build {b['build_s']} s; query p50 {b['query_p50_ms']} ms / p95 {b['query_p95_ms']} ms; "
                  f"update {b['update_p50_ms']} ms; hybrid retrieve p50 {b['hybrid_retrieve_p50_ms']} ms")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "index_scale.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
