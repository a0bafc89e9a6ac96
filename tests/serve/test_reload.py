"""Index hot reload: ``ragft index`` saves a new version, the running server answers from it
without a restart; a version that cannot be loaded leaves the previous one serving."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import openai

from ragft.cli import main
from ragft.rag.knowledge import INDEX_DIR, KnowledgeBase
from ragft.serve import BackgroundServer

NEW_DOC = "# Parking\n\nThe visitor parking garage is on level B3 and closes at 22:00.\n"
QUESTION = "Where is the visitor parking garage?"


def _wait_for(predicate, what: str, timeout_s: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def _health(server: BackgroundServer) -> dict:  # type: ignore[type-arg]
    return httpx.get(f"{server.url}/healthz").json()


def test_the_server_picks_up_a_new_index_and_survives_a_broken_one(
    tmp_path: Path, corpus: Path, make_config, keys: tuple[str, ...]
) -> None:
    corpus_copy = tmp_path / "corpus"
    shutil.copytree(corpus, corpus_copy)
    home = tmp_path / "home"
    cfg = make_config(home=home, corpus=corpus_copy, reload_interval_s=0.1)
    config_file = tmp_path / "serve.toml"
    assert main(["index", "--config", str(config_file), "-q"]) == 0
    with BackgroundServer(cfg, strategies=["rag"]) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key=keys[0], max_retries=0)
        ask = lambda: client.chat.completions.create(  # noqa: E731
            model="rag", messages=[{"role": "user", "content": QUESTION}]
        )
        before = _health(server)["index_version"]
        assert all(s["document"] != "facilities/parking.md" for s in ask().model_extra["ragft"]["sources"])

        (corpus_copy / "facilities").mkdir()
        (corpus_copy / "facilities" / "parking.md").write_text(NEW_DOC, "utf-8")
        assert main(["index", "--config", str(config_file), "-q"]) == 0
        saved = KnowledgeBase.saved_version(cfg.index_path)
        assert saved != before
        _wait_for(lambda: _health(server)["index_version"] == saved, "the reload")
        answer = ask()
        assert "B3" in answer.choices[0].message.content
        assert answer.model_extra["ragft"]["sources"][0]["document"] == "facilities/parking.md"

        # A version that cannot be loaded (here: a file corrupted after the save) is refused,
        # and the previous one keeps answering.
        chunks = cfg.index_path / INDEX_DIR / "chunks.jsonl"
        chunks.write_bytes(chunks.read_bytes()[:-10])
        manifest = cfg.index_path / INDEX_DIR / "manifest.json"
        manifest.write_text(manifest.read_text("utf-8").replace('"saved_at"', '"saved_at_"'), "utf-8")
        _wait_for(lambda: _health(server)["last_reload_error"], "the failed reload")
        health = _health(server)
        assert "rag" in health["models"]
        assert "B3" in ask().choices[0].message.content
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'ragft_index_reloads_total{result="error"} 1' in metrics
        assert 'ragft_index_reloads_total{result="ok"} 1' in metrics

        # The next good save is picked up again.
        assert main(["index", "--config", str(config_file), "-q", "--rebuild"]) == 0
        _wait_for(lambda: not _health(server)["last_reload_error"], "recovery")
        assert "B3" in ask().choices[0].message.content
