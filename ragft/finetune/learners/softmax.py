"""Multinomial logistic (softmax) regression by full-batch gradient descent, numpy only."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ragft.finetune.learners.adam import Adam
from ragft.finetune.learners.progress import StepCallback

__all__ = ["SoftmaxFit", "fit_softmax_regression", "softmax"]


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by each row's maximum so large logits do not overflow."""
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class SoftmaxFit:
    """A trained multinomial logistic regression: ``p = softmax(x @ weights + bias)``."""

    weights: np.ndarray
    bias: np.ndarray
    history: list[dict[str, float]] = field(default_factory=list)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities for each row of ``x``."""
        return softmax(x @ self.weights + self.bias)


def fit_softmax_regression(
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    steps: int = 300,
    lr: float = 0.05,
    l2: float = 1e-3,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    on_step: StepCallback | None = None,
    report_every: int = 0,
) -> SoftmaxFit:
    """Multinomial logistic regression by full-batch gradient descent (Adam), numpy only.

    Minimises mean cross-entropy + ``l2/2·‖W‖²``. Every ``report_every`` steps (default: 10
    reports in all) ``on_step`` receives the training loss and, with validation data, the
    validation loss and accuracy.
    """
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    w = np.zeros((d, n_classes))
    b = np.zeros(n_classes)
    onehot = np.eye(n_classes)[y]
    opt = Adam([w, b], lr)
    report_every = report_every or max(1, steps // 10)
    history: list[dict[str, float]] = []
    for step in range(1, steps + 1):
        p = softmax(x @ w + b)
        loss = -float(np.mean(np.log(p[np.arange(n), y] + 1e-12))) + 0.5 * l2 * float((w * w).sum())
        g = (p - onehot) / n
        opt.step([x.T @ g + l2 * w, g.sum(axis=0)])
        if step % report_every == 0 or step == steps:
            row = {"step": float(step), "train_loss": loss}
            if x_val is not None and y_val is not None and len(y_val):
                pv = softmax(np.asarray(x_val, dtype=np.float64) @ w + b)
                picked = pv[np.arange(len(y_val)), y_val]
                row["valid_loss"] = -float(np.mean(np.log(picked + 1e-12)))
                row["valid_accuracy"] = float(np.mean(pv.argmax(axis=1) == y_val))
            history.append(row)
            if on_step is not None:
                on_step(step, steps, row)
    return SoftmaxFit(w, b, history)
