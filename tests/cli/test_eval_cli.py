"""``ragft eval`` end to end: offline config, real index, real strategies, files written."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import ragft.cli as cli
from ragft.config import load_config



DOCS = {
    "travel.md": (
        "# Travel\n\n## Meals\n\nThe meal per diem is $75 per day.\n\n"
        "## Hotels\n\nHotels are capped at $220 per night.\n"
    ),
    "leave.md": "# Leave\n\nEmployees receive 25 days of paid vacation each year.\n",
    "webhooks.md": "# Webhooks\n\nFailed deliveries are retried with exponential backoff for up to 24 hours.\n",
}
QUESTIONS = [
    {"id": "e1", "question": "What is the meal per diem?", "answer": "$75 per day", "sources": ["travel.md"],
     "kind": "factual"},
    {"id": "e2", "question": "How many days of paid vacation do employees receive?", "answer": "25 days",
     "sources": ["leave.md"], "kind": "factual"},
    {"id": "e3", "question": "What is the capital of Mongolia?", "answer": "", "sources": [], "kind": "out_of_scope"},
    {"id": "e4", "question": "How are failed webhook deliveries retried?",
     "answer": "with exponential backoff for up to 24 hours", "sources": ["webhooks.md"], "kind": "procedural"},
]


@pytest.fixture(autouse=True)
def _no_home_override(monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI reads the real environment; RAGFT_HOME would move the index away from the test's.
    monkeypatch.delenv("RAGFT_HOME", raising=False)


def ragft(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    # The real `ragft` entry point (error handling included), with only the command modules
    # these tests need: the others belong to other parts of the project.
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("eval",))
    return cli.main(argv)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A temporary home with an offline config, a corpus and a question file."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in DOCS.items():
        (corpus / name).write_text(text)
    (tmp_path / "questions.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    config = (
        'home = "home"\n[backend]\nprovider = "local"\n[models]\nembedding = "local/hashing-256"\n'
        '[index]\ncorpus = "corpus"\nchunk_tokens = 64\nchunk_overlap = 8\n'
    )
    (tmp_path / "ragft.toml").write_text(config)
    (tmp_path / "bm25.toml").write_text(config + '[retrieval]\nmode = "bm25"\ntop_k = 2\n')
    return tmp_path


def build_index(project: Path) -> None:
    from ragft.components import build_meter, open_knowledge_base

    cfg = load_config(project / "ragft.toml", env={})
    open_knowledge_base(cfg, build_meter(cfg, ledger=False)).sync(cfg.corpus_path, progress=False)


def test_eval_end_to_end(project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    build_index(project)
    out = project / "out"
    code = ragft(["eval", "--config", str(project / "ragft.toml"), "--questions", str(project / "questions.jsonl"),
                  "--strategies", "rag,base", "--out", str(out), "--no-progress"], monkeypatch)
    printed = capsys.readouterr().out
    assert code == 0
    assert printed.splitlines()[0].split() == ["rag", "base"]
    assert "costs: every strategy's total equals its ledger roll-up" in printed
    for name in ("result.json", "results.csv", "quality_vs_cost.png", "ledger.jsonl"):
        assert (out / name).exists(), name
    result = json.loads((out / "result.json").read_text())
    assert result["strategies"] == ["rag", "base"] and result["ledger_path"] == str(out / "ledger.jsonl")
    assert all(c["ok"] for c in result["cost_check"].values())
    assert result["summaries"]["rag"]["recall_at_k"] is not None  # RAG retrieved
    assert result["summaries"]["base"]["recall_at_k"] is None  # the base model alone did not
    with (out / "results.csv").open(newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 2 * len(QUESTIONS)
    # Every call in the ledger belongs to one of the two strategies, on a question or a probe.
    lines = [json.loads(x) for x in (out / "ledger.jsonl").read_text().splitlines()]
    owners = {x["tags"].get("eval_strategy") or x["tags"]["eval_probe"] for x in lines}
    assert lines and owners <= {"rag", "base"}
    # Failure modes: per strategy in result.json and failure_modes.csv, per question in the CSV.
    assert set(result["failure_modes"]) == {"rag", "base"}
    assert result["failure_modes"]["base"]["modes"]["retrieval_miss"]["count"] is None  # no retrieval
    assert result["failure_modes"]["rag"]["modes"]["retrieval_miss"]["of"] == 3
    with (out / "failure_modes.csv").open(newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 2 * 7
    assert "failure modes" in printed and "buried [rag]" in printed


def test_eval_kinds_limit_and_ab(project: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    build_index(project)
    out = project / "ab"
    code = ragft(["eval", "-c", str(project / "ragft.toml"), "-q", str(project / "questions.jsonl"),
                  "-s", "rag", "--kinds", "factual,procedural", "--limit", "2", "--out", str(out),
                  "--no-progress", "--ab", str(project / "bm25.toml")], monkeypatch)
    printed = capsys.readouterr().out
    assert code == 0
    assert "A/B: A = rag @ ragft.toml, B = rag @ bm25.toml; n = 2 paired questions" in printed
    report = json.loads((out / "ab.json").read_text())["reports"][0]
    assert report["n"] == 2 and 0.0 <= report["mcnemar_p"] <= 1.0
    assert json.loads((out / "b" / "result.json").read_text())["question_ids"] == ["e1", "e2"]


def test_unknown_strategy_is_a_clear_error(project: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code = ragft(["eval", "-c", str(project / "ragft.toml"), "-q", str(project / "questions.jsonl"),
                  "-s", "rag,telepathy", "--out", str(project / "o")], monkeypatch)
    err = capsys.readouterr().err
    assert code == 2 and "unknown strategy telepathy" in err and "available:" in err


def test_bad_question_file_is_a_clear_error(project: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    bad = project / "bad.jsonl"
    bad.write_text('{"id": "x", "question": "Q?", "answer": "A", "kind": "riddle"}\n')
    code = ragft(["eval", "-c", str(project / "ragft.toml"), "-q", str(bad)], monkeypatch)
    assert code == 2 and "bad.jsonl line 1: unknown kind 'riddle'" in capsys.readouterr().err


def test_judge_needs_the_openai_backend(project: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code = ragft(["eval", "-c", str(project / "ragft.toml"), "-q", str(project / "questions.jsonl"),
                  "--judge", "--out", str(project / "o")], monkeypatch)
    assert code == 2 and "--judge needs a real chat model" in capsys.readouterr().err
    assert not (project / "o" / "result.json").exists()


def test_an_unusable_out_directory_is_a_clear_error(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    taken = project / "a_file"
    taken.write_text("not a directory")
    code = ragft(["eval", "-c", str(project / "ragft.toml"), "-q", str(project / "questions.jsonl"),
                  "-s", "rag", "--out", str(taken), "--no-progress"], monkeypatch)
    err = capsys.readouterr().err
    assert code == 2 and "cannot create the output directory" in err and str(taken) in err


def test_failed_questions_are_explained_not_just_counted(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    # An unreachable chat server makes every answer fail. The table alone showed "errors 4"
    # and zero scores; the reason is printed too (once per distinct error).
    build_index(project)
    broken = project / "broken.toml"
    config = (project / "ragft.toml").read_text()
    broken.write_text(config.replace(
        'provider = "local"\n',
        'provider = "openai"\nbase_url = "http://127.0.0.1:9/v1"\nmax_retries = 0\ntimeout_s = 2\n',
    ).replace("[models]\n", '[models]\nchat = "gpt-4.1-mini"\n'))
    code = ragft(["eval", "-c", str(broken), "-q", str(project / "questions.jsonl"),
                  "-s", "rag", "--out", str(project / "o"), "--no-progress"], monkeypatch)
    captured = capsys.readouterr()
    err = captured.err
    assert "rag: 4 of 4 questions failed" in err and "ModelUnavailableError" in err
    # Every question failed: not a measurement, so not a success either.
    assert code == 4 and "rag answered none of its questions" in err
    wrote = captured.out.split("\nwrote ", 1)[1].strip().split(", ")
    assert all(Path(p).exists() for p in wrote)


def test_only_files_that_exist_are_named(project: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    # The base model alone against a server that is down: no call is ever metered, so there is
    # no ledger file, and the run must not claim one.
    broken = project / "broken.toml"
    broken.write_text((project / "ragft.toml").read_text().replace(
        'provider = "local"\n',
        'provider = "openai"\nbase_url = "http://127.0.0.1:9/v1"\nmax_retries = 0\ntimeout_s = 2\n',
    ).replace("[models]\n", '[models]\nchat = "gpt-4.1-mini"\n'))
    out = project / "o"
    code = ragft(["eval", "-c", str(broken), "-q", str(project / "questions.jsonl"),
                  "-s", "base", "--out", str(out), "--no-progress"], monkeypatch)
    printed = capsys.readouterr().out
    assert code == 4
    wrote = printed.split("\nwrote ", 1)[1].strip().split(", ")
    assert not (out / "ledger.jsonl").exists() and str(out / "ledger.jsonl") not in wrote
    assert str(out / "result.json") in wrote and all(Path(p).exists() for p in wrote)


def test_a_run_that_fails_before_writing_leaves_no_empty_folder(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    # No index yet: building the strategies fails before any file is written.
    out = project / "runs" / "first"
    code = ragft(["eval", "-c", str(project / "ragft.toml"), "-q", str(project / "questions.jsonl"),
                  "-s", "rag", "--out", str(out), "--no-progress"], monkeypatch)
    assert code != 0 and capsys.readouterr().err
    assert not out.exists() and not (project / "runs").exists()


def test_simulated_prices_are_marked_in_every_output(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    build_index(project)
    out = project / "sim"
    code = ragft(["eval", "-c", str(project / "ragft.toml"), "-q", str(project / "questions.jsonl"), "-s", "rag",
                  "--out", str(out), "--no-progress", "--no-probes", "--price-as", "gpt-4.1-mini"], monkeypatch)
    printed = capsys.readouterr().out
    assert code == 0
    label = "gpt-4.1-mini / text-embedding-3-small"
    assert "cost / query [SIMULATED]" in printed and f"SIMULATED PRICES: local models charged as {label}" in printed
    result = json.loads((out / "result.json").read_text())
    assert result["meta"]["simulated_prices"] == label
    assert result["summaries"]["rag"]["cost_per_query"] > 0  # local calls now carry a (simulated) price
    with (out / "results.csv").open(newline="") as fh:
        assert {row["price_basis"] for row in csv.DictReader(fh)} == {f"SIMULATED: local models priced as {label}"}
    ledger = [json.loads(x) for x in (out / "ledger.jsonl").read_text().splitlines()]
    assert {x["tags"]["simulated_prices"] for x in ledger} == {label}
    # Without --price-as, local models cost nothing and nothing says "simulated".
    assert ragft(["eval", "-c", str(project / "ragft.toml"), "-q", str(project / "questions.jsonl"), "-s", "rag",
                  "--out", str(project / "real"), "--no-progress", "--no-probes"], monkeypatch) == 0
    assert "SIMULATED" not in capsys.readouterr().out
