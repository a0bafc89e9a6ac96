"""Retrieval metrics against values computed by hand (the arithmetic is in each test)."""

from __future__ import annotations

import math

import pytest

from ragft.metrics import mean_metric, mrr, ndcg_at_k, recall_at_k

RANKING = ["d3", "d1", "d7", "d2", "d9"]


def test_recall_at_k() -> None:
    relevant = {"d1", "d2", "d5"}
    assert recall_at_k(RANKING, relevant, 1) == 0.0  # d3 is not relevant
    assert recall_at_k(RANKING, relevant, 2) == pytest.approx(1 / 3)  # d1
    assert recall_at_k(RANKING, relevant, 5) == pytest.approx(2 / 3)  # d1, d2; d5 never found
    assert recall_at_k(RANKING, set(), 5) == 0.0
    assert recall_at_k(["d1", "d1", "d2"], {"d1", "d2"}, 2) == 1.0  # repeats count once


def test_mrr() -> None:
    assert mrr(RANKING, {"d7", "d9"}) == pytest.approx(1 / 3)  # first relevant at rank 3
    assert mrr(RANKING, {"d3"}) == 1.0
    assert mrr(RANKING, {"x"}) == 0.0
    assert mrr(RANKING, {"d9"}, k=4) == 0.0  # rank 5 is beyond k


def test_ndcg_binary() -> None:
    # Relevant d1 (rank 2) and d2 (rank 4): DCG = 1/log2(3) + 1/log2(5).
    # Ideal puts both first: IDCG = 1/log2(2) + 1/log2(3) = 1 + 0.6309.
    dcg = 1 / math.log2(3) + 1 / math.log2(5)  # 0.6309 + 0.4307 = 1.0616
    idcg = 1 + 1 / math.log2(3)  # 1.6309
    assert ndcg_at_k(RANKING, {"d1", "d2"}, 5) == pytest.approx(dcg / idcg)  # 0.6509
    assert ndcg_at_k(RANKING, {"d1", "d2"}, 5) == pytest.approx(0.6509, abs=1e-4)
    # At k=2 only d1 counts: DCG = 0.6309; IDCG@2 is still 1.6309 -> 0.3869.
    assert ndcg_at_k(RANKING, {"d1", "d2"}, 2) == pytest.approx(0.6309 / 1.6309, abs=1e-4)


def test_ndcg_graded() -> None:
    gains = {"d3": 1.0, "d2": 3.0, "d5": 2.0}
    # DCG@5: d3 gain 1 at rank 1 -> 1/1; d2 gain 3 at rank 4 -> 3/log2(5) = 1.2920. Sum 2.2920.
    # IDCG@5: gains sorted 3, 2, 1 -> 3/1 + 2/log2(3) + 1/log2(4) = 3 + 1.2619 + 0.5 = 4.7619.
    assert ndcg_at_k(RANKING, gains, 5) == pytest.approx(2.2920 / 4.7619, abs=1e-4)  # 0.4813
    assert ndcg_at_k(["d2", "d5", "d3"], gains, 3) == pytest.approx(1.0)
    assert ndcg_at_k(RANKING, {"d3": 0.0}, 5) == 0.0  # no positive label: undefined -> 0


def test_mean_metric_and_k_validation() -> None:
    assert mean_metric([1.0, 0.5, 0.0]) == 0.5
    assert mean_metric([]) == 0.0
    with pytest.raises(ValueError):
        recall_at_k(RANKING, {"d1"}, 0)
