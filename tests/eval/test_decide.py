"""The decision tree, branch by branch, and its check against measured results."""

from __future__ import annotations

import pytest

from ragft.eval.decide import PICKS, DecisionInputs, decide, describe_inputs
from ragft.eval.harness import EvalResult, StrategySummary


@pytest.mark.parametrize(
    ("inputs", "pick"),
    [
        # step 1: citations needed
        (DecisionInputs(citations=True, examples=800, format_critical=True), "ft_rag"),
        (DecisionInputs(citations=True, examples=800), "rewrite_rag"),
        (DecisionInputs(citations=True, examples=100, volume=1_000_000), "rag"),
        # step 2: knowledge changes often
        (DecisionInputs(knowledge_changes=True, citations=False, examples=500, volume=100_001), "router"),
        (DecisionInputs(knowledge_changes=True, citations=False, examples=500, format_critical=True), "ft_rag"),
        (DecisionInputs(knowledge_changes=True, citations=False, examples=5000, volume=50_000), "rag"),
        (DecisionInputs(knowledge_changes=True, citations=False, examples=10, volume=10**6), "rag"),
        # step 3: stable knowledge, no citations
        (DecisionInputs(knowledge_changes=False, citations=False, examples=499, volume=10**6), "rag"),
        (DecisionInputs(knowledge_changes=False, citations=False, examples=500, volume=200_000), "finetuned"),
        (DecisionInputs(knowledge_changes=False, citations=False, examples=500, format_critical=True), "finetuned"),
        (DecisionInputs(knowledge_changes=False, citations=False, examples=500, volume=100_000), "cascade"),
    ],
)
def test_tree_branches(inputs: DecisionInputs, pick: str) -> None:
    decision = decide(inputs)
    assert decision.recommendation == pick and pick in PICKS
    assert decision.reasons  # every pick says why


def test_boundaries_are_strict_for_volume_and_inclusive_for_examples() -> None:
    stable = {"knowledge_changes": False, "citations": False, "format_critical": False}
    assert decide(DecisionInputs(**stable, examples=500, volume=100_000)).recommendation == "cascade"
    assert decide(DecisionInputs(**stable, examples=500, volume=100_001)).recommendation == "finetuned"
    assert decide(DecisionInputs(**stable, examples=499, volume=100_001)).recommendation == "rag"


def test_unknown_answers_use_cautious_defaults_and_say_so() -> None:
    decision = decide(DecisionInputs())
    # Unknown change rate is treated as "changes often": facts stay in the index.
    assert decision.recommendation == "rag"
    assert len(decision.assumptions) == 5
    assert any("knowledge changes often: yes" in a for a in decision.assumptions)
    only_examples = decide(DecisionInputs(knowledge_changes=False, citations=False, volume=10, format_critical=False))
    assert only_examples.assumptions == ("training examples available: none",)
    assert "Assumed (not answered)" in decision.summary()


def test_reasons_name_the_deciding_facts() -> None:
    d = decide(DecisionInputs(knowledge_changes=True, citations=False, examples=900, volume=250_000))
    assert d.recommendation == "router"
    assert any("250,000 queries/month" in r for r in d.reasons)
    assert any("900 training examples" in r for r in d.reasons)


def test_negative_counts_are_rejected() -> None:
    with pytest.raises(ValueError):
        DecisionInputs(volume=-1)


def summary(name: str, *, f1: float, cost: float, halluc: float | None = 0.0,
            recall: float | None = 0.5) -> StrategySummary:
    return StrategySummary(
        strategy=name, n=10, n_answerable=8, n_out_of_scope=2, errors=0, exact_match=f1, f1=f1,
        contains=f1, judge=None, citation_precision=None, citation_recall=None, recall_at_k=recall,
        mean_k=None, cost_total=cost * 10, cost_per_query=cost, unpriced_calls=0,
        tokens_per_query=100.0, latency_p50=0.1, latency_p95=0.2, route_mix={name: 10},
        abstention_rate_oos=None if halluc is None else 1 - halluc, hallucination_rate_oos=halluc,
        false_abstention_rate=0.0,
    )


def evaluation(*summaries: StrategySummary, kinds: dict[str, str] | None = None) -> EvalResult:
    return EvalResult(
        run_id="r", created_at="", strategies=tuple(s.strategy for s in summaries), question_ids=(),
        records=[], summaries={s.strategy: s for s in summaries},
        meta={"strategy_kinds": kinds or {s.strategy: s.strategy for s in summaries}},
    )


STABLE_HIGH = DecisionInputs(knowledge_changes=False, citations=False, examples=1000, volume=200_000,
                             format_critical=False)


def test_measurements_back_the_pick_when_they_agree() -> None:
    ev = evaluation(summary("rag", f1=0.60, cost=0.004, halluc=0.1),
                    summary("finetuned", f1=0.62, cost=0.001, recall=None))
    d = decide(STABLE_HIGH, evaluation=ev)
    assert d.recommendation == "finetuned" and d.contradictions == ()
    assert any(e.startswith("finetuned: f1 0.620, $0.001000/query ($200.00/month at 200,000)") for e in d.evidence)
    assert d.measured["rag"]["cost_per_query"] == 0.004


def test_measurements_that_contradict_the_pick_are_flagged() -> None:
    ev = evaluation(
        summary("finetuned", f1=0.40, cost=0.001, halluc=0.5, recall=None),
        summary("rag", f1=0.70, cost=0.004, halluc=0.0),
    )
    d = decide(STABLE_HIGH, evaluation=ev)
    assert d.recommendation == "finetuned"
    assert any("rag scored f1 0.700 vs 0.400" in c for c in d.contradictions)
    assert any("hallucinated on 50%" in c for c in d.contradictions)
    assert "WARNING - the measurements disagree" in d.summary()


def test_cheaper_at_similar_quality_is_flagged_with_the_monthly_saving() -> None:
    inputs = DecisionInputs(knowledge_changes=True, citations=False, examples=0, volume=50_000, format_critical=False)
    ev = evaluation(summary("rag", f1=0.60, cost=0.010), summary("rewrite_rag", f1=0.58, cost=0.004))
    d = decide(inputs, evaluation=ev)
    assert d.recommendation == "rag"
    # (0.010 - 0.004) x 50,000 = $300/month.
    assert any("under half the cost" in c and "$300.00/month less" in c for c in d.contradictions)


def test_candidates_that_break_the_constraints_are_ruled_out_not_recommended() -> None:
    needs_citations = DecisionInputs(knowledge_changes=True, citations=True, examples=0, volume=1000,
                                     format_critical=False)
    ev = evaluation(summary("rag", f1=0.50, cost=0.004), summary("ft", f1=0.90, cost=0.001, recall=None),
                    summary("router", f1=0.80, cost=0.002, halluc=0.0),
                    kinds={"rag": "rag", "ft": "finetuned", "router": "router"})
    d = decide(needs_citations, evaluation=ev)
    assert d.recommendation == "rag" and d.contradictions == ()
    assert any("ft:" in e and "ruled out: cannot cite" in e for e in d.evidence)
    # The router retrieves for some routes but answers others from weights: no citation there.
    assert any(e.startswith("router:") and "ruled out: answers some questions from model weights" in e
               for e in d.evidence)
    # Without the citation constraint (stable knowledge) the router competes and wins on F1.
    free = DecisionInputs(knowledge_changes=True, citations=False, examples=0, volume=1000, format_critical=False)
    assert any("router scored f1 0.800" in c for c in decide(free, evaluation=ev).contradictions)


def test_pick_not_evaluated_is_reported() -> None:
    d = decide(STABLE_HIGH, evaluation=evaluation(summary("rag", f1=0.6, cost=0.004)))
    assert d.contradictions == ()
    assert any("finetuned was not evaluated" in e for e in d.evidence)


def test_pick_found_by_kind_when_named_differently() -> None:
    ev = evaluation(summary("my-ft", f1=0.3, cost=0.001, recall=None), summary("rag", f1=0.8, cost=0.004),
                    kinds={"my-ft": "finetuned", "rag": "rag"})
    d = decide(STABLE_HIGH, evaluation=ev)
    assert any("for my-ft" in c for c in d.contradictions)


def test_describe_inputs_and_json() -> None:
    assert describe_inputs(DecisionInputs(volume=1500))[2] == "queries per month: 1,500"
    assert describe_inputs(DecisionInputs())[0] == "knowledge changes often: unknown"
    data = decide(DecisionInputs()).to_dict()
    assert data["recommendation"] == "rag" and isinstance(data["assumptions"], list)
