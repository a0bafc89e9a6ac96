"""``ragft decide``: flags, interactive prompts on a terminal, defaults off one, --eval."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

import ragft.cli as cli
from ragft.eval.harness import EvalResult, QuestionRecord, summarize


def ragft(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("decide",))
    return cli.main(argv)


class Terminal(io.StringIO):
    """Typed answers on a stdin that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def piped_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    # Default for every test: stdin is a pipe, as under CI.
    monkeypatch.setattr("sys.stdin", io.StringIO(""))


def test_all_answers_as_flags(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code = ragft(["decide", "--knowledge-changes", "no", "--citations", "no", "--volume", "150k",
                  "--format-critical", "no", "--examples", "800"], monkeypatch)
    captured = capsys.readouterr()
    assert code == 0
    assert captured.out.startswith("The guide's answer (decision flowchart): Use Fine-tuning")
    assert ">100K queries/month? Yes (150,000)" in captured.out
    assert "ragft's refinement (not part of the guide): finetuned" in captured.out
    assert "Assumed" not in captured.out and captured.err == ""


def test_without_a_terminal_missing_answers_use_defaults_and_say_so(monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code = ragft(["decide", "--citations", "yes"], monkeypatch)
    captured = capsys.readouterr()
    assert code == 0
    assert "stdin is not a terminal; not answered: knowledge-changes, volume, format-critical, examples" in captured.err
    assert captured.out.startswith("The guide's answer (decision flowchart): Use RAG")
    assert "training examples available: none" in captured.out


def test_on_a_terminal_missing_answers_are_asked(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # knowledge changes: "maybe" is refused and asked again -> "yes"; citations "n";
    # volume "200k"; format critical "?" (don't know); examples "1,000".
    monkeypatch.setattr("sys.stdin", Terminal("maybe\nyes\nn\n200k\n?\n1000\n"))
    code = ragft(["decide"], monkeypatch)
    captured = capsys.readouterr()
    assert code == 0
    assert captured.err.count("Does the knowledge change often") == 2
    assert "answer yes, no or unknown" in captured.err
    assert captured.out.startswith("The guide's answer (decision flowchart): Use RAG")
    assert "Knowledge changes frequently? Yes\n  -> Use RAG" in captured.out
    assert "format/style consistency critical: no" in captured.out  # the "?" became an assumption


def test_no_input_never_prompts(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", Terminal("yes\n"))
    assert ragft(["decide", "--no-input", "--json"], monkeypatch) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["recommendation"] == "rag" and len(data["assumptions"]) == 5


def test_bad_flag_value_is_refused(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        ragft(["decide", "--citations", "perhaps"], monkeypatch)
    assert info.value.code == 2 and "answer yes, no or unknown" in capsys.readouterr().err


def test_eval_backs_or_contradicts_the_pick(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    def rec(strategy: str, qid: str, f1: float, cost: float) -> QuestionRecord:
        return QuestionRecord(
            strategy=strategy, qid=qid, kind="factual", question="q", gold="g", answer="a",
            route=strategy, route_key=strategy, outcome="answered", abstained=False, confidence=None,
            documents=("a.md",) if strategy == "rag" else (), exact_match=0.0, f1=f1, contains=0.0,
            citation_precision=None, citation_recall=None, recall_at_k=1.0 if strategy == "rag" else None,
            cost_usd=cost, unpriced_calls=0, calls=1, input_tokens=1, output_tokens=1,
            embedding_tokens=0, total_tokens=2, latency_s=0.1, gold_sources=("a.md",),
        )

    records = [rec("rag", "q1", 0.9, 0.004), rec("finetuned", "q1", 0.3, 0.001)]
    result = EvalResult("r", "", ("rag", "finetuned"), ("q1",), records,
                        {n: summarize(n, [r for r in records if r.strategy == n]) for n in ("rag", "finetuned")},
                        meta={"strategy_kinds": {"rag": "rag", "finetuned": "finetuned"}})
    path = result.to_json(tmp_path / "result.json")
    code = ragft(["decide", "--knowledge-changes", "no", "--citations", "no", "--volume", "500k",
                  "--format-critical", "no", "--examples", "2000", "--eval", str(path)], monkeypatch)
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("The guide's answer (decision flowchart): Use Fine-tuning")
    assert "What the measurements say:" in out
    assert "finetuned: f1 0.300, $0.001000/query ($500.00/month at 500,000)" in out
    assert "WARNING - the measurements disagree with the pick" in out
    assert "rag scored f1 0.900 vs 0.300 for finetuned" in out


def test_eval_file_that_is_not_a_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "x.json"
    bad.write_text("[]")
    assert ragft(["decide", "--no-input", "--eval", str(bad)], monkeypatch) == 2
    assert "not a JSON object" in capsys.readouterr().err


def test_situation_uses_the_quick_decision_table_without_asking(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", Terminal("yes\n"))
    assert ragft(["decide", "--situation", "internal-knowledge-base"], monkeypatch) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("The guide's answer (quick decision table): Use RAG")
    assert "Internal knowledge base -> Use RAG" in captured.out and captured.err == ""


def test_update_frequency_with_measured_freshness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from ragft.eval.freshness import FreshnessReport, Step, UpdateMeasurement, make_fact

    report = FreshnessReport([UpdateMeasurement("finetune:openai", "job", (Step("training", 5 * 3600.0),), None,
                                                source="job timestamps")], make_fact())
    path = report.to_json(tmp_path / "freshness.json")
    code = ragft(["decide", "--no-input", "--citations", "no", "--volume", "500k", "--format-critical", "no",
                  "--examples", "900", "--update-frequency", "daily", "--freshness", str(path)], monkeypatch)
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("The guide's answer (decision flowchart): Use RAG")
    assert "a fine-tuning update takes 5.0 h on finetune:openai" in out
