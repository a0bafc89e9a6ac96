"""Cascade threshold calibration against hand-computed curves."""

from __future__ import annotations

import pytest

from ragft.strategies.cascade import calibrate_threshold

# Six labelled outcomes of the fine-tuned model, sorted by confidence for readability.
CONF = [0.95, 0.90, 0.80, 0.60, 0.40, None]
FT_OK = [True, True, False, True, False, False]
RAG_OK = [True, False, True, True, True, False]


def test_curve_points_by_hand() -> None:
    choice = calibrate_threshold(CONF, FT_OK, fallback_correct=RAG_OK, target_accuracy=0.0)
    by_t = {round(p.threshold, 2): p for p in choice.curve}
    # t = 0.80 keeps 0.95, 0.90, 0.80 -> 2 of 3 right; falls back 3 of 6.
    p = by_t[0.8]
    assert p.fallback_rate == pytest.approx(0.5)
    assert p.accepted_accuracy == pytest.approx(2 / 3)
    # overall: kept right 2 + fallback right on 0.60 (T), 0.40 (T), None (F) = 4 / 6
    assert p.overall_accuracy == pytest.approx(4 / 6)
    # t = 0.0 keeps all known confidences (5); None always falls back.
    assert by_t[0.0].fallback_rate == pytest.approx(1 / 6)
    assert by_t[0.0].accepted_accuracy == pytest.approx(3 / 5)
    # Above every confidence: all fall back, overall = RAG's accuracy 4/6.
    assert choice.curve[-1].fallback_rate == 1.0 and choice.curve[-1].accepted_accuracy is None
    assert choice.curve[-1].overall_accuracy == pytest.approx(4 / 6)


def test_target_accuracy_picks_the_lowest_threshold_that_reaches_it() -> None:
    choice = calibrate_threshold(CONF, FT_OK, target_accuracy=1.0)
    assert choice.threshold == pytest.approx(0.90)  # 0.95 and 0.90 are both right
    assert choice.point.fallback_rate == pytest.approx(4 / 6)
    assert "lowest threshold" in choice.reason


def test_target_fallback_rate_picks_the_highest_threshold_within_it() -> None:
    choice = calibrate_threshold(CONF, FT_OK, target_fallback_rate=0.5)
    assert choice.threshold == pytest.approx(0.80)
    assert choice.point.fallback_rate <= 0.5


def test_unreachable_accuracy_sends_everything_to_fallback() -> None:
    choice = calibrate_threshold([0.9, 0.8], [False, False], target_accuracy=0.5)
    assert choice.point.fallback_rate == 1.0 and "no threshold" in choice.reason


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        calibrate_threshold(CONF, FT_OK)
    with pytest.raises(ValueError, match="same"):
        calibrate_threshold(CONF, FT_OK[:2], target_accuracy=0.5)
