"""The linear query adapter (retrieval fine-tuning)."""

from __future__ import annotations

import numpy as np

from ragft.finetune.learners.linear_adapter import fit_linear_adapter


def test_linear_adapter_recovers_a_hidden_rotation() -> None:
    # Passages are queries under a fixed rotation: the identity ranks badly, a learned
    # adapter should approach the rotation.
    rng = np.random.default_rng(1)
    d, n = 16, 600
    q = rng.normal(size=(n, d))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    rot, _ = np.linalg.qr(rng.normal(size=(d, d)))
    p = q @ rot.T + 0.3 * rng.normal(size=(n, d)) / np.sqrt(d)
    p /= np.linalg.norm(p, axis=1, keepdims=True)

    def recall_at_1(w: np.ndarray, qs: np.ndarray, ps: np.ndarray) -> float:
        a = qs @ w.T
        a /= np.linalg.norm(a, axis=1, keepdims=True)
        return float(np.mean((a @ ps.T).argmax(1) == np.arange(len(qs))))

    train, val = slice(0, 500), slice(500, None)
    fit = fit_linear_adapter(q[train], p[train], val_queries=q[val], val_passages=p[val],
                             epochs=30, lr=5e-3, batch_size=50, seed=0)
    before = recall_at_1(np.eye(d), q[val], p[val])
    after = recall_at_1(fit.matrix.astype(np.float64), q[val], p[val])
    assert after > before + 0.1
    assert fit.best_epoch > 0
    # A strong identity penalty keeps the adapter near the identity.
    tight = fit_linear_adapter(q[train], p[train], epochs=5, lr=5e-3, identity_l2=100.0)
    assert tight.history[-1]["distance_from_identity"] < fit.history[-1]["distance_from_identity"]
