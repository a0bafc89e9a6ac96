"""Platt scaling (the local generator's confidence)."""

from __future__ import annotations

import numpy as np
import pytest

from ragft.finetune.learners.calibration import calibrate_logistic


def test_calibrate_logistic_puts_the_midpoint_between_groups() -> None:
    f = np.array([0.1, 0.2, 0.3, 0.35, 0.7, 0.8, 0.9])
    y = np.array([0, 0, 0, 0, 1, 1, 1])
    slope, intercept = calibrate_logistic(f, y)
    assert slope > 0 and 0.35 < -intercept / slope < 0.7
    with pytest.raises(ValueError):
        calibrate_logistic(f, np.zeros(7))
