"""PostgreSQL + pgvector as an engine for ragft's index, measured against FAISS and ragft's BM25.

Run (needs a server with pgvector; scripts/postgres.sh starts a throwaway one):

    eval "$(bash scripts/postgres.sh start)"
    nice python benchmarks/pgvector_engine.py [--rows 100000] [--m 16,32] [--ef-search 40,128]
    bash scripts/postgres.sh stop

Vectors are real: SciFact's 5,183 abstracts chunked (200 tokens, overlap 40) and embedded with
ragft's MiniLM through the same knowledge base and embedding cache as
benchmarks/scifact_retrieval.py (benchmarks/results/scifact/, so a rerun embeds nothing),
then replicated to ``--rows`` rows: copy r > 0 of a chunk is its vector plus Gaussian noise
(``--noise`` per dimension), renormalised, under document id ``<id>#r``. Queries are the 300
SciFact test claims embedded the same way.

Dense, at ``--rows`` rows, inner product on unit vectors (pgvector ``<#>`` with
``vector_ip_ops``; FAISS ``METRIC_INNER_PRODUCT``), one query at a time, top-10:

* query latency p50/p95: pgvector exact scan, pgvector HNSW per (m, ef_search), FAISS flat,
  FAISS HNSW with the same m / ef_construction / ef_search;
* recall@10 of every approximate index against exact search (numpy on the same vectors);
* build time (HNSW, single-threaded on both sides: max_parallel_maintenance_workers = 0,
  one OpenMP thread) and size on disk (table, each index; FAISS serialised bytes);
* single-document delete and replace (delete + insert its rows in one transaction) latency,
  with the HNSW index in place, without and then with a btree on document_id.

Lexical: Postgres full text (``to_tsvector('english', ...)`` stored column + GIN,
``ts_rank_cd``) with ``plainto_tsquery`` (all terms ANDed), ``websearch_to_tsquery`` and
the plainto query with its terms ORed, vs ragft's BM25Index: latency p50/p95 at ``--rows``
rows, and SciFact nDCG@10 (300 test queries, top 100 chunks scored by best chunk per
document) on the unreplicated corpus.

The README's figures came from three partial runs while SciFact was still being embedded:
``--cached-only`` (A: all parts but lexical, 7,424 chunks); ``--cached-only --parts pg-dense
--m 16`` with RAGFT_PG_SHARED_BUFFERS=1GB (B, 9,855 chunks); ``--cached-only --parts
faiss-flat,lexical --lexical-queries 30`` (B's data); and ``--lexical-quality``.

Server settings are the throwaway cluster's (fsync off: writes are faster than on a durable
server); queries run with jit = off and max_parallel_workers_per_gather = 0, so every figure
is one core's work. Writes benchmarks/results/pgvector_engine.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import psycopg
from pgvector.psycopg import register_vector

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.scifact_retrieval import (  # noqa: E402
    CHUNK_OVERLAP,
    CHUNK_TOKENS,
    DEFAULT_DATA,
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
from ragft.rag.knowledge import CACHE_FILE, KnowledgeBase  # noqa: E402

K = 10
POOL = 100  # chunks fetched per query for nDCG@10 over documents
TABLE, BASE_TABLE = "bench_chunks", "bench_scifact"
ALL_PARTS = ("faiss", "pg-dense", "updates", "lexical")  # "faiss-flat": FAISS without HNSW


# --------------------------------------------------------------------------- data


def load_scifact(data: Path, work: Path, limit: int = 0, cached_only: bool = False
                 ) -> tuple[list[Chunk], np.ndarray, list[str], np.ndarray, dict]:
    """Base chunks + vectors, test query texts + vectors, test qrels (embedding once, cached)."""
    corpus = read_jsonl(data / "corpus.jsonl")
    if limit:
        corpus = corpus[:limit]
    queries = {q["_id"]: q["text"] for q in read_jsonl(data / "queries.jsonl")}
    qrels = read_qrels(data / "qrels" / "test.tsv")
    docs = [Document(id=str(d["_id"]), title=d.get("title") or str(d["_id"]), text=d["text"])
            for d in corpus]
    qids = [q for q in qrels if q in queries]
    minilm = MiniLMEmbedder()
    if cached_only:
        # Only documents whose every chunk is already in the embedding cache (read-only: another
        # process may still be filling it); queries embedded without the cache.
        cache = EmbeddingCache(work / CACHE_FILE)
        chunks, parts = [], []
        for doc in docs:
            doc_chunks = chunk_document(doc, max_tokens=CHUNK_TOKENS, overlap=CHUNK_OVERLAP)
            keys = [text_key(c.embedding_text) for c in doc_chunks]
            found = cache.get_many(minilm.name, keys, kind="document", dim=minilm.dimension)
            if all(k in found for k in keys):
                chunks.extend(doc_chunks)
                parts.extend(found[k] for k in keys)
        cache.close()
        qvecs = minilm.embed([queries[q] for q in qids], kind="query").vectors
        print(f"cached only: {len(chunks)} chunks of {len(chunks) and len({c.document_id for c in chunks})} "
              f"documents", flush=True)
        return (chunks, np.vstack(parts).astype(np.float32), [queries[q] for q in qids], qvecs,
                {q: qrels[q] for q in qids})
    cached = CachedEmbedder(minilm, EmbeddingCache(work / CACHE_FILE), cache_queries=True)
    kb = KnowledgeBase.open(
        work, cached, kind="flat", chunk_tokens=CHUNK_TOKENS, chunk_overlap=CHUNK_OVERLAP
    )
    report = kb.sync_documents(docs, progress=True)
    if report.modified:
        kb.save()
    chunks = sorted(kb.index.chunks(), key=lambda c: c.id)
    vectors = kb.index.vectors([c.id for c in chunks])
    qvecs = cached.embed([queries[q] for q in qids], kind="query").vectors
    return chunks, vectors, [queries[q] for q in qids], qvecs, {q: qrels[q] for q in qids}


def replicate(chunks: list[Chunk], vectors: np.ndarray, rows: int, noise: float
              ) -> tuple[list[Chunk], np.ndarray]:
    rng = np.random.default_rng(0)
    out_chunks: list[Chunk] = []
    parts: list[np.ndarray] = []
    copy = 0
    while len(out_chunks) < rows:
        n = min(len(chunks), rows - len(out_chunks))
        block = vectors[:n].copy()
        if copy:
            block += rng.normal(0.0, noise, block.shape).astype(np.float32)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
        parts.append(block)
        for c in chunks[:n]:
            out_chunks.append(c if not copy else dataclasses.replace(
                c, id=f"{c.id}#{copy}", document_id=f"{c.document_id}#{copy}"))
        copy += 1
    return out_chunks, np.vstack(parts).astype(np.float32)


# --------------------------------------------------------------------------- measuring


def percentiles(samples_s: Sequence[float]) -> dict[str, float]:
    ms = np.asarray(samples_s) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p95_ms": round(float(np.percentile(ms, 95)), 3)}


def timed(fn: Callable[[Any], Any], items: Sequence[Any]) -> tuple[list[Any], list[float]]:
    results, times = [], []
    for item in items:
        t0 = time.perf_counter()
        results.append(fn(item))
        times.append(time.perf_counter() - t0)
    return results, times


def recall(found: Sequence[Sequence[int]], truth: np.ndarray) -> float:
    return round(float(np.mean([len(set(f) & set(t.tolist())) / K
                                for f, t in zip(found, truth, strict=True)])), 4)


def doc_ndcg(ranked_chunks: Sequence[Sequence[Chunk]], qrels: dict, qids: Sequence[str]) -> float:
    scores = []
    for qid, hits in zip(qids, ranked_chunks, strict=True):
        docs = list(dict.fromkeys(c.document_id for c in hits))
        scores.append(ndcg_at_k(docs, qrels[qid], K))
    return round(mean_metric(scores), 4)


# --------------------------------------------------------------------------- FAISS


def bench_faiss(x: np.ndarray, q: np.ndarray, truth: np.ndarray, ms: list[int], efc: int,
                efs: list[int], hnsw: bool = True) -> dict[str, Any]:
    faiss.omp_set_num_threads(1)
    out: dict[str, Any] = {}
    flat = faiss.IndexFlatIP(x.shape[1])
    t0 = time.perf_counter()
    flat.add(x)
    build = time.perf_counter() - t0
    found, times = timed(lambda v: flat.search(v[None, :], K)[1][0].tolist(), list(q))
    out["flat"] = {"build_s": round(build, 2), "bytes": int(faiss.serialize_index(flat).nbytes),
                   **percentiles(times), "recall@10": recall(found, truth)}
    print(f"  faiss flat: {out['flat']}", flush=True)
    for m in ms if hnsw else []:
        index = faiss.IndexHNSWFlat(x.shape[1], m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = efc
        t0 = time.perf_counter()
        index.add(x)
        build = time.perf_counter() - t0
        size = int(faiss.serialize_index(index).nbytes)
        for ef in efs:
            index.hnsw.efSearch = ef
            found, times = timed(lambda v: index.search(v[None, :], K)[1][0].tolist(), list(q))
            out[f"hnsw m={m} ef_search={ef}"] = {
                "build_s": round(build, 2), "bytes": size, **percentiles(times),
                "recall@10": recall(found, truth)}
            print(f"  faiss hnsw m={m} ef={ef}: {out[f'hnsw m={m} ef_search={ef}']}", flush=True)
    return out


# --------------------------------------------------------------------------- Postgres


def connect(dsn: str) -> psycopg.Connection:
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    register_vector(conn)
    conn.execute("SET jit = off")
    conn.execute("SET max_parallel_workers_per_gather = 0")
    conn.execute("SET max_parallel_maintenance_workers = 0")
    conn.execute("SET maintenance_work_mem = '512MB'")
    return conn


def load_table(conn: psycopg.Connection, name: str, chunks: Sequence[Chunk], x: np.ndarray
               ) -> float:
    conn.execute(f"DROP TABLE IF EXISTS {name}")
    conn.execute(f"""CREATE TABLE {name} (
        id bigint PRIMARY KEY, document_id text NOT NULL, text text NOT NULL,
        embedding vector({x.shape[1]}) NOT NULL)""")
    # Inline vectors: a row with text and a 1.5 kB vector passes the TOAST threshold, and a
    # toasted vector makes every exact-scan row a detour.
    conn.execute(f"ALTER TABLE {name} ALTER COLUMN embedding SET STORAGE PLAIN")
    t0 = time.perf_counter()
    with conn.cursor() as cur, cur.copy(
        f"COPY {name} (id, document_id, text, embedding) FROM STDIN WITH (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["int8", "text", "text", "vector"])
        for i, (c, v) in enumerate(zip(chunks, x, strict=True)):
            copy.write_row([i, c.document_id, c.embedding_text, v])
    conn.execute(f"VACUUM ANALYZE {name}")
    return time.perf_counter() - t0


def size(conn: psycopg.Connection, relation: str, kind: str = "relation") -> int:
    fn = {"relation": "pg_relation_size", "total": "pg_total_relation_size",
          "table": "pg_table_size"}[kind]
    return int(conn.execute(f"SELECT {fn}(%s::regclass)", (relation,)).fetchone()[0])


def pg_dense(conn: psycopg.Connection, q: np.ndarray, truth: np.ndarray, ms: list[int],
             efc: int, efs: list[int]) -> dict[str, Any]:
    sql = f"SELECT id FROM {TABLE} ORDER BY embedding <#> %s LIMIT {K}"

    def search(v: np.ndarray) -> list[int]:
        return [r[0] for r in conn.execute(sql, (v,), prepare=True).fetchall()]

    out: dict[str, Any] = {}
    timed(search, list(q[:10]))  # warm the caches, as FAISS's arrays are warm
    found, times = timed(search, list(q))
    out["exact scan"] = {**percentiles(times), "recall@10": recall(found, truth)}
    print(f"  pg exact: {out['exact scan']}", flush=True)
    for m in ms:
        conn.execute("DROP INDEX IF EXISTS bench_hnsw")
        t0 = time.perf_counter()
        conn.execute(f"CREATE INDEX bench_hnsw ON {TABLE} USING hnsw (embedding vector_ip_ops) "
                     f"WITH (m = {m}, ef_construction = {efc})")
        build = time.perf_counter() - t0
        index_bytes = size(conn, "bench_hnsw")
        for ef in efs:
            conn.execute(f"SET hnsw.ef_search = {ef}")
            timed(search, list(q[:50]))
            found, times = timed(search, list(q))
            out[f"hnsw m={m} ef_search={ef}"] = {
                "build_s": round(build, 2), "index_bytes": index_bytes, **percentiles(times),
                "recall@10": recall(found, truth)}
            print(f"  pg hnsw m={m} ef={ef}: {out[f'hnsw m={m} ef_search={ef}']}", flush=True)
    return out


def pg_updates(conn: psycopg.Connection, chunks: Sequence[Chunk], x: np.ndarray, n: int
               ) -> dict[str, Any]:
    """Delete / replace one document's rows, HNSW in place; without then with a btree."""
    rng = np.random.default_rng(1)
    rows_of: dict[str, list[int]] = {}
    for i, c in enumerate(chunks):
        rows_of.setdefault(c.document_id, []).append(i)
    doc_ids = sorted(rows_of)
    picks = [doc_ids[i] for i in rng.choice(len(doc_ids), size=2 * n, replace=False)]

    def delete(doc: str) -> None:
        with conn.transaction():
            conn.execute(f"DELETE FROM {TABLE} WHERE document_id = %s", (doc,))

    def replace(doc: str) -> None:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(f"DELETE FROM {TABLE} WHERE document_id = %s", (doc,))
            cur.executemany(
                f"INSERT INTO {TABLE} (id, document_id, text, embedding) VALUES (%s, %s, %s, %s)",
                [(i, doc, chunks[i].embedding_text, x[i]) for i in rows_of[doc]],
            )

    out: dict[str, Any] = {}
    for label in ("without btree on document_id", "with btree on document_id"):
        if label.startswith("with "):
            conn.execute(f"CREATE INDEX bench_doc ON {TABLE} (document_id)")
        # The same documents in both runs: replaced ones stay, deleted ones are put back.
        _, t_replace = timed(replace, picks[:n])
        _, t_delete = timed(delete, picks[n:])
        for doc in picks[n:]:
            replace(doc)
        out[label] = {"delete": percentiles(t_delete), "replace": percentiles(t_replace),
                      "rows_per_document": round(float(np.mean([len(rows_of[d]) for d in picks])), 2)}
        print(f"  pg updates {label}: {out[label]}", flush=True)
    return out


def fts_queries(table: str, k: int) -> dict[str, str]:
    select = f"SELECT id FROM {table}, q WHERE tsv @@ q.query ORDER BY ts_rank_cd(tsv, q.query) DESC LIMIT {k}"
    return {
        "plainto_tsquery (AND)": f"WITH q AS (SELECT plainto_tsquery('english', %s) AS query) {select}",
        "websearch_to_tsquery": f"WITH q AS (SELECT websearch_to_tsquery('english', %s) AS query) {select}",
        "plainto_tsquery, terms ORed": (
            "WITH q AS (SELECT replace(plainto_tsquery('english', %s)::text, ' & ', ' | ')::tsquery "
            f"AS query) {select}"
        ),
        "terms ORed, ts_rank (length-normalised)": (
            "WITH q AS (SELECT replace(plainto_tsquery('english', %s)::text, ' & ', ' | ')::tsquery "
            f"AS query) SELECT id FROM {table}, q WHERE tsv @@ q.query "
            f"ORDER BY ts_rank(tsv, q.query, 1) DESC LIMIT {k}"
        ),
    }


def add_fts(conn: psycopg.Connection, table: str) -> dict[str, float]:
    t0 = time.perf_counter()
    conn.execute(f"ALTER TABLE {table} ADD COLUMN tsv tsvector "
                 "GENERATED ALWAYS AS (to_tsvector('english', text)) STORED")
    column = time.perf_counter() - t0
    t0 = time.perf_counter()
    conn.execute(f"CREATE INDEX {table}_tsv ON {table} USING gin (tsv)")
    gin = time.perf_counter() - t0
    conn.execute(f"VACUUM ANALYZE {table}")
    return {"tsvector_column_s": round(column, 2), "gin_build_s": round(gin, 2),
            "gin_bytes": size(conn, f"{table}_tsv")}


def lexical_quality(dsn: str, data: Path) -> dict[str, Any]:
    """SciFact nDCG@10 of each lexical method on the whole corpus (no embeddings needed)."""
    corpus = read_jsonl(data / "corpus.jsonl")
    queries = {q["_id"]: q["text"] for q in read_jsonl(data / "queries.jsonl")}
    qrels = read_qrels(data / "qrels" / "test.tsv")
    qids = [q for q in qrels if q in queries]
    qtexts = [queries[q] for q in qids]
    chunks: list[Chunk] = []
    for d in corpus:
        doc = Document(id=str(d["_id"]), title=d.get("title") or str(d["_id"]), text=d["text"])
        chunks.extend(chunk_document(doc, max_tokens=CHUNK_TOKENS, overlap=CHUNK_OVERLAP))
    conn = connect(dsn)
    table = "bench_lexical"
    conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, text text NOT NULL)")
    with conn.cursor() as cur, cur.copy(f"COPY {table} (id, text) FROM STDIN") as copy:
        for i, c in enumerate(chunks):
            copy.write_row([i, c.embedding_text])
    out: dict[str, Any] = {"documents": len(corpus), "chunks": len(chunks), "queries": len(qids),
                           **add_fts(conn, table)}
    ndcg: dict[str, float] = {}
    latency: dict[str, Any] = {}
    for name, sql in fts_queries(table, POOL).items():
        ranked, times = timed(lambda t, s=sql: [chunks[r[0]] for r in
                                                conn.execute(s, (t,), prepare=True).fetchall()],
                              qtexts)
        ndcg[name], latency[name] = doc_ndcg(ranked, qrels, qids), percentiles(times)
    for label, kw in (("ragft BM25 (k1=1.2, b=0.75)", {}),
                      ("ragft BM25 (k1=0.9, b=0.4)", {"k1": 0.9, "b": 0.4})):
        bm25 = BM25Index.from_chunks(chunks, **kw)
        ranked, times = timed(lambda t, b=bm25: [c for c, _ in b.search(t, POOL)], qtexts)
        ndcg[label], latency[label] = doc_ndcg(ranked, qrels, qids), percentiles(times)
    conn.execute(f"DROP TABLE {table}")
    conn.close()
    out["ndcg@10"], out[f"latency top-{POOL} @ {len(chunks)}"] = ndcg, latency
    for name in ndcg:
        print(f"  {name:32} nDCG@10 {ndcg[name]:.4f}  {latency[name]}", flush=True)
    return out


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", default=os.environ.get("RAGFT_TEST_PG_DSN"))
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=RESULTS / "scifact",
                        help="knowledge base + embedding cache (shared with scifact_retrieval.py)")
    parser.add_argument("--limit", type=int, default=0, help="first N documents (smoke run)")
    parser.add_argument("--cached-only", action="store_true",
                        help="only documents already embedded in --work's cache (nDCG then is "
                             "not SciFact's: part of the corpus is missing)")
    parser.add_argument("--lexical-quality", action="store_true",
                        help="only SciFact nDCG@10 of the lexical methods, whole corpus, no vectors")
    parser.add_argument("--parts", default=",".join(ALL_PARTS),
                        help="which measurements (comma-separated): " + ", ".join(ALL_PARTS))
    parser.add_argument("--lexical-queries", type=int, default=300,
                        help="queries timed per lexical method at --rows (ORed full text is slow)")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--noise", type=float, default=0.015, help="per-dimension sigma of copies")
    parser.add_argument("--m", default="16,32")
    parser.add_argument("--ef-construction", type=int, default=64)
    parser.add_argument("--ef-search", default="40,128")
    parser.add_argument("--updates", type=int, default=30, help="documents deleted / replaced")
    args = parser.parse_args()
    if not args.dsn:
        sys.exit('no server: eval "$(bash scripts/postgres.sh start)" first, or pass --dsn')
    if args.lexical_quality:
        result = lexical_quality(args.dsn, args.data)
        path = RESULTS / "pgvector_lexical_quality.json"
        RESULTS.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2))
        print(f"wrote {path}")
        return
    ms = [int(v) for v in args.m.split(",")]
    efs = [int(v) for v in args.ef_search.split(",")]

    base_chunks, base_x, qtexts, q, qrels = load_scifact(args.data, args.work, args.limit, args.cached_only)
    qids = list(qrels)
    chunks, x = replicate(base_chunks, base_x, args.rows, args.noise)
    print(f"{len(base_chunks)} SciFact chunks -> {len(chunks)} rows (noise sigma {args.noise}); "
          f"{len(q)} test queries", flush=True)
    truth = np.argsort(-(q @ x.T), axis=1)[:, :K]
    n_base = len(base_chunks)
    first_copy = min(n_base, len(x) - n_base)
    copy_cos = (float(np.mean(np.sum(x[n_base : n_base + first_copy] * base_x[:first_copy], axis=1)))
                if first_copy > 0 else 1.0)

    out: dict[str, Any] = {"rows": len(chunks), "base_chunks": len(base_chunks),
                           "noise_sigma": args.noise, "copy_cosine_to_original": round(copy_cos, 4),
                           "queries": len(q), "ef_construction": args.ef_construction}
    parts = set(args.parts.split(","))
    if parts & {"faiss", "faiss-flat"}:
        print("FAISS", flush=True)
        out["faiss"] = bench_faiss(x, q, truth, ms, args.ef_construction, efs,
                                   hnsw="faiss" in parts)

    conn = connect(args.dsn)
    out["postgres"] = {"server": conn.execute("SHOW server_version").fetchone()[0],
                       "pgvector": conn.execute("SELECT extversion FROM pg_extension "
                                                "WHERE extname = 'vector'").fetchone()[0]}
    print(f"Postgres {out['postgres']['server']}, pgvector {out['postgres']['pgvector']}", flush=True)
    load_s = load_table(conn, TABLE, chunks, x)
    out["postgres"]["load_s"] = round(load_s, 2)
    out["postgres"]["table_bytes"] = size(conn, TABLE, "table")
    out["postgres"]["shared_buffers"] = conn.execute("SHOW shared_buffers").fetchone()[0]
    if "pg-dense" in parts:
        out["postgres"]["dense"] = pg_dense(conn, q, truth, ms, args.ef_construction, efs)
    if "updates" in parts:
        out["postgres"]["updates"] = pg_updates(conn, chunks, x, args.updates)
    out["postgres"]["total_bytes_with_indexes"] = size(conn, TABLE, "total")
    if "lexical" in parts:
        out["lexical"] = lexical_at_scale(conn, chunks, base_chunks, base_x, q, qtexts, qrels,
                                          qids, ms[-1], args.ef_construction, max(efs),
                                          args.lexical_queries)
    conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    conn.close()

    out["machine"] = {"python": platform.python_version(), "cpu": platform.machine(),
                      "cores": os.cpu_count()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "" if parts >= set(ALL_PARTS) else "_" + "_".join(sorted(parts))
    path = RESULTS / f"pgvector_engine{suffix}.json"
    path.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    print(f"wrote {path}")


def lexical_at_scale(conn: psycopg.Connection, chunks: list[Chunk], base_chunks: list[Chunk],
                     base_x: np.ndarray, q: np.ndarray, qtexts: list[str], qrels: dict,
                     qids: list[str], m: int, efc: int, ef: int, n_latency: int
                     ) -> dict[str, Any]:
    """Lexical latency at the replicated size; nDCG@10 on the unreplicated corpus."""
    print("lexical", flush=True)
    lex: dict[str, Any] = {"postgres_fts": add_fts(conn, TABLE)}
    for name, sql in fts_queries(TABLE, K).items():
        _, times = timed(lambda t, s=sql: conn.execute(s, (t,), prepare=True).fetchall(),
                         qtexts[:n_latency])
        lex[f"{name} @ {len(chunks)}"] = percentiles(times)
        print(f"  {name}: {lex[f'{name} @ {len(chunks)}']}", flush=True)
    t0 = time.perf_counter()
    bm25_big = BM25Index.from_chunks(chunks)
    lex["bm25_build_s"] = round(time.perf_counter() - t0, 2)
    _, times = timed(lambda t: bm25_big.search(t, K), qtexts[:n_latency])
    lex[f"ragft BM25 @ {len(chunks)}"] = percentiles(times)
    print(f"  bm25: {lex[f'ragft BM25 @ {len(chunks)}']}", flush=True)
    del bm25_big

    # Lexical quality on the unreplicated corpus.
    load_table(conn, BASE_TABLE, base_chunks, base_x)
    add_fts(conn, BASE_TABLE)
    ndcg: dict[str, float] = {}
    for name, sql in fts_queries(BASE_TABLE, POOL).items():
        ranked = [[base_chunks[r[0]] for r in conn.execute(sql, (t,), prepare=True).fetchall()]
                  for t in qtexts]
        ndcg[name] = doc_ndcg(ranked, qrels, qids)
    bm25 = BM25Index.from_chunks(base_chunks)
    ndcg["ragft BM25 (k1=1.2, b=0.75)"] = doc_ndcg(
        [[c for c, _ in bm25.search(t, POOL)] for t in qtexts], qrels, qids)
    # Dense quality through pgvector HNSW (last m, highest ef_search) vs exact, same corpus.
    conn.execute(f"CREATE INDEX ON {BASE_TABLE} USING hnsw (embedding vector_ip_ops) "
                 f"WITH (m = {m}, ef_construction = {efc})")
    conn.execute(f"SET hnsw.ef_search = {max(ef, POOL)}")
    sql = f"SELECT id FROM {BASE_TABLE} ORDER BY embedding <#> %s LIMIT {POOL}"
    ndcg[f"dense, pgvector hnsw m={m}"] = doc_ndcg(
        [[base_chunks[r[0]] for r in conn.execute(sql, (v,), prepare=True).fetchall()] for v in q],
        qrels, qids)
    exact = np.argsort(-(q @ base_x.T), axis=1)[:, :POOL]
    ndcg["dense, exact (numpy)"] = doc_ndcg([[base_chunks[i] for i in row] for row in exact],
                                            qrels, qids)
    lex["scifact_ndcg@10"] = ndcg
    for name, value in ndcg.items():
        print(f"  nDCG@10 {name}: {value}", flush=True)
    conn.execute(f"DROP TABLE IF EXISTS {BASE_TABLE}")
    return lex


if __name__ == "__main__":
    main()
