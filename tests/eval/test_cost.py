"""Cost estimates and monthly projections against hand-computed arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragft.errors import EvaluationError
from ragft.eval.cost import (
    StrategyCost,
    break_even,
    costs_from_eval,
    embedding_cost,
    estimate_corpus_embedding,
    estimate_training_file,
    format_break_even,
    project_monthly_costs,
)
from ragft.eval.harness import EvalResult, summarize
from ragft.metering.prices import PriceTable
from ragft.tokens import count_tokens


def test_seed_example_embedding_10m_tokens_small_model() -> None:
    # 10,000,000 tokens x $0.02 per 1M = $0.20.
    cost, rate = embedding_cost(10_000_000, "text-embedding-3-small")
    assert cost == pytest.approx(0.20) and rate == 0.02
    assert embedding_cost(10_000_000, "text-embedding-3-large")[0] == pytest.approx(1.30)  # x $0.13
    assert embedding_cost(10_000_000, "local/all-MiniLM-L6-v2-int8") == (0.0, 0.0)
    with pytest.raises(EvaluationError, match="no embedding price"):
        embedding_cost(100, "gpt-4.1-mini")


def test_seed_example_break_even_833_queries() -> None:
    rag = StrategyCost(cost_per_query=0.15)
    finetuned = StrategyCost(cost_per_query=0.03, fixed_monthly=100.0)
    # 0.15 v = 0.03 v + 100  ->  v = 100 / (0.15 - 0.03) = 100 / 0.12 = 833.33...
    assert break_even(rag, finetuned) == pytest.approx(833.3333333, rel=1e-9)
    assert break_even(finetuned, rag) == pytest.approx(833.3333333, rel=1e-9)  # symmetric
    assert rag.monthly(1000) == pytest.approx(150.0) and finetuned.monthly(1000) == pytest.approx(130.0)
    text = format_break_even("rag", rag, "finetuned", finetuned)
    assert "833.33 queries/month" in text and "below it rag is cheaper, above it finetuned" in text


def test_fixed_cost_on_the_dearer_side_never_breaks_even() -> None:
    # RAG $0.15/query + $100/month vs fine-tuned $0.03/query: the fine-tuned model is cheaper
    # at every volume (0.15 v + 100 > 0.03 v for all v >= 0), so there is no break-even.
    rag = StrategyCost(cost_per_query=0.15, fixed_monthly=100.0)
    finetuned = StrategyCost(cost_per_query=0.03)
    assert break_even(rag, finetuned) is None
    assert "finetuned is cheaper at every volume" in format_break_even("rag", rag, "finetuned", finetuned)


def test_parallel_and_identical_lines() -> None:
    a, b = StrategyCost(0.01, 10.0), StrategyCost(0.01, 20.0)
    assert break_even(a, b) is None
    assert "a is cheaper at every volume" in format_break_even("a", a, "b", b)
    assert "same cost at every volume" in format_break_even("a", a, "b", StrategyCost(0.01, 10.0))


def test_setup_cost_is_amortised() -> None:
    # $1,200 setup over 12 months = $100/month on top of $50 fixed: F = 150.
    ft = StrategyCost(cost_per_query=0.02, fixed_monthly=50.0, setup_cost=1200.0, amortize_months=12)
    assert ft.fixed == pytest.approx(150.0)
    assert ft.monthly(10_000) == pytest.approx(0.02 * 10_000 + 150.0)  # = 350
    # vs RAG $0.05/query, no fixed: v = 150 / (0.05 - 0.02) = 5,000.
    assert break_even(StrategyCost(0.05), ft) == pytest.approx(5000.0)
    with pytest.raises(EvaluationError):
        StrategyCost(0.01, amortize_months=0)
    with pytest.raises(EvaluationError):
        StrategyCost(-0.01)


def test_projection_table() -> None:
    proj = project_monthly_costs(
        {"rag": StrategyCost(0.15), "finetuned": StrategyCost(0.03, 100.0)}, [100, 1000, 10_000]
    )
    # rag: 15, 150, 1500; finetuned: 0.03 v + 100 -> 103, 130, 400.
    assert proj.monthly["rag"] == pytest.approx((15.0, 150.0, 1500.0))
    assert proj.monthly["finetuned"] == pytest.approx((103.0, 130.0, 400.0))
    assert [proj.cheapest(i) for i in range(3)] == ["rag", "finetuned", "finetuned"]
    assert proj.break_even[("rag", "finetuned")] == pytest.approx(100 / 0.12)
    text = proj.format()
    assert "$1,500.00" in text and "break-even at 833.33" in text
    assert json.loads(json.dumps(proj.to_dict()))["break_even"][0]["volume"] == pytest.approx(833.333, rel=1e-5)
    with pytest.raises(EvaluationError):
        project_monthly_costs({}, [1])
    with pytest.raises(EvaluationError):
        project_monthly_costs({"rag": StrategyCost(0.1)}, [-1])


def test_costs_from_eval_uses_measured_cost_per_query(tmp_path: Path) -> None:
    from ragft.eval.harness import QuestionRecord

    def rec(strategy: str, qid: str, cost: float) -> QuestionRecord:
        return QuestionRecord(
            strategy=strategy, qid=qid, kind="factual", question="q", gold="g", answer="g",
            route=strategy, route_key=strategy, outcome="answered", abstained=False,
            confidence=None, documents=(), exact_match=1.0, f1=1.0, contains=1.0,
            citation_precision=None, citation_recall=None, recall_at_k=None, cost_usd=cost,
            unpriced_calls=0, calls=1, input_tokens=1, output_tokens=1, embedding_tokens=0,
            total_tokens=2, latency_s=0.1,
        )

    records = [rec("rag", "a", 0.002), rec("rag", "b", 0.004),
               rec("finetuned", "a", 0.001), rec("finetuned", "b", 0.001)]
    result = EvalResult(run_id="r", created_at="", strategies=("rag", "finetuned"), question_ids=("a", "b"),
                        records=records,
                        summaries={n: summarize(n, [r for r in records if r.strategy == n])
                                   for n in ("rag", "finetuned")})
    path = result.to_json(tmp_path / "result.json")
    costs = costs_from_eval(path, fixed_monthly={"finetuned": 100.0}, setup=50.0, amortize_months=10)
    # rag: (0.002 + 0.004) / 2 = 0.003 per query; finetuned: 0.001.
    assert costs["rag"] == StrategyCost(0.003, 0.0, 50.0, 10)
    assert costs["finetuned"].cost_per_query == pytest.approx(0.001) and costs["finetuned"].fixed_monthly == 100.0
    # F_rag = 5, F_ft = 105; v = (105 - 5) / (0.003 - 0.001) = 50,000.
    assert break_even(costs["rag"], costs["finetuned"]) == pytest.approx(50_000)
    with pytest.raises(EvaluationError, match="not in the evaluation"):
        costs_from_eval(result, strategies=["router"])


def test_corpus_embedding_estimate_counts_every_document(tmp_path: Path) -> None:
    docs = {"a.md": "# A\n\nThe meal per diem is $75.\n", "sub/b.txt": "Plain text file.\n"}
    for rel, text in docs.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    (tmp_path / "r.jsonl").write_text('{"id": "x", "text": "Record one."}\n{"id": "y", "text": "Record two."}\n')
    est = estimate_corpus_embedding(tmp_path, model="text-embedding-3-small")
    expected = sum(count_tokens(t, "text-embedding-3-small") for t in
                   [*docs.values(), "Record one.", "Record two."])
    assert est.items == 4 and est.tokens == expected
    assert est.cost_usd == pytest.approx(expected * 0.02 / 1_000_000)
    # Overlap 50 of 300: every token is embedded 300 / 250 = 1.2 times on average.
    scaled = estimate_corpus_embedding(tmp_path, chunk_tokens=300, chunk_overlap=50)
    assert scaled.tokens == round(expected * 1.2)
    with pytest.raises(EvaluationError, match="does not exist"):
        estimate_corpus_embedding(tmp_path / "missing")


def test_corpus_estimate_uses_the_config_price_table(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("word " * 100)
    prices = PriceTable.load().with_overrides({"my-embedder": {"embedding": 1.0}})
    est = estimate_corpus_embedding(tmp_path, model="my-embedder", prices=prices)
    assert est.rate_per_million == 1.0 and est.cost_usd == pytest.approx(est.tokens / 1_000_000)


def test_training_estimate_delegates_to_finetune_data(tmp_path: Path) -> None:
    from ragft.finetune.data import estimate_training

    lines = [
        {"messages": [{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": f"Answer {i}."}]}
        for i in range(20)
    ]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    est = estimate_training_file(path, model="gpt-4.1-mini", epochs=2)
    direct = estimate_training(path, model="gpt-4.1-mini", epochs=2)
    assert (est.items, est.tokens, est.cost_usd) == (20, direct.billed_tokens, direct.cost_usd)
    assert est.tokens == 2 * direct.tokens_per_epoch  # 2 epochs
    assert est.cost_usd == pytest.approx(est.tokens * 5.00 / 1_000_000)  # gpt-4.1-mini training $5/1M
    assert "20 examples x 2 epochs (given)" in est.summary()


def test_training_estimate_converts_raw_pairs(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps({"question": f"Q{i}?", "answer": f"A{i}."}) + "\n" for i in range(10)))
    est = estimate_training_file(path, epochs="auto")
    # auto epochs for 10 examples: 10 x 3 < 100 -> ceil(100 / 10) = 10 epochs.
    assert est.items == 10 and est.details["epochs"] == 10 and est.details["epochs_auto"]
    assert "converted 10 question/answer pairs" in est.summary()


def test_equal_fixed_costs_have_no_break_even_and_the_cheaper_per_query_wins() -> None:
    from ragft.eval.cost import break_even, format_break_even

    # Same monthly update cost on both sides: the lines meet only at 0 queries.
    a = StrategyCost(cost_per_query=0.000296, update_cost=0.000254, updates_per_month=30 / 7)
    b = StrategyCost(cost_per_query=0.000605, update_cost=0.000254, updates_per_month=30 / 7)
    assert break_even(a, b) is None
    assert format_break_even("rag", a, "ft_rag", b) == "rag vs ft_rag: no break-even; rag is cheaper at every volume"
    assert a.fixed == pytest.approx(0.000254 * 30 / 7)
