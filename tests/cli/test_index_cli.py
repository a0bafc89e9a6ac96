"""``ragft index`` and ``ragft search`` end to end, with a temporary home per test."""

from __future__ import annotations

import argparse
import gc
import json
from pathlib import Path

import pytest

from ragft.cli import index as index_cli

DOCS = {
    "travel.md": "# Travel\n\n## Meals\n\nThe meal per diem is $75 per day.\n",
    "leave.md": "# Leave\n\nEmployees receive 25 days of paid vacation each year.\n",
}


def run(argv: list[str]) -> int:
    # The command module on its own: the full `ragft` parser also needs every other command
    # module, which other parts of the project provide.
    parser = argparse.ArgumentParser(prog="ragft")
    index_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in DOCS.items():
        (corpus / name).write_text(text)
    path = tmp_path / "ragft.toml"
    path.write_text(
        'home = "home"\n'
        '[backend]\nprovider = "local"\n'
        '[models]\nembedding = "local/hashing-256"\n'
        '[index]\ncorpus = "corpus"\nchunk_tokens = 64\nchunk_overlap = 8\n'
    )
    return path


def test_index_reports_changes_and_costs(config, capsys) -> None:
    assert run(["index", "--config", str(config), "--quiet"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(
        "added 2, changed 0, removed 0, unchanged 0 documents; embedded 2 chunks ("
    )
    assert out.endswith("tokens, $0.000000)")  # local models are free
    assert (config.parent / "home" / "index" / "vectors" / "manifest.json").is_file()
    assert (config.parent / "home" / "ledger.jsonl").is_file()

    assert run(["index", "--config", str(config), "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == (
        "added 0, changed 0, removed 0, unchanged 2 documents; "
        "embedded 0 chunks (0 tokens, $0.000000)"
    )
    (config.parent / "corpus" / "leave.md").unlink()
    assert run(["index", "--config", str(config), "--quiet", "--rebuild", "--kind", "hnsw"]) == 0
    assert capsys.readouterr().out.startswith("added 1, changed 0, removed 0, unchanged 0")


def test_index_takes_a_directory_argument(config, tmp_path, capsys) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "one.txt").write_text("A single plain text document.")
    assert run(["index", str(other), "--config", str(config), "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("added 1,")


def test_search_prints_ranked_hits_and_json(config, capsys) -> None:
    run(["index", "--config", str(config), "--quiet"])
    capsys.readouterr()
    argv = ["search", "meal per diem", "--config", str(config), "-k", "1", "--mode", "bm25"]
    assert run(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("1. travel.md (Travel > Meals)  score=")
    assert "The meal per diem is $75 per day." in out

    assert run(["search", "vacation days", "--config", str(config), "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert hits[0]["document"] == "leave.md"
    assert set(hits[0]) == {"chunk_id", "document", "score", "snippet", "title", "position"}


def test_search_without_an_index_says_how_to_build_one(config) -> None:
    from ragft.errors import IndexStoreError

    with pytest.raises(IndexStoreError, match="ragft index"):
        run(["search", "anything", "--config", str(config)])
    assert not (config.parent / "home").exists()  # nothing created on the way



def test_search_rejects_a_zero_k(config) -> None:
    from ragft.errors import ConfigError

    run(["index", "--config", str(config), "--quiet"])
    with pytest.raises(ConfigError, match="at least 1"):
        run(["search", "meal", "--config", str(config), "-k", "0"])


# -- issue 9: losing or skipping data without saying so ------------------------------------------


def test_index_of_an_empty_directory_over_an_index_refuses_and_says_what(config, tmp_path,
                                                                      capsys) -> None:
    from ragft.errors import MassRemovalError

    assert run(["index", "--config", str(config), "--quiet"]) == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MassRemovalError, match=r"all 2 indexed documents \(leave\.md, travel\.md\)"
                                               r".*--allow-removal"):
        run(["index", str(empty), "--config", str(config), "--quiet"])
    capsys.readouterr()
    assert run(["index", "--config", str(config), "--quiet"]) == 0
    assert "unchanged 2" in capsys.readouterr().out  # nothing was removed
    assert run(["index", str(empty), "--config", str(config), "--quiet", "--allow-removal"]) == 0
    assert capsys.readouterr().out.startswith("added 0, changed 0, removed 2")


def test_index_skips_unreadable_files_lists_them_and_exits_non_zero(config, capsys) -> None:
    corpus = config.parent / "corpus"
    (corpus / "latin1.md").write_bytes("# Café\n\ncrème".encode("latin-1"))
    (corpus / "elf.json").write_bytes(b"\x7fELF\x02\x01\x01\x00\x00")
    (corpus / "UPPER.MD").write_text("# Upper\n\nan upper-case extension")
    (corpus / "page.html").write_text("<p>not read</p>")
    assert run(["index", "--config", str(config), "--quiet"]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("added 3, changed 0, removed 0")
    assert "skipped elf.json: looks like a binary file" in captured.err
    assert "skipped latin1.md: not valid UTF-8" in captured.err
    assert "skipped page.html: unsupported file type '.html'" in captured.err
    from ragft.errors import DocumentError

    with pytest.raises(DocumentError, match="elf.json"):
        run(["index", "--config", str(config), "--quiet", "--strict"])


def test_index_of_an_empty_directory_is_an_error(config, tmp_path) -> None:
    from ragft.errors import DocumentError

    empty = tmp_path / "nothing"
    empty.mkdir()
    with pytest.raises(DocumentError, match="no documents to index"):
        run(["index", str(empty), "--config", str(config), "--quiet"])


def test_rebuild_repairs_a_truncated_embedding_cache(config, capsys) -> None:
    from ragft.errors import IndexStoreError

    assert run(["index", "--config", str(config), "--quiet"]) == 0
    cache = config.parent / "home" / "index" / "embeddings.sqlite"
    # The finished run's connection closes (and checkpoints its WAL into the file) when
    # collected, as it would at process exit: let that happen before damaging the file.
    gc.collect()
    for extra in cache.parent.glob("embeddings.sqlite-*"):  # WAL side files
        extra.unlink()
    cache.write_bytes(cache.read_bytes()[:1000])
    (config.parent / "corpus" / "new.md").write_text("# New\n\nneeds the cache")
    with pytest.raises(IndexStoreError, match=r"embeddings\.sqlite.*ragft index --rebuild"):
        run(["index", "--config", str(config), "--quiet"])
    capsys.readouterr()
    assert run(["index", "--config", str(config), "--quiet", "--rebuild"]) == 0
    assert capsys.readouterr().out.startswith("added 3,")
    assert (cache.parent / "embeddings.sqlite.damaged").is_file()  # kept aside, not deleted
    assert run(["search", "meal per diem", "--config", str(config), "-k", "1"]) == 0


def test_a_deleted_manifest_reads_as_a_damaged_index_not_an_empty_one(config) -> None:
    from ragft.errors import IndexStoreError

    assert run(["index", "--config", str(config), "--quiet"]) == 0
    (config.parent / "home" / "index" / "vectors" / "manifest.json").unlink()
    for argv in (["search", "meal", "--config", str(config)],
                 ["index", "--config", str(config), "--quiet"]):
        with pytest.raises(IndexStoreError, match=r"damaged.*manifest\.json.*--rebuild"):
            run(argv)
    assert run(["index", "--config", str(config), "--quiet", "--rebuild"]) == 0


def test_search_refuses_a_k_above_the_configured_cap_like_ask(config, capsys) -> None:
    from ragft.config import load_config
    from ragft.errors import ConfigError

    run(["index", "--config", str(config), "--quiet"])
    with pytest.raises(ConfigError, match=r"at most 100.*\[retrieval\] top_k"):
        run(["search", "meal", "--config", str(config), "-k", "100000"])
    # The same cap as the config `ask` reads.
    with pytest.raises(ConfigError, match="top_k"):
        load_config(config, overrides={"retrieval.top_k": 100000})
    capsys.readouterr()
    assert run(["search", "meal", "--config", str(config), "-k", "100", "--json"]) == 0
    assert 1 <= len(json.loads(capsys.readouterr().out)) <= 100
