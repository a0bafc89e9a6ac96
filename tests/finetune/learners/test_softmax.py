"""Softmax regression (the local router's learner)."""

from __future__ import annotations

import numpy as np

from ragft.finetune.learners.softmax import fit_softmax_regression


def test_softmax_regression_learns_separable_classes() -> None:
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 8)) * 3
    y = np.repeat(np.arange(3), 40)
    x = centers[y] + rng.normal(size=(120, 8))
    fit = fit_softmax_regression(x, y, 3, steps=200, x_val=x[::5], y_val=y[::5])
    assert fit.history[-1]["train_loss"] < fit.history[0]["train_loss"]
    assert np.mean(fit.predict_proba(x).argmax(1) == y) > 0.95
