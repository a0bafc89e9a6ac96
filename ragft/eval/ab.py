"""A/B comparison of two strategies (or two configs) on the same questions, with paired tests.

Both arms answered the same questions, so the comparison is paired: per question, the
difference ``B - A`` of a score. Two tests, both exact or resampling-based, computed by
``scipy.stats`` (``binomtest``, ``bootstrap``) rather than by hand:

* a **paired bootstrap** confidence interval of the mean difference of a graded score
  (token F1 by default): resample questions with replacement, take the mean difference, and
  read the CI off the percentiles;
* an **exact sign test** on the graded score (questions where B beat A vs. where A beat B,
  ties dropped), and the **exact McNemar test** on a right/wrong score (``contains`` or exact
  match): only discordant questions carry information, and under "no difference" each is
  equally likely to go either way, so the p-value is a two-sided binomial(n, 1/2) tail.

Only answerable questions have graded scores, so out-of-scope questions are not part of the
pairing (compare their abstention rates in the summaries).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from ragft.errors import EvaluationError
from ragft.eval.harness import EvalResult, QuestionRecord, _atomic_write_text

__all__ = [
    "ABReport",
    "compare_ab",
    "exact_binomial_p",
    "mcnemar_exact",
    "paired_bootstrap_ci",
    "save_ab_reports",
    "sign_test",
]

_GRADED = ("f1", "exact_match", "contains", "judge_score")
_BINARY = ("contains", "exact_match")


def exact_binomial_p(k: int, n: int) -> float:
    """Two-sided exact p-value of ``k`` successes in ``n`` fair coin flips
    (``scipy.stats.binomtest``; for p = 1/2 it is ``min(1, 2 * P(X <= min(k, n - k)))``);
    1.0 when ``n == 0``."""
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 1.0
    return float(stats.binomtest(k, n, 0.5).pvalue)


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided sign test p-value for ``wins`` vs ``losses`` (ties already dropped)."""
    return exact_binomial_p(wins, wins + losses)


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Exact McNemar p-value from the discordant pair counts: ``a_only`` questions only A got
    right, ``b_only`` only B got right."""
    return exact_binomial_p(a_only, a_only + b_only)


def paired_bootstrap_ci(
    differences: Sequence[float],
    *,
    samples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of paired ``differences``.

    ``scipy.stats.bootstrap`` with the percentile method; deterministic for a given ``seed``.
    Resampling runs in batches so memory stays bounded for large question sets.
    """
    diffs = np.asarray(differences, dtype=np.float64)
    n = diffs.size
    if n == 0:
        raise EvaluationError("the bootstrap needs at least one paired question")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if n == 1:  # every resample is the one question (scipy refuses a single observation)
        return float(diffs[0]), float(diffs[0])
    ci = stats.bootstrap(
        (diffs,), np.mean, n_resamples=samples, confidence_level=confidence, method="percentile",
        vectorized=True, rng=np.random.default_rng(seed),
        batch=max(1, 2_000_000 // n),  # ~16 MB of resample indices at a time
    ).confidence_interval
    return float(ci.low), float(ci.high)


@dataclass(frozen=True, slots=True)
class ABReport:
    """The outcome of :func:`compare_ab`. Differences are ``B - A``.

    ``n`` paired questions; ``mean_a``/``mean_b``/``mean_diff`` of ``metric`` with a
    ``confidence`` bootstrap CI ``[ci_low, ci_high]``; the sign test on ``metric``
    (``wins``: B higher, ``losses``: A higher, ``ties``) and its ``sign_p``; McNemar on
    ``binary_metric`` (``a_only``/``b_only`` right) and its ``mcnemar_p``.
    """

    label_a: str
    label_b: str
    metric: str
    n: int
    mean_a: float
    mean_b: float
    mean_diff: float
    ci_low: float
    ci_high: float
    confidence: float
    samples: int
    wins: int
    losses: int
    ties: int
    sign_p: float
    binary_metric: str
    rate_a: float
    rate_b: float
    a_only: int
    b_only: int
    mcnemar_p: float
    excluded: int = 0

    @property
    def significant(self) -> bool:
        """True when the bootstrap CI of the difference excludes 0."""
        return self.ci_low > 0 or self.ci_high < 0

    @property
    def verdict(self) -> str:
        """One sentence: which arm is better on ``metric`` by the bootstrap CI, or that the data
        cannot tell; notes when the sign test does not agree at the same level."""
        level = f"{self.confidence:.0%}"
        alpha = 1 - self.confidence
        if not self.significant:
            return f"no significant difference on {self.metric} ({level} CI includes 0)"
        better = f"B ({self.label_b})" if self.ci_low > 0 else f"A ({self.label_a})"
        text = f"{better} is better on {self.metric} ({level} CI excludes 0)"
        if self.sign_p >= alpha:
            # The mean can move on a few large differences while most questions tie: say so.
            text += f"; the sign test does not confirm it (p = {self.sign_p:.3g}, most questions tie or split)"
        return text

    def summary(self) -> str:
        """A short multi-line report for the terminal."""
        return "\n".join([
            f"A/B: A = {self.label_a}, B = {self.label_b}; n = {self.n} paired questions"
            + (f" ({self.excluded} unpaired left out)" if self.excluded else ""),
            f"  {self.metric}: A {self.mean_a:.3f}, B {self.mean_b:.3f}, difference B-A "
            f"{self.mean_diff:+.3f}, {self.confidence:.0%} CI [{self.ci_low:+.3f}, {self.ci_high:+.3f}] "
            f"(paired bootstrap, {self.samples} resamples)",
            f"  sign test on {self.metric}: B higher {self.wins}, A higher {self.losses}, "
            f"ties {self.ties}; p = {self.sign_p:.4g}",
            f"  McNemar on {self.binary_metric}: A {self.rate_a:.3f}, B {self.rate_b:.3f}; only A right "
            f"{self.a_only}, only B right {self.b_only}; exact p = {self.mcnemar_p:.4g}",
            f"  verdict: {self.verdict}",
        ])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (with the verdict)."""
        return {**asdict(self), "verdict": self.verdict, "significant": self.significant}


def _pick(result: EvalResult, wanted: str | None, role: str) -> str:
    if wanted is not None:
        if wanted not in result.summaries:
            raise EvaluationError(
                f"strategy {wanted!r} ({role}) is not in run {result.run_id}; it has "
                f"{', '.join(result.strategies)}"
            )
        return wanted
    if len(result.strategies) != 1:
        raise EvaluationError(
            f"run {result.run_id} has several strategies ({', '.join(result.strategies)}); "
            f"name the one to use as {role}"
        )
    return result.strategies[0]


def _scores(records: Sequence[QuestionRecord], metric: str) -> dict[str, float]:
    return {r.qid: float(getattr(r, metric)) for r in records if getattr(r, metric) is not None}


def compare_ab(
    result_a: EvalResult,
    result_b: EvalResult | None = None,
    *,
    strategy_a: str | None = None,
    strategy_b: str | None = None,
    metric: str = "f1",
    binary_metric: str = "contains",
    samples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
    labels: tuple[str, str] | None = None,
) -> ABReport:
    """Compare arm A with arm B question by question.

    Either two strategies of one run (``result_b=None``; a run with exactly two strategies
    needs no names), or one strategy from each of two runs over the same questions (e.g. the
    same strategy under two configs). Questions are paired by id; those scored in only one
    arm are left out and counted in ``excluded``. ``labels`` names the arms in the report
    (default: the strategy names, with the run ids when two runs are compared).
    """
    if metric not in _GRADED:
        raise EvaluationError(f"metric must be one of {', '.join(_GRADED)}, got {metric!r}")
    if binary_metric not in _BINARY:
        raise EvaluationError(f"binary_metric must be one of {', '.join(_BINARY)}, got {binary_metric!r}")
    if result_b is None:
        if strategy_a is None and strategy_b is None and len(result_a.strategies) == 2:
            strategy_a, strategy_b = result_a.strategies
        if strategy_a is None or strategy_b is None:
            raise EvaluationError("name both strategies to compare within one run (A and B)")
        name_a, name_b = _pick(result_a, strategy_a, "A"), _pick(result_a, strategy_b, "B")
        recs_a, recs_b = result_a.records_for(name_a), result_a.records_for(name_b)
        label_a, label_b = name_a, name_b
    else:
        name_a = _pick(result_a, strategy_a, "A")
        if strategy_b is None and name_a in result_b.summaries:
            strategy_b = name_a
        name_b = _pick(result_b, strategy_b, "B")
        recs_a, recs_b = result_a.records_for(name_a), result_b.records_for(name_b)
        label_a, label_b = f"{name_a} @ {result_a.run_id}", f"{name_b} @ {result_b.run_id}"

    if labels is not None:
        label_a, label_b = labels
    graded_a, graded_b = _scores(recs_a, metric), _scores(recs_b, metric)
    binary_a, binary_b = _scores(recs_a, binary_metric), _scores(recs_b, binary_metric)
    # Keep the first arm's question order so the bootstrap is reproducible.
    paired = [q for q in graded_a if q in graded_b and q in binary_a and q in binary_b]
    scored = set(graded_a) | set(graded_b)
    if not paired:
        raise EvaluationError(
            f"no question has a {metric} score in both arms; were they run on the same questions?"
        )
    a = np.array([graded_a[q] for q in paired])
    b = np.array([graded_b[q] for q in paired])
    diffs = b - a
    low, high = paired_bootstrap_ci(diffs, samples=samples, confidence=confidence, seed=seed)
    wins, losses = int((diffs > 0).sum()), int((diffs < 0).sum())
    right_a = np.array([binary_a[q] >= 0.5 for q in paired])
    right_b = np.array([binary_b[q] >= 0.5 for q in paired])
    a_only, b_only = int((right_a & ~right_b).sum()), int((right_b & ~right_a).sum())
    return ABReport(
        label_a=label_a,
        label_b=label_b,
        metric=metric,
        n=len(paired),
        mean_a=float(a.mean()),
        mean_b=float(b.mean()),
        mean_diff=float(diffs.mean()),
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        samples=samples,
        wins=wins,
        losses=losses,
        ties=len(paired) - wins - losses,
        sign_p=sign_test(wins, losses),
        binary_metric=binary_metric,
        rate_a=float(right_a.mean()),
        rate_b=float(right_b.mean()),
        a_only=a_only,
        b_only=b_only,
        mcnemar_p=mcnemar_exact(a_only, b_only),
        excluded=len(scored) - len(paired),
    )


def save_ab_reports(
    reports: Sequence[ABReport], path: str | Path, *, meta: Mapping[str, Any] | None = None
) -> Path:
    """Write ``reports`` (and ``meta``, e.g. the two configs) as JSON, atomically."""
    data = {**dict(meta or {}), "reports": [r.to_dict() for r in reports]}
    return _atomic_write_text(path, json.dumps(data, indent=2) + "\n")
