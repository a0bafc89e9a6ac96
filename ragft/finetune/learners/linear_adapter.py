"""A linear query-embedding adapter trained with in-batch negatives (contrastive loss)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ragft.finetune.learners.adam import Adam
from ragft.finetune.learners.progress import StepCallback

__all__ = ["AdapterFit", "fit_linear_adapter"]


def _softmax(z: np.ndarray) -> np.ndarray:
    # Row-wise, shifted by each row's maximum so large logits do not overflow.
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class AdapterFit:
    """A trained linear query adapter ``q' = normalize(matrix @ q)`` and its history."""

    matrix: np.ndarray
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0


def _contrastive_loss_grad(
    w: np.ndarray,
    q: np.ndarray,
    p: np.ndarray,
    mask: np.ndarray | None,
    scale: float,
    need_grad: bool = True,
    extra: np.ndarray | None = None,
) -> tuple[float, np.ndarray | None]:
    # logits_ij = scale · cos(W q_i, c_j) over columns c = the batch's passages (+ any mined
    # hard negatives); the positive of row i is column i.
    u = q @ w.T
    norms = np.linalg.norm(u, axis=1, keepdims=True).clip(1e-12)
    qh = u / norms
    cols = p if extra is None else np.concatenate([p, extra])
    logits = scale * (qh @ cols.T)
    if mask is not None:
        logits[:, : len(p)] = np.where(mask, -1e9, logits[:, : len(p)])
    probs = _softmax(logits)
    n = len(q)
    loss = -float(np.mean(np.log(probs[np.arange(n), np.arange(n)] + 1e-12)))
    if not need_grad:
        return loss, None
    g_logits = probs.copy()
    g_logits[np.arange(n), np.arange(n)] -= 1
    g_logits /= n
    g_qh = scale * (g_logits @ cols)
    # Back through the normalisation: d(u/|u|) = (I - qh qhᵀ)/|u|.
    g_u = (g_qh - qh * (qh * g_qh).sum(axis=1, keepdims=True)) / norms
    return loss, g_u.T @ q


def _batch_mask(groups: np.ndarray | None, idx: np.ndarray) -> np.ndarray | None:
    # Another row of the same query (or the same passage) in a batch is not a negative.
    if groups is None:
        return None
    g = groups[idx]
    same = g[:, None] == g[None, :]
    np.fill_diagonal(same, False)
    return same


def fit_linear_adapter(
    queries: np.ndarray,
    passages: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    val_queries: np.ndarray | None = None,
    val_passages: np.ndarray | None = None,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
    temperature: float = 0.05,
    identity_l2: float = 0.0,
    hard_negatives: np.ndarray | None = None,
    seed: int = 0,
    on_step: StepCallback | None = None,
) -> AdapterFit:
    """Train a d×d query adapter with in-batch negatives (multiple-negatives ranking loss).

    ``queries[i]`` and ``passages[i]`` are a relevant pair of L2-normalised embeddings; every
    other passage in the mini-batch is a negative (``groups`` marks rows of the same query so
    its other relevant passages are not treated as negatives). The matrix starts as the
    identity — the un-adapted embedder — and ``identity_l2`` adds ``λ‖W − I‖²_F`` so a small
    training set cannot drag it far. ``hard_negatives[i]`` (optional) is a passage that looks
    relevant to ``queries[i]`` but is not (e.g. the un-adapted embedder's best wrong hit); each
    batch adds them as extra negative columns, which random in-batch negatives rarely are.
    With validation pairs the epoch with the lowest validation loss is kept (early stopping);
    ``best_epoch`` 0 means the identity was never beaten.
    """
    q = np.asarray(queries, dtype=np.float64)
    p = np.asarray(passages, dtype=np.float64)
    n, d = q.shape
    if p.shape != q.shape:
        raise ValueError(f"queries {q.shape} and passages {p.shape} must have the same shape")
    hard = None if hard_negatives is None else np.asarray(hard_negatives, dtype=np.float64)
    if hard is not None and hard.shape != q.shape:
        raise ValueError(f"hard_negatives {hard.shape} must match queries {q.shape}")
    eye = np.eye(d)
    w = eye.copy()
    opt = Adam([w], lr)
    scale = 1.0 / temperature
    rng = np.random.default_rng(seed)
    has_val = val_queries is not None and val_passages is not None and len(val_queries) > 1
    vq = np.asarray(val_queries, dtype=np.float64) if has_val else None
    vp = np.asarray(val_passages, dtype=np.float64) if has_val else None

    def val_loss(m: np.ndarray) -> float:
        assert vq is not None and vp is not None
        losses = []
        for start in range(0, len(vq), batch_size):
            sl = slice(start, start + batch_size)
            if len(vq[sl]) > 1:
                losses.append(_contrastive_loss_grad(m, vq[sl], vp[sl], None, scale, False)[0])
        return float(np.mean(losses))

    best_w, best_loss, best_epoch = w.copy(), val_loss(w) if has_val else math.inf, 0
    history: list[dict[str, float]] = []
    if has_val:
        history.append({"epoch": 0.0, "valid_loss": best_loss})
    for epoch in range(1, epochs + 1):
        order = rng.permutation(n)
        losses = []
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < 2:
                continue
            extra = hard[idx] if hard is not None else None
            loss, grad = _contrastive_loss_grad(w, q[idx], p[idx], _batch_mask(groups, idx), scale,
                                                extra=extra)
            assert grad is not None
            if identity_l2:
                grad = grad + 2 * identity_l2 * (w - eye)
            opt.step([grad])
            losses.append(loss)
        row = {"epoch": float(epoch), "train_loss": float(np.mean(losses)) if losses else 0.0,
               "distance_from_identity": float(np.linalg.norm(w - eye))}
        if has_val:
            row["valid_loss"] = val_loss(w)
            if row["valid_loss"] < best_loss:
                best_w, best_loss, best_epoch = w.copy(), row["valid_loss"], epoch
        history.append(row)
        if on_step is not None:
            on_step(epoch, epochs, row)
    final = best_w if has_val else w
    return AdapterFit(final.astype(np.float32), history, best_epoch if has_val else epochs)
