"""Platt scaling: a one-feature logistic calibration fitted by Newton's method."""

from __future__ import annotations

import numpy as np

__all__ = ["calibrate_logistic"]


def calibrate_logistic(
    features: np.ndarray, labels: np.ndarray, *, l2: float = 1e-3, iterations: int = 50
) -> tuple[float, float]:
    """``(slope, intercept)`` of ``P(y=1|f) = sigmoid(slope·f + intercept)`` (Platt scaling).

    Newton's method on the class-balanced log-loss, so a calibration set with many more
    negatives than positives still puts the 0.5 point between the two groups.
    """
    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if y.min() == y.max():
        raise ValueError("calibration needs both positive and negative examples")
    weights = np.where(y == 1, 0.5 / y.sum(), 0.5 / (len(y) - y.sum()))
    design = np.stack([f, np.ones_like(f)], axis=1)
    theta = np.zeros(2)
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-np.clip(design @ theta, -60, 60)))
        grad = design.T @ (weights * (p - y)) + l2 * np.array([theta[0], 0.0])
        hess = (design * (weights * p * (1 - p))[:, None]).T @ design + l2 * np.diag([1.0, 0.0])
        delta = np.linalg.solve(hess + 1e-9 * np.eye(2), grad)
        theta -= delta
        if np.abs(delta).max() < 1e-9:
            break
    return float(theta[0]), float(theta[1])
