"""What only a database server can do wrong: versions, dimensions, dropped connections, an
unreachable server, several machines (processes with their own homes) writing one store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ragft.errors import ConfigError, IndexStoreError
from ragft.models.local import HashingEmbedder
from ragft.rag.knowledge import KnowledgeBase
from ragft.rag.stores.pgvector import SCHEMA_VERSION, PgVectorStore, safe_dsn


def open_store(dsn: str, table: str, dimension: int = 128, **kw) -> PgVectorStore:  # type: ignore[no-untyped-def]
    return PgVectorStore.open(dsn, embedder=f"local/hashing-{dimension}", dimension=dimension,
                              table=table, **kw)


def kb_on(tmp_path: Path, dsn: str, table: str, embedder) -> KnowledgeBase:  # type: ignore[no-untyped-def]
    return KnowledgeBase.open(
        tmp_path / "kb", embedder, chunk_tokens=60, chunk_overlap=10,
        store=lambda e: PgVectorStore.open(dsn, embedder=e.name, dimension=e.dimension, table=table),
    )


def terminate(dsn: str, store: PgVectorStore) -> None:
    """Kill the store's server process, as a server restart or a network cut would."""
    import psycopg

    pid = store._connection().info.backend_pid
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])


def test_an_embedder_of_another_dimension_is_refused_naming_both(pg_dsn, pg_table) -> None:
    open_store(pg_dsn, pg_table, 128).close()
    with pytest.raises(IndexStoreError, match=r"'local/hashing-128' \(128 dimensions\).*"
                                              r"'local/hashing-64' \(64 dimensions\)"):
        open_store(pg_dsn, pg_table, 64)


def test_a_schema_of_another_version_is_refused(pg_dsn, pg_table) -> None:
    import psycopg

    open_store(pg_dsn, pg_table).close()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"UPDATE {pg_table}_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(IndexStoreError, match=f"schema version 99, this ragft reads version "
                                              f"{SCHEMA_VERSION}"):
        open_store(pg_dsn, pg_table)


def test_vectors_are_stored_plain_with_hnsw_and_a_document_id_index(pg_dsn, pg_table) -> None:
    import psycopg

    open_store(pg_dsn, pg_table, hnsw_m=24, hnsw_ef_construction=100).close()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        storage = conn.execute(
            "SELECT attstorage FROM pg_attribute WHERE attrelid = %s::regclass "
            "AND attname = 'embedding'", [f"{pg_table}_chunks"]).fetchone()[0]
        indexes = dict(conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s",
            [f"{pg_table}_chunks"]).fetchall())
    assert storage == "p"  # PLAIN
    assert "hnsw (embedding vector_ip_ops) WITH (m='24', ef_construction='100')" in \
        indexes[f"{pg_table}_chunks_hnsw"]
    assert "btree (document_id)" in indexes[f"{pg_table}_chunks_document_id"]


def test_a_dropped_connection_during_a_query_is_retried_once(pg_dsn, pg_table, corpus_dir,
                                                            embedder, tmp_path) -> None:
    kb = kb_on(tmp_path, pg_dsn, pg_table, embedder)
    kb.sync(corpus_dir, progress=False)
    terminate(pg_dsn, kb.store)  # type: ignore[arg-type]
    hits = kb.retriever(mode="dense", top_k=1).retrieve("webhooks retried")
    assert hits[0].chunk.document_id == "product/webhooks.md"


def test_server_gone_mid_sync_is_a_clear_error_and_a_rerun_completes(pg_dsn, pg_table,
                                                                      corpus_dir, tmp_path) -> None:
    class CutAfterEmbedding(HashingEmbedder):
        """Embeds, then cuts the store's connection: the writes that follow find it gone."""

        store: PgVectorStore | None = None

        def embed(self, texts, *, kind="document"):  # type: ignore[no-untyped-def]
            result = super().embed(texts, kind=kind)
            if kind == "document" and self.store is not None:
                terminate(pg_dsn, self.store)
            return result

    cutter = CutAfterEmbedding(128)
    kb = kb_on(tmp_path / "one", pg_dsn, pg_table, cutter)
    cutter.store = kb.store  # type: ignore[assignment]
    with pytest.raises(IndexStoreError, match=r"PostgreSQL at ragft@127\.0\.0\.1:\d+/ragft failed "
                                              r"while .*run again") as err:
        kb.sync(corpus_dir, progress=False)
    assert "password" not in str(err.value)
    fresh = kb_on(tmp_path / "two", pg_dsn, pg_table, HashingEmbedder(128))
    assert fresh.document_ids() == []  # nothing half-applied
    assert len(fresh.sync(corpus_dir, progress=False).added) == 4


def test_an_unreachable_server_names_it_without_the_password(pg_dsn) -> None:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    info = conninfo_to_dict(pg_dsn)
    password = info["password"]
    dead = make_conninfo(pg_dsn, port="1", connect_timeout="2")
    with pytest.raises(IndexStoreError, match=r"ragft@127\.0\.0\.1:1/ragft failed while "
                                              r"connecting") as err:
        PgVectorStore.open(dead, embedder="e", dimension=8)
    assert password not in str(err.value)
    store = PgVectorStore(pg_dsn, embedder="e", dimension=8)
    assert password not in repr(store) and password not in safe_dsn(pg_dsn)


def write_config(path: Path, home: str, table: str) -> Path:
    path.write_text(
        f'home = "{home}"\n[backend]\nprovider = "local"\n[models]\nembedding = "local/hashing-128"\n'
        f'[index]\ncorpus = "corpus"\nchunk_tokens = 60\nchunk_overlap = 10\n'
        f'backend = "pgvector"\ntable = "{table}"\n'
    )
    return path


def test_the_cli_indexes_and_searches_through_pgvector_and_never_prints_the_password(
    pg_dsn, pg_table, corpus_dir, tmp_path
) -> None:
    config = write_config(tmp_path / "ragft.toml", "home", pg_table)
    env = {**os.environ, "RAGFT_PG_DSN": pg_dsn, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    run = lambda *argv: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "ragft", *argv, "--config", str(config)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    indexed = run("index")
    assert indexed.returncode == 0, indexed.stderr
    assert indexed.stdout.startswith("added 4,")
    assert f"hnsw (local/hashing-128) at pgvector table {pg_table!r} on ragft@127.0.0.1" in indexed.stderr
    searched = run("search", "meal per diem", "-k", "1")
    assert searched.returncode == 0 and searched.stdout.startswith("1. policies/travel.md")
    password = __import__("psycopg").conninfo.conninfo_to_dict(pg_dsn)["password"]
    for out in (indexed, searched):
        assert password not in out.stdout + out.stderr
    assert not (tmp_path / "home" / "index" / "vectors").exists()  # no FAISS files


def test_without_a_dsn_the_error_names_the_variable(tmp_path, monkeypatch) -> None:
    from ragft.components import build_meter, open_knowledge_base
    from ragft.config import load_config

    config = write_config(tmp_path / "ragft.toml", "home", "ragft")
    cfg = load_config(config, env={})
    with pytest.raises(ConfigError, match="RAGFT_PG_DSN"):
        open_knowledge_base(cfg, build_meter(cfg, ledger=False))


def test_two_machines_indexing_one_corpus_at_once_embed_it_once(pg_dsn, pg_table, corpus_dir,
                                                                tmp_path) -> None:
    # Two homes = two machines: no shared embedding cache, only the database.
    configs = [write_config(tmp_path / f"m{i}.toml", f"home{i}", pg_table) for i in (1, 2)]
    env = {**os.environ, "RAGFT_PG_DSN": pg_dsn}
    procs = [
        subprocess.Popen([sys.executable, "-m", "ragft", "index", "--config", str(c), "--quiet"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         cwd=tmp_path)
        for c in configs
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    added = sorted(int(out.split("added ")[1].split(",")[0]) for out, _ in outs)
    embedded = sorted(int(out.split("embedded ")[1].split(" ")[0]) for out, _ in outs)
    assert added == [0, 4] and embedded[0] == 0 < embedded[1]
    store = open_store(pg_dsn, pg_table)
    assert len(store.documents()) == 4
