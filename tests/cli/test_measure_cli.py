"""``ragft measure freshness`` and ``ragft measure context`` end to end on an offline project."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ragft.cli as cli
from ragft.config import load_config

DOCS = {
    "travel.md": "# Travel\n\n## Meals\n\nThe meal per diem is $75 per day.\n\n## Hotels\n\nHotels are capped at $220 per night.\n",
    "leave.md": "# Leave\n\nEmployees receive 25 days of paid vacation each year.\n",
    "webhooks.md": "# Webhooks\n\nFailed deliveries are retried with exponential backoff for up to 24 hours.\n",
}
QUESTIONS = [
    {"id": "e1", "question": "What is the meal per diem?", "answer": "$75 per day", "sources": ["travel.md"],
     "kind": "factual"},
    {"id": "e2", "question": "How many days of paid vacation do employees receive?", "answer": "25 days",
     "sources": ["leave.md"], "kind": "factual"},
]


@pytest.fixture(autouse=True)
def _no_home_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAGFT_HOME", raising=False)


def ragft(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("measure",))
    return cli.main(argv)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in DOCS.items():
        (corpus / name).write_text(text)
    (tmp_path / "questions.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    (tmp_path / "ragft.toml").write_text(
        'home = "home"\n[backend]\nprovider = "local"\n[models]\nembedding = "local/hashing-256"\n'
        '[index]\ncorpus = "corpus"\nchunk_tokens = 64\nchunk_overlap = 8\n[retrieval]\nmode = "bm25"\n'
    )
    from ragft.components import build_meter, open_knowledge_base

    cfg = load_config(tmp_path / "ragft.toml", env={})
    open_knowledge_base(cfg, build_meter(cfg, ledger=False)).sync(cfg.corpus_path, progress=False)
    return tmp_path


def test_context_curve_with_simulated_prices(project: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = project / "ctx"
    code = ragft(["measure", "context", "-c", str(project / "ragft.toml"), "-q", str(project / "questions.jsonl"),
                  "--depths", "1,2", "--out", str(out), "--no-progress", "--price-as", "gpt-4.1-mini"], monkeypatch)
    captured = capsys.readouterr()
    assert code == 0
    assert captured.out.startswith("SIMULATED PRICES: local models charged as gpt-4.1-mini")
    data = json.loads((out / "context_curve.json").read_text())
    assert [p["top_k"] for p in data["points"]] == [1, 2]
    assert all(p["cost_per_query"] > 0 for p in data["points"])  # simulated, not $0
    assert data["simulated_prices"] == "gpt-4.1-mini / text-embedding-3-small"
    assert (out / "context_curve.png").exists()
    ledger = [json.loads(x) for x in (out / "ledger.jsonl").read_text().splitlines()]
    assert ledger and all(x["cost_usd"] is not None for x in ledger)
    assert {x["tags"]["simulated_prices"] for x in ledger} == {"gpt-4.1-mini / text-embedding-3-small"}


def test_freshness_leaves_the_users_state_alone(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    def state() -> dict[str, bytes]:
        # The embedding cache (SQLite) checkpoints its WAL when the fixture's connection closes;
        # the index itself (vectors, chunks, manifest) must not change.
        return {str(p): p.read_bytes() for p in (project / "home").rglob("*")
                if p.is_file() and ".sqlite" not in p.name}

    before = state()
    out = project / "fresh"
    code = ragft(["measure", "freshness", "-c", str(project / "ragft.toml"), "--out", str(out), "--json"],
                 monkeypatch)
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [(m["approach"], m["change"], m["correct"]) for m in data["measurements"]] == [
        ("rag", "add", True), ("rag", "change", True), ("finetune:local", "add", True),
        ("finetune:local", "change", True)]
    assert json.loads((out / "freshness.json").read_text())["per_update"]["rag"]["seconds"] > 0
    assert state() == before
    assert not any("late_night_courier" in p.name for p in (project / "corpus").rglob("*"))


def test_bad_depths_are_refused(project: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    assert ragft(["measure", "context", "-c", str(project / "ragft.toml"), "--depths", "0,3"], monkeypatch) == 2
    assert "between 1 and 100" in capsys.readouterr().err
