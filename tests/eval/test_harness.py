"""The evaluation harness on a small real run: FineTuned, RAG over a real knowledge base and a
Cascade, one out-of-scope question, and a RAG generator that fails on one question."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ragft.answer import Usage
from ragft.errors import EvaluationError
from ragft.eval.harness import (
    EvalResult,
    QuestionRecord,
    format_table,
    plot_quality_vs_cost,
    route_key,
    run_eval,
    summarize,
)
from ragft.eval.judge import LLMJudge
from ragft.eval.questions import Question
from ragft.metering.meter import Ledger, Meter, RollUp
from ragft.tokens import count_chat_tokens, count_tokens
from ragft.models.base import Completion
from ragft.route import Route
from ragft.strategies import FineTuned

#: The RAG generator's model in conftest (priced $0.40 in / $1.60 out per 1M tokens).
BASE_MODEL = "gpt-4.1-mini"


@pytest.fixture
def result(make_strategies: Callable[..., dict], questions: list[Question], meter: Meter) -> EvalResult:
    return run_eval(make_strategies(), questions, meter=meter, progress=False)


def rec(result: EvalResult, strategy: str, qid: str) -> QuestionRecord:
    return next(r for r in result.records_for(strategy) if r.qid == qid)


def test_every_strategy_answers_every_question_in_order(result: EvalResult) -> None:
    assert result.strategies == ("finetuned", "rag", "cascade")
    assert [(r.strategy, r.qid) for r in result.records] == [
        (s, q) for s in ("finetuned", "rag", "cascade") for q in ("t1", "t2", "t3", "t4")
    ]
    assert result.meta["strategy_kinds"] == {"finetuned": "finetuned", "rag": "rag", "cascade": "cascade"}


def test_per_question_metrics(result: EvalResult) -> None:
    ft1 = rec(result, "finetuned", "t1")
    # "The meal per diem is $75 per day." -> [meal, per, diem, is, 75, per, day] (7 tokens)
    # gold "$75 per day" -> [75, per, day]; overlap 3: P = 3/7, R = 1, F1 = (6/7)/(10/7) = 0.6.
    assert (ft1.exact_match, ft1.contains, ft1.outcome) == (0.0, 1.0, "answered")
    assert ft1.f1 == pytest.approx(0.6)
    assert ft1.documents == () and ft1.recall_at_k is None and ft1.citation_precision is None
    assert rec(result, "finetuned", "t2").exact_match == 1.0
    assert rec(result, "finetuned", "t3").outcome == "hallucination"

    rag1 = rec(result, "rag", "t1")  # "$75 per day [1]": the marker is stripped before scoring
    assert (rag1.exact_match, rag1.f1) == (1.0, 1.0)
    assert rag1.documents == ("policies/travel.md",)
    assert (rag1.citation_precision, rag1.citation_recall, rag1.recall_at_k) == (1.0, 1.0, 1.0)
    rag3 = rec(result, "rag", "t3")
    assert rag3.outcome == "correct_abstention" and rag3.abstained and rag3.route_key == "rag: abstain"


def test_a_failing_question_is_recorded_and_the_run_goes_on(result: EvalResult) -> None:
    failed = rec(result, "rag", "t4")
    assert failed.outcome == "error" and failed.route_key == "error"
    assert failed.error == "RuntimeError: generator backend crashed"
    assert (failed.exact_match, failed.f1, failed.contains) == (0.0, 0.0, 0.0)  # a miss
    # The cascade's fine-tuned call on t4 succeeded (confidence 0.3 < 0.8) before its RAG
    # fallback failed: that call's cost is still on the record.
    c4 = rec(result, "cascade", "t4")
    assert c4.outcome == "error" and c4.calls == 1 and c4.cost_usd > 0
    assert result.summaries["rag"].errors == 1 and result.summaries["finetuned"].errors == 0


def test_costs_are_exact_prices_of_the_reported_usage(result: EvalResult) -> None:
    ft1 = rec(result, "finetuned", "t1")
    # Fine-tuned gpt-4.1-mini: $0.80 per 1M input tokens, $3.20 per 1M output tokens.
    assert ft1.cost_usd == pytest.approx(ft1.input_tokens * 0.80e-6 + ft1.output_tokens * 3.20e-6, abs=1e-15)
    rag1 = rec(result, "rag", "t1")
    # Base gpt-4.1-mini: $0.40 / $1.60 per 1M; the reply "$75 per day [1]" is tiktoken-counted.
    assert rag1.output_tokens == count_tokens("$75 per day [1]", BASE_MODEL)
    assert rag1.cost_usd == pytest.approx(rag1.input_tokens * 0.40e-6 + rag1.output_tokens * 1.60e-6, abs=1e-15)
    c2 = rec(result, "cascade", "t2")  # fine-tuned (0.5 < 0.8) then RAG: two calls, both billed
    assert c2.calls == 2 and c2.route_key == "cascade: fallback"


def test_summaries(result: EvalResult) -> None:
    ft = result.summaries["finetuned"]
    assert (ft.n, ft.n_answerable, ft.n_out_of_scope) == (4, 3, 1)
    # F1: t1 0.6; t2 1.0; t4 "They are retried with exponential backoff." vs the 8-token gold:
    # overlap {with, exponential, backoff} = 3, P = 3/6, R = 3/8, F1 = 2*.5*.375/.875 = 3/7.
    assert ft.f1 == pytest.approx((0.6 + 1.0 + 3 / 7) / 3)
    assert ft.exact_match == pytest.approx(1 / 3)
    assert ft.recall_at_k is None and ft.citation_precision is None  # no retrieval: n/a
    assert ft.hallucination_rate_oos == 1.0 and ft.abstention_rate_oos == 0.0
    assert ft.route_mix == {"finetuned": 4}

    rag = result.summaries["rag"]
    assert rag.abstention_rate_oos == 1.0 and rag.hallucination_rate_oos == 0.0
    assert rag.false_abstention_rate == 0.0
    # recall@k over answerable questions with gold sources: t1 1, t2 1, t4 (error, nothing
    # retrieved) 0 -> 2/3.
    assert rag.recall_at_k == pytest.approx(2 / 3)
    assert rag.route_mix == {"rag": 2, "rag: abstain": 1, "error": 1}

    cascade = result.summaries["cascade"]
    assert cascade.route_mix == {"cascade: kept": 2, "cascade: fallback": 1, "error": 1}
    assert cascade.cost_total == pytest.approx(sum(r.cost_usd for r in result.records_for("cascade")))
    assert cascade.cost_per_query == pytest.approx(cascade.cost_total / 4)


def test_ledger_equals_the_sum_over_answers(result: EvalResult, meter: Meter) -> None:
    assert result.costs_traced
    assert result.ledger_path == str(meter.ledger.path)
    # Re-read the ledger independently and roll up this run's calls by strategy.
    records = [r for r in Ledger(result.ledger_path).read() if r.tags.get("eval_run") == result.run_id]
    for name in result.strategies:
        roll = RollUp.of(r for r in records if r.tags["eval_strategy"] == name)
        answers = sum(r.cost_usd for r in result.records_for(name))
        assert abs(roll.cost_usd - answers) <= 1e-9
        assert roll.calls == sum(r.calls for r in result.records_for(name))
        assert result.cost_check[name].ok
    # The strategy's own tag is kept alongside: the cascade's inner calls are billed to it.
    assert {r.tags["strategy"] for r in records if r.tags["eval_strategy"] == "cascade"} == {"cascade"}


def test_a_ledger_that_loses_a_call_is_caught(make_strategies: Callable[..., dict], questions: list[Question],
                                              tmp_path: Path) -> None:
    class LossyLedger(Ledger):
        """Drops the RAG generator's calls: what a broken ledger writer would do."""

        def append(self, record) -> None:  # type: ignore[no-untyped-def]
            if record.tags.get("eval_strategy") == "rag" and record.usage.model == BASE_MODEL:
                return
            super().append(record)

    meter = Meter(ledger=LossyLedger(tmp_path / "lossy.jsonl"))
    result = run_eval(make_strategies(meter), questions, meter=meter, progress=False)
    assert not result.costs_traced
    assert result.cost_check["finetuned"].ok and not result.cost_check["rag"].ok
    assert result.cost_check["rag"].ledger_calls == 0 < result.cost_check["rag"].answer_calls
    assert "COST MISMATCH rag" in format_table(result)


def test_without_a_ledger_the_meters_records_are_checked(make_strategies: Callable[..., dict],
                                                         questions: list[Question]) -> None:
    meter = Meter()
    result = run_eval(make_strategies(meter), questions, meter=meter, progress=False)
    assert result.ledger_path is None and result.costs_traced


def test_concurrency_gives_the_same_records(make_strategies: Callable[..., dict], questions: list[Question],
                                            meter: Meter, result: EvalResult) -> None:
    threaded = run_eval(make_strategies(), questions, meter=meter, concurrency=3, progress=False)
    strip = lambda r: {**r.to_dict(), "latency_s": 0}  # noqa: E731 - timing differs, nothing else
    assert [strip(r) for r in threaded.records] == [strip(r) for r in result.records]
    assert threaded.costs_traced


def test_inputs_are_validated(make_strategies: Callable[..., dict], questions: list[Question],
                              meter: Meter) -> None:
    with pytest.raises(EvaluationError, match="no strategies"):
        run_eval({}, questions, meter=meter, progress=False)
    with pytest.raises(EvaluationError, match="no questions"):
        run_eval(make_strategies(), [], meter=meter, progress=False)
    with pytest.raises(EvaluationError, match="another meter"):
        run_eval(make_strategies(Meter()), questions, meter=meter, progress=False)
    with pytest.raises(EvaluationError, match="duplicate question ids"):
        run_eval(make_strategies(), questions + questions[:1], meter=meter, progress=False)


def test_json_round_trip_and_csv(result: EvalResult, tmp_path: Path) -> None:
    path = result.to_json(tmp_path / "out" / "result.json")
    again = EvalResult.from_json(path)
    assert again.records == result.records and again.summaries == result.summaries
    assert again.cost_check == result.cost_check and again.run_id == result.run_id
    assert not list((tmp_path / "out").glob(".*.tmp"))  # atomic write left no temp file

    with result.to_csv(tmp_path / "r.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 12
    first = rows[4]  # rag, t1
    assert (first["strategy"], first["qid"], first["documents"], first["exact_match"]) == (
        "rag", "t1", "policies/travel.md", "1.0")
    assert rows[6]["f1"] == ""  # out of scope: no F1, written as an empty cell


def test_from_json_rejects_other_files(tmp_path: Path) -> None:
    other = tmp_path / "x.json"
    other.write_text(json.dumps({"hello": 1}))
    with pytest.raises(EvaluationError, match="not a ragft evaluation result"):
        EvalResult.from_json(other)
    with pytest.raises(EvaluationError, match="not found"):
        EvalResult.from_json(tmp_path / "missing.json")


def test_format_table_is_aligned_and_complete(result: EvalResult) -> None:
    table = format_table(result)
    lines = table.splitlines()
    assert lines[0].split() == ["finetuned", "rag", "cascade"]
    body = lines[2 : lines.index("")]
    assert len({len(line) for line in body}) == 1  # every metric row has the same width
    for label in ("exact match", "token F1", "citation precision", "retrieval recall@k",
                  "hallucinated (out of scope)", "cost / query", "latency p95 (s)"):
        assert any(line.startswith(label) for line in body), label
    assert "cascade: cascade: kept 50%, cascade: fallback 25%, error 25%" in table
    assert "equals its ledger roll-up" in table


def test_plot_is_a_png(result: EvalResult, tmp_path: Path) -> None:
    path = plot_quality_vs_cost(result, tmp_path / "plot.png", metric="contains")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_when_everything_is_free(questions: list[Question], tmp_path: Path, scripted_chat: type) -> None:
    meter = Meter()
    local = scripted_chat("local/scripted", {"per diem": "$75 per day"})
    result = run_eval({"local": FineTuned(local, meter=meter)}, questions, meter=meter, progress=False)
    assert result.summaries["local"].cost_per_query == 0.0
    assert plot_quality_vs_cost(result, tmp_path / "free.png").stat().st_size > 1000


class Grader:
    """A judge model that always answers "Score: 4", with reported usage."""

    name = "gpt-4.1-mini"

    def __init__(self) -> None:
        self.calls = 0

    def complete(self, messages, *, max_tokens=None, temperature=0.0, logprobs=False) -> Completion:  # type: ignore[no-untyped-def]
        self.calls += 1
        usage = Usage(model=self.name, input_tokens=count_chat_tokens(messages, self.name), output_tokens=3)
        return Completion(text="Score: 4", usage=usage, model=self.name)


def test_judge_grades_answers_and_is_billed_apart(make_strategies: Callable[..., dict],
                                                  questions: list[Question], meter: Meter) -> None:
    grader = Grader()
    result = run_eval(make_strategies(), questions, meter=meter, progress=False, judge=LLMJudge(grader, meter=meter))
    assert result.judge == "gpt-4.1-mini"
    assert rec(result, "rag", "t1").judge_score == 4
    assert rec(result, "rag", "t3").judge_score is None  # out of scope: not judged
    assert rec(result, "rag", "t4").judge_score is None  # failed: nothing to judge
    # Judged: finetuned t1 t2 t4, rag t1 t2, cascade t1 t2 = 7 calls.
    assert grader.calls == 7
    assert result.summaries["rag"].judge == 4.0
    # Judge calls are tagged eval_judge, never billed to the strategy they grade.
    assert result.costs_traced
    judged = [r for r in meter.records if r.tags.get("eval_run") == result.run_id and "eval_judge" in r.tags]
    assert len(judged) == 7 and all("eval_strategy" not in r.tags for r in judged)
    assert "judge score (1-5)" in format_table(result)


_RAG5 = Route("rag", detail="5 passages")


@pytest.mark.parametrize(
    ("route", "text", "key"),
    [
        (Route("rag", detail="3 passages from 2 documents -> gpt-4.1-mini"),
         "rag: 3 passages from 2 documents -> gpt-4.1-mini", "rag"),
        (Route("rag", "abstain", "no passage above the retrieval threshold -> abstain"),
         "rag: no passage above the retrieval threshold -> abstain", "rag: abstain"),
        (Route("router", "procedural", "procedural (0.93) -> finetuned",
               inner=Route("finetuned", detail="m (confidence 0.90)")),
         "router: procedural (0.93) -> finetuned | finetuned: m (confidence 0.90)", "router: procedural"),
        (Route("router", "default (rag)", "unparsable label 'x' -> default rag",
               inner=Route("rag", detail="2 passages")),
         "router: unparsable label 'x' -> default rag | rag: 2 passages", "router: default (rag)"),
        (Route("cascade", "kept", "finetuned confidence 0.91 >= 0.80 -> finetuned"),
         "cascade: finetuned confidence 0.91 >= 0.80 -> finetuned", "cascade: kept"),
        (Route("cascade", "fallback", "finetuned confidence 0.42 < 0.80 -> rag", inner=_RAG5),
         "cascade: finetuned confidence 0.42 < 0.80 -> rag | rag: 5 passages", "cascade: fallback"),
        (Route("rewrite_rag", detail="'cab?' -> 'ground transport'", inner=_RAG5, handoff=False),
         "rewrite_rag: 'cab?' -> 'ground transport' -> rag: 5 passages", "rewrite_rag"),
        (Route(), "", "-"),
    ],
)
def test_route_key(route: Route, text: str, key: str) -> None:
    assert str(route) == text
    assert route_key(route) == key


def test_latency_percentiles_by_hand() -> None:
    base = QuestionRecord(
        strategy="s", qid="", kind="factual", question="q", gold="g", answer="g", route="s",
        route_key="s", outcome="answered", abstained=False, confidence=None, documents=(),
        exact_match=1.0, f1=1.0, contains=1.0, citation_precision=None, citation_recall=None,
        recall_at_k=None, cost_usd=0.0, unpriced_calls=0, calls=1, input_tokens=0,
        output_tokens=0, embedding_tokens=0, total_tokens=0, latency_s=0.0,
    )
    from dataclasses import replace

    records = [replace(base, qid=str(i), latency_s=float(i)) for i in (1, 2, 3, 4)]
    s = summarize("s", records)
    # p50: position (4-1)*0.5 = 1.5 -> 2 + 0.5*(3-2) = 2.5; p95: 2.85 -> 3 + 0.85*(4-3) = 3.85.
    assert s.latency_p50 == pytest.approx(2.5) and s.latency_p95 == pytest.approx(3.85)
    assert s.n_out_of_scope == 0 and s.abstention_rate_oos is None


def test_a_fatal_error_stops_calling_the_strategy() -> None:
    from ragft.errors import AuthenticationError
    from ragft.eval.harness import run_eval
    from ragft.eval.questions import Question
    from ragft.metering.meter import Meter
    from ragft.strategies.base import Draft, Strategy

    class BadKey(Strategy):
        kind = "badkey"
        calls = 0

        def _draft(self, query: str) -> Draft:
            BadKey.calls += 1
            raise AuthenticationError("invalid API key: set OPENAI_API_KEY")

    meter = Meter()
    qs = [Question(id=f"q{i}", question=f"question {i}?", answer="x", kind="factual") for i in range(5)]
    result = run_eval({"bad": BadKey(meter=meter)}, qs, meter=meter, progress=False)
    errors = [r.error for r in result.records]
    assert BadKey.calls == 1
    assert errors[0].startswith("AuthenticationError: invalid API key")
    assert all(e.startswith("skipped after a fatal error: AuthenticationError") for e in errors[1:])
