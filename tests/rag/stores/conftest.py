"""Both store backends behind one fixture: every test taking ``open_kb`` runs on each.

Tests that need PostgreSQL skip with the reason when ``RAGFT_TEST_PG_DSN`` is unset (CI
always sets it: ``.ci/run`` starts a throwaway server with ``scripts/postgres.sh``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ragft.rag.knowledge import KnowledgeBase

PG_SKIP = (
    "RAGFT_TEST_PG_DSN is not set: start a throwaway server with "
    '`eval "$(bash scripts/postgres.sh start)"` to run the pgvector tests'
)

OpenKB = Callable[..., KnowledgeBase]


@pytest.fixture
def pg_dsn() -> str:
    """The test server's DSN, or a skip saying how to get one."""
    dsn = os.environ.get("RAGFT_TEST_PG_DSN")
    if not dsn:
        pytest.skip(PG_SKIP)
    return dsn


@pytest.fixture
def pg_table(pg_dsn: str) -> Iterator[str]:
    """A fresh table prefix, dropped after the test."""
    from ragft.rag.stores.pgvector import PgVectorStore

    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    store = PgVectorStore(pg_dsn, embedder="", dimension=1, table=name)
    store.drop()
    store.close()


@pytest.fixture(params=["faiss", "pgvector"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_kb(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> OpenKB:
    """``open_kb(embedder, **kw)``: a knowledge base on the parametrised backend; every call
    opens the same store (as another process would)."""
    if backend == "faiss":
        def open_faiss(embedder, **kw) -> KnowledgeBase:  # type: ignore[no-untyped-def]
            return KnowledgeBase.open(tmp_path / "kb", embedder, chunk_tokens=60,
                                      chunk_overlap=10, **kw)

        return open_faiss
    dsn = request.getfixturevalue("pg_dsn")
    table = request.getfixturevalue("pg_table")
    from ragft.rag.stores.pgvector import PgVectorStore

    def open_pg(embedder, *, rebuild: bool = False, create: bool = True, **kw) -> KnowledgeBase:  # type: ignore[no-untyped-def]
        return KnowledgeBase.open(
            tmp_path / "kb", embedder, chunk_tokens=60, chunk_overlap=10, rebuild=rebuild,
            create=create,
            store=lambda e: PgVectorStore.open(dsn, embedder=e.name, dimension=e.dimension,
                                               table=table, rebuild=rebuild, create=create),
            **kw,
        )

    return open_pg
