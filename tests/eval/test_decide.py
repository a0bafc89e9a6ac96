"""The decision tree, branch by branch, and its check against measured results."""

from __future__ import annotations

import pytest

from ragft.errors import EvaluationError
from ragft.eval.decide import (
    GUIDE_ANSWERS,
    PICKS,
    DecisionInputs,
    decide,
    describe_inputs,
    knowledge_changes_from,
    parse_update_frequency,
)
from ragft.eval.freshness import FreshnessReport, Step, UpdateMeasurement, make_fact
from ragft.eval.harness import EvalResult, StrategySummary


# The guide's flowchart (shared/guide/rag-vs-finetuning.md, "Decision Framework"), written out
# for all 32 combinations of (knowledge changes, citations, > 100K queries/month, format
# critical, 500+ examples). R = Use RAG, H = Use Hybrid, F = Use Fine-tuning.
GUIDE_TABLE = """
changes cites high fmt many guide
Y Y Y Y Y R
Y Y Y Y N R
Y Y Y N Y R
Y Y Y N N R
Y Y N Y Y R
Y Y N Y N R
Y Y N N Y R
Y Y N N N R
Y N Y Y Y R
Y N Y Y N R
Y N Y N Y R
Y N Y N N R
Y N N Y Y R
Y N N Y N R
Y N N N Y R
Y N N N N R
N Y Y Y Y R
N Y Y Y N R
N Y Y N Y R
N Y Y N N R
N Y N Y Y R
N Y N Y N R
N Y N N Y R
N Y N N N R
N N Y Y Y H
N N Y Y N H
N N Y N Y F
N N Y N N R
N N N Y Y R
N N N Y N R
N N N N Y R
N N N N N R
"""
_GUIDE = {"R": "rag", "H": "hybrid", "F": "finetuning"}


def _combinations() -> list[tuple[DecisionInputs, str]]:
    rows = [line.split() for line in GUIDE_TABLE.strip().splitlines()[1:]]
    return [
        (DecisionInputs(knowledge_changes=c == "Y", citations=ci == "Y", volume=150_000 if h == "Y" else 50_000,
                        format_critical=f == "Y", examples=800 if m == "Y" else 100), _GUIDE[g])
        for c, ci, h, f, m, g in rows
    ]


def test_the_guides_answer_matches_its_flowchart_on_all_32_combinations() -> None:
    combos = _combinations()
    assert len(combos) == 32 and len({c[0] for c in combos}) == 32
    for inputs, guide in combos:
        d = decide(inputs)
        assert d.guide == guide, inputs
        assert d.path[-1] == "-> " + GUIDE_ANSWERS[guide]
        assert d.summary().startswith(f"The guide's answer (decision flowchart): {GUIDE_ANSWERS[guide]}")
        assert d.recommendation in PICKS and d.reasons


def test_the_issues_examples_are_now_the_guides() -> None:
    # Stable, no citations, > 100k, format critical: the guide says hybrid (ragft said finetuned).
    d = decide(DecisionInputs(knowledge_changes=False, citations=False, volume=200_000, format_critical=True,
                              examples=800))
    assert d.guide == "hybrid" and d.recommendation == "ft_rag"
    # Changing knowledge with 800 examples: the guide says RAG (ragft said router or ft_rag).
    d = decide(DecisionInputs(knowledge_changes=True, citations=False, volume=200_000, format_critical=False,
                              examples=800))
    assert d.guide == "rag" and d.recommendation == "rag"
    # Below 100k queries the guide starts simple with RAG (ragft said cascade).
    d = decide(DecisionInputs(knowledge_changes=False, citations=False, volume=50_000, format_critical=False,
                              examples=800))
    assert d.guide == "rag" and d.recommendation == "rag"


def test_refinement_is_labelled_and_says_which_hybrid_pattern() -> None:
    hybrid = decide(DecisionInputs(knowledge_changes=False, citations=False, volume=200_000,
                                   format_critical=True, examples=100))
    text = hybrid.summary()
    assert "ragft's refinement (not part of the guide): ft_rag" in text
    assert any("pattern 1" in r for r in hybrid.reasons)
    # RAG with a critical format and 500+ examples: the guide's answer stays RAG, ragft refines.
    rag_fmt = decide(DecisionInputs(knowledge_changes=True, format_critical=True, examples=800))
    assert rag_fmt.guide == "rag" and rag_fmt.recommendation == "ft_rag"


def test_boundaries_are_strict_for_volume_and_inclusive_for_examples() -> None:
    stable = {"knowledge_changes": False, "citations": False, "format_critical": False}
    assert decide(DecisionInputs(**stable, examples=500, volume=100_000)).guide == "rag"
    assert decide(DecisionInputs(**stable, examples=500, volume=100_001)).guide == "finetuning"
    assert decide(DecisionInputs(**stable, examples=499, volume=100_001)).guide == "rag"


@pytest.mark.parametrize(("situation", "guide"), [
    ("startup", "rag"), ("enterprise-compliance", "rag"), ("customer-support", "hybrid"),
    ("document-qa", "rag"), ("code-generation", "finetuning"), ("real-time-trading", "finetuning"),
    ("internal-knowledge-base", "rag"), ("high-volume-stable", "finetuning"),
])
def test_quick_decision_table(situation: str, guide: str) -> None:
    d = decide(situation=situation)
    assert d.guide == guide and d.source == "situation"
    assert d.summary().startswith(f"The guide's answer (quick decision table): {GUIDE_ANSWERS[guide]}")
    assert d.assumptions == ()


def test_unknown_situation_is_refused() -> None:
    with pytest.raises(EvaluationError, match="customer-support"):
        decide(situation="chatbot")


def test_update_frequency_without_measurements_follows_the_guides_table() -> None:
    assert knowledge_changes_from("daily", None)[0] is True
    assert knowledge_changes_from("weekly", None)[0] is True
    assert knowledge_changes_from("monthly", None)[0] is False
    assert parse_update_frequency("8/month") == ("8/month", 8.0)
    with pytest.raises(EvaluationError):
        parse_update_frequency("often")


def _freshness(ft_seconds: float) -> FreshnessReport:
    fact = make_fact()
    return FreshnessReport([
        UpdateMeasurement("rag", "add", (Step("index update", 0.2), Step("answer", 0.1)), True),
        UpdateMeasurement("finetune:local", "add", (Step("training", ft_seconds),), True),
    ], fact)


def test_measured_update_times_answer_knowledge_changes_frequently() -> None:
    stable = DecisionInputs(citations=False, volume=200_000, format_critical=False, examples=800,
                            update_frequency="daily")
    # 12 s per fine-tuning update keeps up with daily updates (12 s x 10 << 1 day): not "frequent".
    fast = decide(stable, freshness=_freshness(12.0))
    assert fast.guide == "finetuning" and fast.path[0] == "Knowledge changes frequently? No"
    assert any("measured: a fine-tuning update takes 12.0 s on finetune:local" in e for e in fast.evidence)
    assert any(e.startswith("measured update (rag)") for e in fast.evidence)
    # 6 hours per update (an API job) cannot keep up with daily updates with a 10x margin.
    slow = decide(stable, freshness=_freshness(6 * 3600.0))
    assert slow.guide == "rag" and slow.path[0] == "Knowledge changes frequently? Yes"
    # An explicit answer wins, and a disagreeing measurement is reported.
    told = decide(DecisionInputs(knowledge_changes=True, update_frequency="daily"), freshness=_freshness(12.0))
    assert told.guide == "rag" and any("the update frequency says no" in e for e in told.evidence)


def test_unknown_answers_use_cautious_defaults_and_say_so() -> None:
    decision = decide(DecisionInputs())
    # Unknown change rate is treated as "changes often": facts stay in the index.
    assert decision.recommendation == "rag" and decision.guide == "rag"
    assert len(decision.assumptions) == 5
    assert any("knowledge changes often: yes" in a for a in decision.assumptions)
    only_examples = decide(DecisionInputs(knowledge_changes=False, citations=False, volume=10, format_critical=False))
    assert only_examples.assumptions == ("training examples available: none",)
    assert "Assumed (not answered)" in decision.summary()


def test_path_names_the_deciding_facts() -> None:
    d = decide(DecisionInputs(knowledge_changes=False, citations=False, examples=900, volume=250_000,
                              format_critical=False))
    assert d.guide == "finetuning" and d.recommendation == "finetuned"
    assert ">100K queries/month? Yes (250,000)" in d.path
    assert "Have training data? Yes, 500+ examples (900)" in d.path


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
