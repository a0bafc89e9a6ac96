"""``ragft cost estimate`` and ``ragft cost compare``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

import ragft.cli as cli
from ragft.cli._args import parse_count
from ragft.cli.cost import parse_strategy_spec
from ragft.errors import EvaluationError
from ragft.eval.harness import EvalResult, QuestionRecord, summarize


def ragft(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    # The real entry point with only this command registered (other modules are others' work).
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("cost",))
    return cli.main(argv)


def test_seed_example_from_the_command_line(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["cost", "compare", "-s", "rag=0.15", "-s", "finetuned=0.03:100", "--volumes", "500,1k,10k"]
    code = ragft(argv, monkeypatch)
    out = capsys.readouterr().out
    assert code == 0
    # 500: rag 75.00, ft 115.00; 1,000: 150.00 vs 130.00; 10,000: 1,500.00 vs 400.00.
    rows = [line.split() for line in out.splitlines()[2:5]]
    assert rows == [["500", "$75.00", "$115.00", "rag"], ["1,000", "$150.00", "$130.00", "finetuned"],
                    ["10,000", "$1,500.00", "$400.00", "finetuned"]]
    assert "rag vs finetuned: break-even at 833.33 queries/month" in out


def test_compare_from_eval_keeps_measured_cost_and_adds_fixed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    def rec(strategy: str, cost: float) -> QuestionRecord:
        return QuestionRecord(
            strategy=strategy, qid="q1", kind="factual", question="q", gold="g", answer="g",
            route=strategy, route_key=strategy, outcome="answered", abstained=False, confidence=None,
            documents=(), exact_match=1.0, f1=1.0, contains=1.0, citation_precision=None,
            citation_recall=None, recall_at_k=None, cost_usd=cost, unpriced_calls=0, calls=1,
            input_tokens=1, output_tokens=1, embedding_tokens=0, total_tokens=2, latency_s=0.1,
        )

    records = [rec("rag", 0.004), rec("finetuned", 0.001)]
    result = EvalResult("r", "", ("rag", "finetuned"), ("q1",), records,
                        {n: summarize(n, [r for r in records if r.strategy == n]) for n in ("rag", "finetuned")})
    path = result.to_json(tmp_path / "result.json")
    code = ragft(["cost", "compare", "--from-eval", str(path), "-s", "finetuned=:30", "--volumes", "1000", "--json"],
                 monkeypatch)
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["strategies"]["finetuned"] == {"cost_per_query": 0.001, "fixed_monthly": 30.0, "setup_cost": 0.0,
                                               "amortize_months": 12, "update_cost": 0.0, "updates_per_month": 0.0}
    # 30 / (0.004 - 0.001) = 10,000 queries/month.
    assert data["break_even"][0]["volume"] == pytest.approx(10_000)
    assert data["monthly"]["rag"] == [pytest.approx(4.0)]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cost", "compare"], "nothing to compare"),
        (["cost", "compare", "-s", "rag=abc"], "'abc' is not a number"),
        (["cost", "compare", "-s", "rag"], "expected NAME=COST_PER_QUERY"),
        (["cost", "compare", "-s", "rag=:100"], "no cost per query given"),
        (["cost", "estimate", "/no/such/path"], "neither a corpus directory nor a training file"),
        (["cost", "compare", "-s", "rag=0.1", "--update-frequency", "weekly"], "say what an update costs"),
        (["cost", "compare", "-s", "rag=0.1", "--update-cost", "rag=1"], "need --update-frequency"),
        (["cost", "compare", "-s", "rag=0.1", "--update-frequency", "often", "--update-cost", "rag=1"],
         "use daily, weekly"),
        (["cost", "compare", "-s", "rag=0.1", "--update-frequency", "daily", "--update-cost", "ft=1"],
         "ft, which is not being compared"),
    ],
)
def test_bad_input_is_a_clear_error(argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert ragft(argv, monkeypatch) == 2
    assert message in capsys.readouterr().err


def test_estimate_corpus_and_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nThe meal per diem is $75 per day.\n")
    assert ragft(["cost", "estimate", str(docs), "--json"], monkeypatch) == 0
    est = json.loads(capsys.readouterr().out)
    assert est["kind"] == "embedding" and est["model"] == "text-embedding-3-small" and est["items"] == 1
    assert est["cost_usd"] == pytest.approx(est["tokens"] * 0.02 / 1e6)

    train = tmp_path / "qa.jsonl"
    train.write_text("".join(json.dumps({"question": f"Q{i}?", "answer": f"A{i}."}) + "\n" for i in range(40)))
    assert ragft(["cost", "estimate", str(train), "--epochs", "3", "--model", "gpt-4o-mini"], monkeypatch) == 0
    out = capsys.readouterr().out
    assert "40 examples x 3 epochs (given)" in out and "$3.00/1M on gpt-4o-mini" in out
    assert ragft(["cost", "estimate", str(train), "--epochs", "many"], monkeypatch) == 2
    assert "--epochs must be 'auto' or a whole number" in capsys.readouterr().err


def test_bare_cost_prints_help(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert ragft(["cost"], monkeypatch) == 1
    assert "estimate" in capsys.readouterr().out


def test_parsers() -> None:
    assert [parse_count(x) for x in ("5000", "10k", "1.5m", "1_000")] == [5000, 10_000, 1_500_000, 1000]
    with pytest.raises(argparse.ArgumentTypeError):
        parse_count("-3")
    with pytest.raises(argparse.ArgumentTypeError):
        parse_count("lots")
    assert parse_strategy_spec("rag=0.15:100:$500") == ("rag", 0.15, 100.0, 500.0)
    assert parse_strategy_spec("ft=:20") == ("ft", None, 20.0, None)
    with pytest.raises(EvaluationError, match="at most three"):
        parse_strategy_spec("x=1:2:3:4")
    with pytest.raises(EvaluationError, match=">= 0"):
        parse_strategy_spec("x=-1")


def test_compare_adds_the_measured_cost_per_update(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from ragft.eval.freshness import FreshnessReport, Step, UpdateMeasurement, make_fact

    report = FreshnessReport([
        UpdateMeasurement("rag", "add", (Step("index update", 0.3, 0.0001),), True),
        UpdateMeasurement("finetune:openai", "add", (Step("training", 3600.0, 2.5),), True),
    ], make_fact())
    path = report.to_json(tmp_path / "freshness.json")
    code = ragft(["cost", "compare", "-s", "rag=0.004", "-s", "finetuned=0.001", "-s", "cascade=0.002",
                  "--volumes", "1000", "--update-frequency", "weekly", "--freshness", str(path), "--json"],
                 monkeypatch)
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    weekly = 30 / 7
    assert data["strategies"]["finetuned"]["update_cost"] == 2.5
    assert data["monthly"]["finetuned"] == [pytest.approx(1.0 + 2.5 * weekly)]
    assert data["monthly"]["rag"] == [pytest.approx(4.0 + 0.0001 * weekly)]
    # A cascade re-indexes and re-trains.
    assert data["strategies"]["cascade"]["update_cost"] == pytest.approx(2.5001)
