"""The Adam optimiser over numpy arrays, shared by the gradient-trained learners."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["Adam"]


class Adam:
    """Adam for a list of numpy parameters, updated in place by :meth:`step`."""

    def __init__(self, params: Sequence[np.ndarray], lr: float, b1: float = 0.9, b2: float = 0.999):
        self.params = list(params)
        self.lr, self.b1, self.b2 = lr, b1, b2
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = 0

    def step(self, grads: Sequence[np.ndarray]) -> None:
        """Apply one update from ``grads`` (same shapes and order as the parameters)."""
        self.t += 1
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            m_hat = m / (1 - self.b1**self.t)
            v_hat = v / (1 - self.b2**self.t)
            p -= self.lr * m_hat / (np.sqrt(v_hat) + 1e-8)
