"""The pgvector store against the FAISS store: quality on SciFact, then speed and size at scale.

Run (needs a server: eval "$(bash scripts/postgres.sh start)"):

    nice python benchmarks/pgvector_store.py [--data ../shared/datasets/scifact] [--rows 100000]

Part 1, quality: BEIR SciFact (5,183 abstracts, 300 test queries) through ``KnowledgeBase``
with each store (MiniLM vectors embedded once, through one embedding cache): nDCG@10 of dense
and hybrid retrieval per backend; then the lexical side of hybrid, ragft's BM25 vs PostgreSQL
full-text search (``ts_rank_cd`` over a GIN-indexed tsvector), by nDCG@10.

Part 2, scale: the SciFact chunk vectors replicated to ``--rows`` rows (each copy with small
Gaussian noise, re-normalised; 10 chunks per document): build time (the product path:
``replace_document`` per document, one transaction each), disk size, single-query latency
p50/p95 of FAISS flat, FAISS HNSW, pgvector HNSW and pgvector exact scan, recall@10 of pgvector
HNSW against its exact scan, single-document update latency, and the lexical side of hybrid at
that size (BM25 in memory vs PostgreSQL full-text). Ratios are measured within this one run.
Writes benchmarks/results/pgvector_store.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.scifact_retrieval import (  # noqa: E402
    CHUNK_OVERLAP,
    CHUNK_TOKENS,
    DEFAULT_DATA,
    POOL,
    RESULTS,
    read_jsonl,
    read_qrels,
)
from ragft.metrics import mean_metric, ndcg_at_k  # noqa: E402
from ragft.models.local import MiniLMEmbedder  # noqa: E402
from ragft.rag.bm25 import BM25Index  # noqa: E402
from ragft.rag.chunker import Chunk, chunk_document  # noqa: E402
from ragft.rag.documents import Document  # noqa: E402
from ragft.rag.embedcache import CachedEmbedder, EmbeddingCache, text_key  # noqa: E402
from ragft.rag.hits import rrf_scores  # noqa: E402
from ragft.rag.index import VectorIndex  # noqa: E402
from ragft.rag.knowledge import CACHE_FILE, KnowledgeBase  # noqa: E402
from ragft.rag.stores.pgvector import PgVectorStore  # noqa: E402

K = 10


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1000.0, q))


def ndcg_of(rankings: list[list[str]], qids: list[str], qrels: dict) -> float:
    scores = [ndcg_at_k(list(dict.fromkeys(r)), qrels[q], 10) for q, r in zip(qids, rankings, strict=True)]
    return round(mean_metric(scores), 4)


def add_fulltext(dsn: str, table: str) -> None:
    """The lexical side PostgreSQL would serve: a generated tsvector column with a GIN index."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            f"ALTER TABLE {table}_chunks ADD COLUMN IF NOT EXISTS tsv tsvector GENERATED ALWAYS AS "
            f"(to_tsvector('english', coalesce(record->>'title', '') || ' ' || (record->>'text'))) STORED"
        )
        conn.execute(f"CREATE INDEX IF NOT EXISTS {table}_tsv ON {table}_chunks USING gin (tsv)")
        conn.execute(f"ANALYZE {table}_chunks")


def fulltext_search(conn, table: str, text: str, k: int) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    # websearch_to_tsquery ANDs the terms (a 10-word claim matches almost nothing); OR them,
    # as BM25 does, by rewriting the plain query's & into |.
    rows = conn.execute(
        f"SELECT id, document_id FROM {table}_chunks, "
        "to_tsquery('english', replace(plainto_tsquery('english', %s)::text, '&', '|')) q "
        "WHERE tsv @@ q ORDER BY ts_rank_cd(tsv, q) DESC LIMIT %s",
        [text, k],
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def quality(args: argparse.Namespace, dsn: str) -> dict:
    corpus = read_jsonl(args.data / "corpus.jsonl")
    queries = {q["_id"]: q["text"] for q in read_jsonl(args.data / "queries.jsonl")}
    test = read_qrels(args.data / "qrels" / "test.tsv")
    qids = [q for q in test if q in queries]
    work = RESULTS / "pgvector_scifact"
    cached = CachedEmbedder(MiniLMEmbedder(), EmbeddingCache(work / CACHE_FILE), cache_queries=True)
    docs = [Document(id=str(d["_id"]), title=d.get("title") or str(d["_id"]), text=d["text"]) for d in corpus]
    if args.cached_only:
        # Only documents whose every chunk is already embedded, and the test queries whose
        # relevant documents are all among them: a SciFact subset, said so in the output.
        keys = {d.id: [text_key(c.embedding_text) for c in chunk_document(
            d, max_tokens=CHUNK_TOKENS, overlap=CHUNK_OVERLAP)] for d in docs}
        found = cached.cache.get_many(MiniLMEmbedder.name, [k for ks in keys.values() for k in ks], dim=384)
        docs = [d for d in docs if all(k in found for k in keys[d.id])]
        kept = {d.id for d in docs}
        qids = [q for q in qids if set(test[q]) <= kept]
        print(f"subset: {len(docs)} documents, {len(qids)} test queries", flush=True)
    table = "bench_scifact"
    PgVectorStore(dsn, embedder="", dimension=1, table=table).drop()
    stores = {
        "faiss": KnowledgeBase.open(work, cached, kind="flat", chunk_tokens=CHUNK_TOKENS,
                                    chunk_overlap=CHUNK_OVERLAP),
        "pgvector": KnowledgeBase.open(
            work, cached, chunk_tokens=CHUNK_TOKENS, chunk_overlap=CHUNK_OVERLAP,
            store=lambda e: PgVectorStore.open(dsn, embedder=e.name, dimension=e.dimension,
                                               table=table, ef_search=POOL)),
    }
    out: dict = {"queries": len(qids), "documents": len(docs), "subset": bool(args.cached_only)}
    texts = [queries[q] for q in qids]
    for name, kb in stores.items():
        t0 = time.perf_counter()
        kb.sync_documents(docs, progress=True, allow_removal=True)
        out[f"{name}_sync_s"] = round(time.perf_counter() - t0, 1)
        for mode in ("dense", "hybrid"):
            r = kb.retriever(mode=mode, top_k=POOL, candidates=POOL, fusion="weighted", dense_weight=0.5)
            t0 = time.perf_counter()
            hits = r.retrieve_many(texts)
            ms = 1000 * (time.perf_counter() - t0) / len(texts)
            out[f"{name}_{mode}_ndcg@10"] = ndcg_of([[h.chunk.document_id for h in hs] for hs in hits], qids, test)
            out[f"{name}_{mode}_ms_per_query"] = round(ms, 2)
        print({k: v for k, v in out.items() if k.startswith(name)}, flush=True)
    out["chunks"] = len(stores["faiss"])
    # The lexical side: ragft's BM25 vs PostgreSQL full-text, alone and fused (RRF) with pgvector.
    import psycopg

    add_fulltext(dsn, table)
    kb = stores["pgvector"]
    bm25 = kb.bm25
    qvecs = cached.embed(texts, kind="query").vectors
    dense = kb.store.search_many(qvecs, POOL)
    lexical: dict[str, list[list[str]]] = {"bm25": [], "fulltext": []}
    chunk_doc: dict[str, str] = {c.id: c.document_id for c in kb.store.chunks()}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for text in texts:
            lexical["bm25"].append([c.id for c, _ in bm25.search(text, POOL)])
            lexical["fulltext"].append([cid for cid, _ in fulltext_search(conn, table, text, POOL)])
    for name, ranks in lexical.items():
        out[f"{name}_alone_ndcg@10"] = ndcg_of([[chunk_doc[c] for c in r] for r in ranks], qids, test)
        fused = []
        for d, lx in zip(dense, ranks, strict=True):
            scores = rrf_scores(([c.id for c, _ in d], lx))
            fused.append([chunk_doc[c] for c in sorted(scores, key=scores.__getitem__, reverse=True)])
        out[f"pgvector_dense+{name}_rrf_ndcg@10"] = ndcg_of(fused, qids, test)
    print(out, flush=True)
    return out


def cached_chunk_vectors(args: argparse.Namespace) -> tuple[list[Chunk], np.ndarray]:
    """The SciFact chunks whose MiniLM vectors are in the embedding cache (no embedding here)."""
    corpus = read_jsonl(args.data / "corpus.jsonl")
    cache = EmbeddingCache(RESULTS / "pgvector_scifact" / CACHE_FILE)
    chunks = [
        c
        for d in corpus
        for c in chunk_document(
            Document(id=str(d["_id"]), title=d.get("title") or str(d["_id"]), text=d["text"]),
            max_tokens=CHUNK_TOKENS, overlap=CHUNK_OVERLAP)
    ]
    found = cache.get_many(MiniLMEmbedder.name, [text_key(c.embedding_text) for c in chunks], dim=384)
    kept = [c for c in chunks if text_key(c.embedding_text) in found]
    vectors = np.stack([found[text_key(c.embedding_text)] for c in kept]).astype(np.float32)
    print(f"{len(kept)} of {len(chunks)} SciFact chunks have cached vectors", flush=True)
    return kept, vectors


def seed_cache(source: Path) -> None:
    """Copy another checkout's embedding cache (a consistent SQLite snapshot, read only)."""
    import sqlite3

    target = RESULTS / "pgvector_scifact" / CACHE_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    src.backup(dst)
    src.close()
    dst.close()


def scale(args: argparse.Namespace, dsn: str) -> dict:
    import psycopg

    base_chunks, base = cached_chunk_vectors(args)
    rng = np.random.default_rng(0)
    n = args.rows
    vecs = base[np.arange(n) % len(base)] + rng.normal(0, 0.02, (n, base.shape[1])).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    chunks = [
        Chunk(id=f"c{i}", document_id=f"d{i // 10}", title=base_chunks[i % len(base)].title,
              text=base_chunks[i % len(base)].text, position=i % 10, token_count=1)
        for i in range(n)
    ]
    q_idx = rng.choice(n, args.queries, replace=False)
    queries = vecs[q_idx] + rng.normal(0, 0.05, (args.queries, vecs.shape[1])).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    out: dict = {"rows": n, "dimension": int(vecs.shape[1]), "queries": args.queries,
                 "base_chunks": len(base_chunks)}

    # FAISS (flat and HNSW), through VectorIndex; disk = the saved directory.
    for kind in ("flat", "hnsw"):
        index = VectorIndex(vecs.shape[1], embedder="bench", kind=kind)
        t0 = time.perf_counter()
        index.add(chunks, vecs)
        out[f"faiss_{kind}_build_s"] = round(time.perf_counter() - t0, 1)
        tmp = Path(tempfile.mkdtemp())
        index.save(tmp / "v")
        out[f"faiss_{kind}_disk_mb"] = round(sum(f.stat().st_size for f in (tmp / "v").iterdir()) / 1e6, 1)
        shutil.rmtree(tmp)
        lat = []
        for q in queries:
            t0 = time.perf_counter()
            index.search(q, K)
            lat.append(time.perf_counter() - t0)
        out[f"faiss_{kind}_p50_ms"], out[f"faiss_{kind}_p95_ms"] = round(pct(lat, 50), 2), round(pct(lat, 95), 2)
        print({k: v for k, v in out.items() if k.startswith(f"faiss_{kind}")}, flush=True)

    # pgvector through the store: one replace_document (one transaction) per document.
    table = "bench_scale"
    PgVectorStore(dsn, embedder="", dimension=1, table=table).drop()
    store = PgVectorStore.open(dsn, embedder="bench", dimension=vecs.shape[1], table=table)
    t0 = time.perf_counter()
    with store.writing():
        for start in range(0, n, 10):
            store.replace_document(f"d{start // 10}", "h", chunks[start:start + 10], vecs[start:start + 10])
    out["pgvector_build_s"] = round(time.perf_counter() - t0, 1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"VACUUM ANALYZE {table}_chunks")
        size = conn.execute(f"SELECT pg_total_relation_size('{table}_chunks') + "
                            f"pg_total_relation_size('{table}_documents')").fetchone()[0]
        hnsw = conn.execute(f"SELECT pg_relation_size('{table}_chunks_hnsw')").fetchone()[0]
    out["pgvector_disk_mb"], out["pgvector_hnsw_index_mb"] = round(size / 1e6, 1), round(hnsw / 1e6, 1)
    hnsw_ids, lat = [], []
    for q in queries:
        t0 = time.perf_counter()
        (hits,) = store.search_many(q[None, :], K)
        lat.append(time.perf_counter() - t0)
        hnsw_ids.append({c.id for c, _ in hits})
    out["pgvector_hnsw_p50_ms"], out["pgvector_hnsw_p95_ms"] = round(pct(lat, 50), 2), round(pct(lat, 95), 2)
    exact_ids, lat = [], []
    with psycopg.connect(dsn, autocommit=True) as conn:
        from pgvector.psycopg import register_vector

        register_vector(conn)
        conn.execute("SET enable_indexscan = off")
        for q in queries:
            t0 = time.perf_counter()
            rows = conn.execute(f"SELECT id FROM {table}_chunks ORDER BY embedding <#> %s LIMIT {K}", [q]).fetchall()
            lat.append(time.perf_counter() - t0)
            exact_ids.append({r[0] for r in rows})
    out["pgvector_exact_p50_ms"], out["pgvector_exact_p95_ms"] = round(pct(lat, 50), 2), round(pct(lat, 95), 2)
    out["pgvector_hnsw_recall@10"] = round(
        statistics.mean(len(h & e) / K for h, e in zip(hnsw_ids, exact_ids, strict=True)), 4)
    upd = []
    with store.writing():
        for i in range(20):
            doc = int(rng.integers(0, n // 10))
            t0 = time.perf_counter()
            store.replace_document(f"d{doc}", "h2", chunks[doc * 10:doc * 10 + 10], vecs[doc * 10:doc * 10 + 10])
            upd.append(time.perf_counter() - t0)
    out["pgvector_update_10_chunks_p50_ms"] = round(pct(upd, 50), 1)
    print({k: v for k, v in out.items() if k.startswith("pgvector")}, flush=True)

    out.update(lexical_at_scale(args, dsn, table, base_chunks, chunks))
    store.drop()
    store.close()
    return out


def lexical_at_scale(
    args: argparse.Namespace, dsn: str, table: str, base_chunks: list[Chunk], chunks: list[Chunk]
) -> dict:
    """The lexical side of hybrid at scale: BM25 in memory vs PostgreSQL full-text (GIN).

    Full-text terms are OR-ed, as BM25 scores any matching term: with AND a 10-word claim
    matches almost nothing. OR-ed queries match a large share of the rows, which
    ``ts_rank_cd`` must all rank (no top-k index), hence ``--lexical-queries``.
    """
    import psycopg

    out: dict = {"lexical_queries": args.lexical_queries}
    texts = [c.text[:200] for c in base_chunks[: args.lexical_queries]]
    t0 = time.perf_counter()
    bm25 = BM25Index.from_chunks(chunks)
    out["bm25_build_s"] = round(time.perf_counter() - t0, 1)
    lat = []
    for text in texts:
        t0 = time.perf_counter()
        bm25.search(text, 30)
        lat.append(time.perf_counter() - t0)
    out["bm25_p50_ms"], out["bm25_p95_ms"] = round(pct(lat, 50), 2), round(pct(lat, 95), 2)
    t0 = time.perf_counter()
    add_fulltext(dsn, table)
    out["fulltext_build_s"] = round(time.perf_counter() - t0, 1)
    lat = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for text in texts:
            t0 = time.perf_counter()
            fulltext_search(conn, table, text, 30)
            lat.append(time.perf_counter() - t0)
    out["fulltext_p50_ms"], out["fulltext_p95_ms"] = round(pct(lat, 50), 2), round(pct(lat, 95), 2)
    print(out, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--lexical-queries", type=int, default=20)
    parser.add_argument("--lexical-only", action="store_true",
                        help="only the lexical comparison, on the table a killed scale run left")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--cached-only", action="store_true",
                        help="quality on the SciFact documents already in the embedding cache")
    parser.add_argument("--seed-cache", type=Path, help="copy this embedding cache first "
                        "(e.g. one filled by benchmarks/scifact_retrieval.py in another checkout)")
    args = parser.parse_args()
    dsn = os.environ.get("RAGFT_TEST_PG_DSN") or os.environ.get("RAGFT_PG_DSN")
    if not dsn:
        sys.exit('set RAGFT_TEST_PG_DSN: eval "$(bash scripts/postgres.sh start)"')
    if args.seed_cache:
        seed_cache(args.seed_cache)
    results = {}
    if not args.skip_quality:
        results["quality"] = quality(args, dsn)
    if args.lexical_only:
        store = PgVectorStore.open(dsn, embedder="bench", dimension=384, table="bench_scale",
                                   create=False)
        results["lexical"] = lexical_at_scale(args, dsn, "bench_scale",
                                              cached_chunk_vectors(args)[0], list(store.chunks()))
    elif not args.skip_scale:
        results["scale"] = scale(args, dsn)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"pgvector_store{'_quality' if args.skip_scale else ''}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
