"""A/B comparison: exact tests against hand-computed p-values, bootstrap on constructed data."""

from __future__ import annotations

import pytest

from ragft.errors import EvaluationError
from ragft.eval.ab import (
    compare_ab,
    exact_binomial_p,
    mcnemar_exact,
    paired_bootstrap_ci,
    save_ab_reports,
    sign_test,
)
from ragft.eval.harness import EvalResult, QuestionRecord, summarize


def record(strategy: str, qid: str, f1: float | None, contains: float | None) -> QuestionRecord:
    kind = "factual" if f1 is not None else "out_of_scope"
    return QuestionRecord(
        strategy=strategy, qid=qid, kind=kind, question="q", gold="g", answer="a", route=strategy,
        route_key=strategy, outcome="answered" if f1 is not None else "correct_abstention",
        abstained=f1 is None, confidence=None, documents=(), exact_match=contains, f1=f1,
        contains=contains, citation_precision=None, citation_recall=None, recall_at_k=None,
        cost_usd=0.0, unpriced_calls=0, calls=1, input_tokens=0, output_tokens=0,
        embedding_tokens=0, total_tokens=0, latency_s=0.1,
    )


def make_result(run_id: str, arms: dict[str, list[tuple[str, float | None, float | None]]]) -> EvalResult:
    records = [record(name, qid, f1, c) for name, rows in arms.items() for qid, f1, c in rows]
    qids = tuple(dict.fromkeys(r.qid for r in records))
    return EvalResult(
        run_id=run_id, created_at="", strategies=tuple(arms), question_ids=qids, records=records,
        summaries={n: summarize(n, [r for r in records if r.strategy == n]) for n in arms},
    )


def test_exact_binomial_by_hand() -> None:
    assert exact_binomial_p(0, 10) == pytest.approx(2 / 1024)  # 2 * C(10,0) / 2^10
    assert exact_binomial_p(1, 5) == pytest.approx(0.375)  # 2 * (C(5,0) + C(5,1)) / 32 = 12/32
    assert exact_binomial_p(5, 10) == 1.0  # 2 * 638/1024 > 1 -> capped
    assert exact_binomial_p(0, 0) == 1.0
    assert exact_binomial_p(3, 1000) < 1e-290  # exact integers: no underflow to a wrong 0 or NaN
    with pytest.raises(ValueError):
        exact_binomial_p(4, 3)


def test_sign_and_mcnemar_are_binomial_tails() -> None:
    assert sign_test(10, 0) == sign_test(0, 10) == pytest.approx(2 / 1024)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(2, 8) == pytest.approx(2 * (1 + 10 + 45) / 1024)  # k = 2, n = 10


def test_identical_arms_give_p_1_and_a_zero_ci() -> None:
    rows = [(f"q{i}", 0.1 * (i % 10), float(i % 2)) for i in range(20)] + [("oos", None, None)]
    result = make_result("r1", {"a": rows, "b": rows})
    report = compare_ab(result)  # two strategies: no names needed
    assert report.n == 20  # the out-of-scope question has no F1 and is not paired
    assert report.mean_diff == 0.0 and (report.ci_low, report.ci_high) == (0.0, 0.0)
    assert (report.wins, report.losses, report.ties) == (0, 0, 20)
    assert report.sign_p == 1.0 and report.mcnemar_p == 1.0
    assert not report.significant and report.verdict.startswith("no significant difference")


def test_b_better_on_every_question_gives_a_small_p() -> None:
    a = [(f"q{i}", 0.5, 0.0) for i in range(12)]
    b = [(f"q{i}", 0.7, 1.0) for i in range(12)]
    report = compare_ab(make_result("r1", {"a": a, "b": b}), strategy_a="a", strategy_b="b")
    assert report.mean_diff == pytest.approx(0.2)
    assert report.ci_low == pytest.approx(0.2) and report.ci_high == pytest.approx(0.2)
    # 12 wins, 0 losses: p = 2 / 2^12; McNemar: 12 discordant, all for B -> the same.
    assert report.sign_p == pytest.approx(2 / 4096)
    assert (report.a_only, report.b_only) == (0, 12) and report.mcnemar_p == pytest.approx(2 / 4096)
    assert report.significant and report.verdict.startswith("B (b) is better")
    assert "n = 12 paired questions" in report.summary()


def test_bootstrap_ci_matches_the_normal_approximation_and_is_seeded() -> None:
    diffs = [0.0] * 50 + [1.0] * 50
    # mean 0.5, standard error sqrt(0.25 / 100) = 0.05 -> 95% CI about 0.5 +- 1.96 * 0.05.
    low, high = paired_bootstrap_ci(diffs, samples=20_000, seed=1)
    assert low == pytest.approx(0.402, abs=0.015) and high == pytest.approx(0.598, abs=0.015)
    assert paired_bootstrap_ci(diffs, seed=7) == paired_bootstrap_ci(diffs, seed=7)
    with pytest.raises(EvaluationError):
        paired_bootstrap_ci([])


def test_mixed_differences_are_not_significant() -> None:
    a = [(f"q{i}", 0.5, 1.0 if i % 2 else 0.0) for i in range(10)]
    b = [(f"q{i}", 0.6 if i % 2 else 0.4, 0.0 if i % 2 else 1.0) for i in range(10)]
    report = compare_ab(make_result("r", {"a": a, "b": b}))
    assert (report.wins, report.losses) == (5, 5) and report.sign_p == 1.0
    assert (report.a_only, report.b_only) == (5, 5) and report.mcnemar_p == 1.0
    assert report.ci_low < 0 < report.ci_high and not report.significant


def test_verdict_says_when_the_sign_test_does_not_confirm_the_ci() -> None:
    # 100 questions: B wins 5 by a full point, 95 tie. Wins per resample ~ Binomial(100, 0.05):
    # P(0) = 0.95^100 = 0.006 < 0.025, so the 95% CI's low end is >= 1/100 > 0. The sign test
    # sees 5 wins vs 0 losses: p = 2 / 2^5 = 0.0625 >= 0.05, so it does not confirm.
    a = [(f"q{i}", 0.0, 0.0) for i in range(100)]
    b = [(f"q{i}", 1.0 if i < 5 else 0.0, 0.0) for i in range(100)]
    report = compare_ab(make_result("r", {"a": a, "b": b}), seed=3)
    assert report.sign_p == pytest.approx(0.0625)
    assert report.ci_low > 0 and report.significant
    assert "B (b) is better" in report.verdict
    assert "the sign test does not confirm it (p = 0.0625" in report.verdict


def test_two_runs_pair_by_question_id(tmp_path) -> None:  # type: ignore[no-untyped-def]
    run_a = make_result("runA", {"rag": [("q1", 0.2, 0.0), ("q2", 0.4, 0.0), ("q3", 0.6, 1.0)]})
    run_b = make_result("runB", {"rag": [("q2", 0.9, 1.0), ("q3", 0.6, 1.0), ("q4", 1.0, 1.0)]})
    report = compare_ab(run_a, run_b)
    assert report.label_a == "rag @ runA" and report.label_b == "rag @ runB"
    assert report.n == 2 and report.excluded == 2  # q1 only in A, q4 only in B
    assert report.mean_diff == pytest.approx((0.5 + 0.0) / 2)
    path = save_ab_reports([report], tmp_path / "ab.json", meta={"a": "x.toml"})
    assert '"verdict"' in path.read_text() and '"a": "x.toml"' in path.read_text()


def test_bad_requests_fail_clearly() -> None:
    result = make_result("r", {"a": [("q1", 1.0, 1.0)], "b": [("q2", 1.0, 1.0)], "c": [("q1", 0.0, 0.0)]})
    with pytest.raises(EvaluationError, match="name both"):
        compare_ab(result)
    with pytest.raises(EvaluationError, match="'z'"):
        compare_ab(result, strategy_a="a", strategy_b="z")
    with pytest.raises(EvaluationError, match="no question"):
        compare_ab(result, strategy_a="a", strategy_b="b")
    with pytest.raises(EvaluationError, match="metric"):
        compare_ab(result, strategy_a="a", strategy_b="c", metric="bleu")
    with pytest.raises(EvaluationError, match="several strategies"):
        compare_ab(result, make_result("s", {"a": [("q1", 1.0, 1.0)]}))


def test_scipy_binomial_matches_the_exact_integer_tail_it_replaced() -> None:
    # The hand-written version summed math.comb exactly; scipy's binomtest must agree.
    import math
    from fractions import Fraction

    for n in range(0, 41):
        for k in range(n + 1):
            tail = sum(math.comb(n, i) for i in range(min(k, n - k) + 1))
            exact = float(min(Fraction(1), Fraction(2 * tail, 2**n))) if n else 1.0
            assert exact_binomial_p(k, n) == pytest.approx(exact, rel=1e-12, abs=1e-300), (k, n)


def test_scipy_bootstrap_reproduces_the_previous_numpy_cis() -> None:
    import json
    from pathlib import Path

    reference = json.loads((Path(__file__).parent / "data" / "bootstrap_reference.json").read_text())
    for case in reference["cases"]:
        low, high = paired_bootstrap_ci(case["diffs"], samples=case["samples"],
                                        confidence=case["confidence"], seed=case["seed"])
        assert (low, high) == pytest.approx(tuple(case["ci"]), abs=1e-12)
