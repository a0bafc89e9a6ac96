"""An offline fine-tuning backend that really trains small models (numpy, local embedder).

:class:`LocalFineTuneBackend` implements :class:`~ragft.finetune.jobs.FineTuneBackend` like
OpenAI's service does — files are uploaded, a job goes ``validating_files → queued → running →
succeeded/failed/cancelled`` and logs events such as ``"Step 40/300: training loss 0.4123"`` —
so :class:`~ragft.finetune.jobs.JobManager`, the CLI and the registry work the same on both.
The result is an artifact directory read by :mod:`ragft.models.local_ft`, with model id
``local-ft:<purpose>:<suffix>:<job id>`` (free in the price table).

What is trained depends on the *purpose* of the file (detected, or given as job metadata
``ragft_purpose``):

* **generator** — a nearest-neighbour memory of the training questions whose confidence is a
  logistic calibration of "how clearly does the question match one trained question". It is
  fitted on real held-out negatives (validation questions, and each training question against
  the *other* training questions) and on word-dropout views of training questions (the positives
  are only those whose nearest neighbour is still their own question).
* **rewriter** — query-word → rewrite-term associations plus a nearest-neighbour vote of similar
  training queries' rewrites; mixing weight and threshold are tuned for token F1 on validation
  data (or leave-one-out).
* **router** — multinomial logistic regression on embeddings, full-batch gradient descent (Adam)
  with L2; held-out accuracy goes in the job's metrics.
* **adapter** — a d×d linear query adapter initialised to the identity and trained with an
  in-batch-negative contrastive loss (as LlamaIndex's ``EmbeddingAdapterFinetuneEngine``), with an
  optional penalty on its distance from the identity; from ``{"query", "passage"}`` rows.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import shutil
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ragft.answer_metrics import token_f1
from ragft.errors import FineTuneError, TrainingDataError
from ragft.finetune.data import (
    ROUTER_SYSTEM_PREFIX,
    auto_epochs,
    detect_purpose,
    example_key,
    read_jsonl,
    validate_examples,
)
from ragft.finetune.jobs import Checkpoint, JobEvent, JobStatus, UploadedFile
from ragft.storage import (
    atomic_write_bytes,
    atomic_write_json,
    file_sha256,
    locked,
    publish_directory,
    read_json,
)
from ragft.metering.tokens import count_chat_tokens, count_tokens
from ragft.models.base import Embedder
from ragft.models.local_ft import (
    ARTIFACT_FORMAT,
    LOCAL_FT_PREFIX,
    artifact_dir,
    rewrite_query,
)
from ragft.textutil import content_words

__all__ = [
    "AdapterFit",
    "LocalFineTuneBackend",
    "SoftmaxFit",
    "StepCallback",
    "TrainedModel",
    "calibrate_logistic",
    "fit_linear_adapter",
    "fit_softmax_regression",
    "train_adapter",
    "train_generator",
    "train_rewriter",
    "train_router",
]

#: ``on_step(step, total, metrics)``: training progress, e.g. ``(40, 300, {"train_loss": 0.41})``.
StepCallback = Callable[[int, int, Mapping[str, float]], None]


class _Cancelled(Exception):
    pass


# --------------------------------------------------------------------------- numpy learners


class _Adam:
    """Adam for a list of numpy parameters (in place)."""

    def __init__(self, params: Sequence[np.ndarray], lr: float, b1: float = 0.9, b2: float = 0.999):
        self.params = list(params)
        self.lr, self.b1, self.b2 = lr, b1, b2
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = 0

    def step(self, grads: Sequence[np.ndarray]) -> None:
        self.t += 1
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            m_hat = m / (1 - self.b1**self.t)
            v_hat = v / (1 - self.b2**self.t)
            p -= self.lr * m_hat / (np.sqrt(v_hat) + 1e-8)


def _softmax(z: np.ndarray) -> np.ndarray:
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
        return _softmax(x @ self.weights + self.bias)


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
    opt = _Adam([w, b], lr)
    report_every = report_every or max(1, steps // 10)
    history: list[dict[str, float]] = []
    for step in range(1, steps + 1):
        p = _softmax(x @ w + b)
        loss = -float(np.mean(np.log(p[np.arange(n), y] + 1e-12))) + 0.5 * l2 * float((w * w).sum())
        g = (p - onehot) / n
        opt.step([x.T @ g + l2 * w, g.sum(axis=0)])
        if step % report_every == 0 or step == steps:
            row = {"step": float(step), "train_loss": loss}
            if x_val is not None and y_val is not None and len(y_val):
                pv = _softmax(np.asarray(x_val, dtype=np.float64) @ w + b)
                picked = pv[np.arange(len(y_val)), y_val]
                row["valid_loss"] = -float(np.mean(np.log(picked + 1e-12)))
                row["valid_accuracy"] = float(np.mean(pv.argmax(axis=1) == y_val))
            history.append(row)
            if on_step is not None:
                on_step(step, steps, row)
    return SoftmaxFit(w, b, history)


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
    opt = _Adam([w], lr)
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


# --------------------------------------------------------------------------- purposes


def _user(example: Mapping[str, Any]) -> str:
    for m in example.get("messages", ()):
        if m.get("role") == "user":
            return str(m.get("content") or "")
    return ""


def _assistant(example: Mapping[str, Any]) -> str:
    for m in reversed(example.get("messages", ())):
        if m.get("role") == "assistant":
            return str(m.get("content") or "")
    return ""


def _system(example: Mapping[str, Any]) -> str:
    for m in example.get("messages", ()):
        if m.get("role") == "system":
            return str(m.get("content") or "")
    return ""


@dataclass
class TrainedModel:
    """What a purpose trainer returns: the artifact's arrays (``weights.npz``), JSON data
    (``data.json``), extra manifest entries and the held-out metrics."""

    arrays: dict[str, np.ndarray]
    data: dict[str, Any]
    manifest: dict[str, Any]
    metrics: dict[str, float]


def _embed(embedder: Embedder, texts: Sequence[str], kind: str = "query") -> np.ndarray:
    if not texts:
        return np.zeros((0, embedder.dimension), dtype=np.float32)
    return embedder.embed(list(texts), kind=kind).vectors.astype(np.float32)  # type: ignore[arg-type]


def _dropout(text: str, rng: random.Random, rate: float) -> str:
    tokens = text.split()
    kept = [t for t in tokens if rng.random() >= rate]
    if len(kept) < max(2, len(tokens) // 2):
        kept = tokens[: max(2, len(tokens) // 2)]
    return " ".join(kept)


def _feature(sims: np.ndarray) -> tuple[int, float]:
    # Best similarity plus its margin over the runner-up (see LocalGeneratorModel).
    order = np.argsort(-sims)
    s1 = float(sims[order[0]])
    s2 = float(sims[order[1]]) if len(order) > 1 else 0.0
    return int(order[0]), 2 * s1 - s2


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    # scikit-learn's ROC AUC (ties count half); NaN when one class is missing, as before.
    if len(set(labels.tolist())) < 2:
        return float("nan")
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def train_generator(
    train: Sequence[Mapping[str, Any]],
    validation: Sequence[Mapping[str, Any]],
    embedder: Embedder,
    *,
    seed: int = 0,
    dropout_rate: float = 0.3,
    views: int = 3,
    on_step: StepCallback | None = None,
) -> TrainedModel:
    """Fit the nearest-neighbour generator and calibrate its confidence (see module doc).

    Calibration data: (1) each training question scored against the *other* training
    questions — an in-domain question the memory does not hold, labelled by whether the
    neighbour's answer still matches (token F1 ≥ 0.5); (2) validation questions, labelled the
    same way; (3) ``views`` word-dropout copies of each training question, positive only when
    their nearest neighbour gives the right answer.
    """
    questions = [_user(ex) for ex in train]
    answers = [_assistant(ex) for ex in train]
    if len(questions) < 2:
        raise TrainingDataError("the local generator needs at least 2 training examples")
    total = 3
    vectors = _embed(embedder, questions)
    if on_step:
        on_step(1, total, {"examples": float(len(questions))})
    rng = random.Random(seed)
    feats: list[float] = []
    labels: list[int] = []
    sims_all = vectors @ vectors.T
    for i in range(len(questions)):
        sims = sims_all[i].copy()
        sims[i] = -np.inf  # leave-one-out: the question itself is not in memory
        j, f = _feature(sims)
        feats.append(f)
        labels.append(int(token_f1(answers[j], answers[i]) >= 0.5))
    val_q = [_user(ex) for ex in validation]
    val_a = [_assistant(ex) for ex in validation]
    val_vecs = _embed(embedder, val_q)
    val_pred: list[str] = []
    val_feat: list[float] = []
    for k in range(len(val_q)):
        j, f = _feature(vectors @ val_vecs[k])
        feats.append(f)
        labels.append(int(token_f1(answers[j], val_a[k]) >= 0.5))
        val_pred.append(answers[j])
        val_feat.append(f)
    views_text = [_dropout(q, rng, dropout_rate) for q in questions for _ in range(views)]
    view_vecs = _embed(embedder, views_text)
    for k, vec in enumerate(view_vecs):
        j, f = _feature(vectors @ vec)
        feats.append(f)
        labels.append(int(token_f1(answers[j], answers[k // views]) >= 0.5))
    f_arr, y_arr = np.array(feats), np.array(labels)
    if y_arr.min() == y_arr.max():
        # Degenerate data (e.g. every answer identical): fall back to a similarity cut-off.
        slope, intercept = 12.0, -12.0 * 0.75
    else:
        slope, intercept = calibrate_logistic(f_arr, y_arr)
    probs = 1 / (1 + np.exp(-(slope * f_arr + intercept)))
    log_loss = float(-np.mean(y_arr * np.log(probs + 1e-12)
                              + (1 - y_arr) * np.log(1 - probs + 1e-12)))
    metrics: dict[str, float] = {
        "calibration_pairs": float(len(y_arr)),
        "calibration_positive": float(y_arr.sum()),
        "calibration_auc": _auc(f_arr, y_arr),
        "calibration_log_loss": log_loss,
        "threshold_similarity_feature": float(-intercept / slope) if slope else float("nan"),
    }
    if on_step:
        on_step(2, total, {"train_loss": log_loss, "calibration_auc": metrics["calibration_auc"]})
    if val_q:
        conf = 1 / (1 + np.exp(-(slope * np.array(val_feat) + intercept)))
        answered = conf >= 0.5
        f1s = [token_f1(p, g) if a else 0.0 for p, g, a in zip(val_pred, val_a, answered,
                                                                  strict=True)]
        metrics["valid_answer_rate"] = float(answered.mean())
        metrics["valid_f1"] = float(np.mean(f1s))
    if on_step:
        on_step(3, total, {k: v for k, v in metrics.items() if k.startswith("valid")})
    return TrainedModel(
        arrays={"questions": vectors},
        data={"questions": questions, "answers": answers},
        manifest={"calibration": {"slope": slope, "intercept": intercept, "threshold": 0.5,
                                  "feature": "2*s1 - s2"}},
        metrics=metrics,
    )


def _rewriter_stats(
    pairs: Sequence[tuple[str, str]],
) -> tuple[dict[str, dict[str, float]], dict[str, float], list[list[str]]]:
    df: Counter[str] = Counter()
    kept: Counter[str] = Counter()
    co: dict[str, Counter[str]] = defaultdict(Counter)
    terms: list[list[str]] = []
    for query, rewrite in pairs:
        q = list(dict.fromkeys(content_words(query)))
        r = list(dict.fromkeys(content_words(rewrite)))
        terms.append(r)
        rset = set(r)
        for t in q:
            df[t] += 1
            if t in rset:
                kept[t] += 1
            for u in r:
                if u not in q:
                    co[t][u] += 1
    # Add-one smoothing: a word seen once with a term gets P = 0.5, not a certain 1.0.
    assoc = {
        t: {u: c / (df[t] + 1) for u, c in counts.most_common(25) if c / (df[t] + 1) >= 0.2}
        for t, counts in co.items()
    }
    keep = {t: (kept[t] + 1) / (df[t] + 2) for t in df}
    return {t: a for t, a in assoc.items() if a}, keep, terms


def train_rewriter(
    train: Sequence[Mapping[str, Any]],
    validation: Sequence[Mapping[str, Any]],
    embedder: Embedder,
    *,
    max_terms: int = 12,
    neighbours: int = 5,
    on_step: StepCallback | None = None,
) -> TrainedModel:
    """Learn query-word associations and tune (alpha, threshold) for token F1.

    Tuned on ``validation`` when it has at least 5 examples, else by leave-one-out over the
    training pairs (each pair rewritten by a model built from all the others).
    """
    pairs = [(_user(ex), _assistant(ex)) for ex in train]
    if len(pairs) < 2:
        raise TrainingDataError("the local rewriter needs at least 2 training examples")
    assoc, keep, terms = _rewriter_stats(pairs)
    vectors = _embed(embedder, [q for q, _ in pairs])
    val_pairs = [(_user(ex), _assistant(ex)) for ex in validation]
    use_val = len(val_pairs) >= 5
    cases: list[tuple[str, str, Any, dict[str, dict[str, float]], dict[str, float], int | None]]
    if use_val:
        val_vecs = _embed(embedder, [q for q, _ in val_pairs])
        cases = [(q, g, vec, assoc, keep, None) for (q, g), vec in zip(val_pairs, val_vecs,
                                                                         strict=True)]
    else:
        cases = []
        for i, (q, g) in enumerate(pairs):
            a_i, k_i, _ = _rewriter_stats(pairs[:i] + pairs[i + 1 :])
            cases.append((q, g, vectors[i], a_i, k_i, i))
    alphas = (0.0, 0.25, 0.5, 0.75, 1.0)
    thresholds = tuple(round(0.05 * k, 2) for k in range(2, 15))
    best = (-1.0, 0.5, 0.3)
    for step, alpha in enumerate(alphas, start=1):
        for threshold in thresholds:
            f1 = float(np.mean([
                token_f1(rewrite_query(q, vec, vectors, terms, a, k, alpha=alpha,
                                       threshold=threshold, max_terms=max_terms,
                                       neighbours=neighbours, exclude=ex)[0], g)
                for q, g, vec, a, k, ex in cases
            ]))
            if f1 > best[0] + 1e-9:
                best = (f1, alpha, threshold)
        if on_step:
            on_step(step, len(alphas), {"best_f1": best[0], "alpha": alpha})
    f1, alpha, threshold = best
    identity = float(np.mean([token_f1(c[0], c[1]) for c in cases]))
    metrics = {
        "valid_f1" if use_val else "loo_f1": f1,
        "identity_f1": identity,
        "tuned_on_examples": float(len(cases)),
    }
    return TrainedModel(
        arrays={"queries": vectors},
        data={"rewrite_terms": terms, "associations": assoc, "keep": keep},
        manifest={"params": {"alpha": alpha, "threshold": threshold, "max_terms": max_terms,
                             "neighbours": neighbours}},
        metrics=metrics,
    )


def _holdout(
    examples: Sequence[Mapping[str, Any]], fraction: float, seed: int
) -> tuple[list[Any], list[Any]]:
    """``(kept, held_out)``: the ``fraction`` of examples with the lowest key hash, at least one.

    Same hash as :func:`~ragft.finetune.data.split_examples` (stable as data grows), but an
    exact count, so a small training file still gets a held-out measurement.
    """
    if len(examples) < 5:
        return list(examples), []
    ranked = sorted(
        range(len(examples)),
        key=lambda i: hashlib.sha256(f"{seed}\x00{example_key(examples[i])}".encode()).digest(),
    )
    held = set(ranked[: max(1, round(fraction * len(examples)))])
    return ([ex for i, ex in enumerate(examples) if i not in held],
            [ex for i, ex in enumerate(examples) if i in held])


def _router_labels(train: Sequence[Mapping[str, Any]]) -> list[str]:
    system = _system(train[0]) if train else ""
    seen = list(dict.fromkeys(_assistant(ex).strip() for ex in train))
    if system.startswith(ROUTER_SYSTEM_PREFIX):
        listed = [s.strip() for s in system[len(ROUTER_SYSTEM_PREFIX):].split(".")[0].split(",")]
        if set(seen) <= set(listed):
            return listed
    return sorted(seen)


def train_router(
    train: Sequence[Mapping[str, Any]],
    validation: Sequence[Mapping[str, Any]],
    embedder: Embedder,
    *,
    steps: int = 300,
    lr: float = 0.05,
    l2: float = 1e-3,
    seed: int = 0,
    on_step: StepCallback | None = None,
) -> TrainedModel:
    """Softmax regression from embeddings of the user message to the assistant's label.

    Without ``validation`` data 20% of the training set (by key hash) is held out to measure
    accuracy, then the model is refitted on everything so no example is wasted.
    """
    labels = _router_labels(train)
    index = {label: i for i, label in enumerate(labels)}
    held_out_internal = not validation
    fit_set, val_set = list(train), list(validation)
    if held_out_internal:
        fit_set, val_set = _holdout(train, 0.2, seed)
    unknown = sorted({_assistant(ex).strip() for ex in val_set} - set(index))
    if unknown:
        raise TrainingDataError(f"validation labels {unknown} never occur in the training data")
    x = _embed(embedder, [_user(ex) for ex in fit_set])
    y = np.array([index[_assistant(ex).strip()] for ex in fit_set])
    xv = _embed(embedder, [_user(ex) for ex in val_set])
    yv = np.array([index[_assistant(ex).strip()] for ex in val_set], dtype=int)
    fit = fit_softmax_regression(x, y, len(labels), steps=steps, lr=lr, l2=l2, x_val=xv,
                                 y_val=yv, on_step=on_step)
    metrics = {"train_loss": fit.history[-1]["train_loss"]}
    if len(yv):
        pv = fit.predict_proba(xv)
        metrics["valid_accuracy"] = float(np.mean(pv.argmax(axis=1) == yv))
        metrics["valid_examples"] = float(len(yv))
    if held_out_internal and len(yv):
        x_all = np.concatenate([x, xv])
        y_all = np.concatenate([y, yv])
        fit = fit_softmax_regression(x_all, y_all, len(labels), steps=steps, lr=lr, l2=l2)
    return TrainedModel(
        arrays={"weights": fit.weights, "bias": fit.bias},
        data={"labels": labels},
        manifest={"params": {"steps": steps, "lr": lr, "l2": l2}},
        metrics=metrics,
    )


def _adapter_rows(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    out = []
    for i, row in enumerate(rows, start=1):
        query = row.get("query")
        passage = row.get("passage", row.get("positive"))
        if not isinstance(query, str) or not query.strip() or not isinstance(passage, str) \
                or not passage.strip():
            raise TrainingDataError(f"adapter row {i}: needs non-empty 'query' and 'passage'")
        out.append((query, passage, str(row.get("query_id", query))))
    return out


def train_adapter(
    train: Sequence[Mapping[str, Any]],
    validation: Sequence[Mapping[str, Any]],
    embedder: Embedder,
    *,
    epochs: int = 10,
    lr: float = 1e-3,
    batch_size: int = 64,
    temperature: float = 0.05,
    identity_l2: float = 0.0,
    seed: int = 0,
    on_step: StepCallback | None = None,
) -> TrainedModel:
    """Embed ``{"query", "passage"}`` rows and fit a linear query adapter on them."""
    rows = _adapter_rows(train)
    val_rows = _adapter_rows(validation) if validation else []
    if not val_rows and len(rows) >= 20:
        # Hold out whole queries (not pairs) so early stopping measures generalisation.
        qids = sorted({r[2] for r in rows})
        held = {d["query"] for d in _holdout([{"query": q} for q in qids], 0.15, seed)[1]}
        val_rows = [r for r in rows if r[2] in held]
        rows = [r for r in rows if r[2] not in held]
    q = _embed(embedder, [r[0] for r in rows], "query")
    p = _embed(embedder, [r[1] for r in rows], "document")
    group_ids: dict[str, int] = {}
    groups = np.array([group_ids.setdefault(r[2], len(group_ids)) for r in rows])
    vq = _embed(embedder, [r[0] for r in val_rows], "query") if val_rows else None
    vp = _embed(embedder, [r[1] for r in val_rows], "document") if val_rows else None
    fit = fit_linear_adapter(q, p, groups=groups, val_queries=vq, val_passages=vp, epochs=epochs,
                             lr=lr, batch_size=batch_size, temperature=temperature,
                             identity_l2=identity_l2, seed=seed, on_step=on_step)
    metrics: dict[str, float] = {"best_epoch": float(fit.best_epoch),
                                 "distance_from_identity": float(np.linalg.norm(
                                     fit.matrix - np.eye(len(fit.matrix))))}
    if vq is not None and vp is not None:
        metrics["valid_loss_identity"] = fit.history[0].get("valid_loss", float("nan"))
        metrics["valid_loss"] = min(h.get("valid_loss", math.inf) for h in fit.history)
    return TrainedModel(
        arrays={"adapter": fit.matrix},
        data={},
        manifest={"params": {"epochs": epochs, "lr": lr, "batch_size": batch_size,
                             "temperature": temperature, "identity_l2": identity_l2}},
        metrics=metrics,
    )


# --------------------------------------------------------------------------- backend


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LocalFineTuneBackend:
    """Trains offline, behind the same protocol as OpenAI's fine-tuning API.

    Layout under ``models_dir``: ``files/`` (uploaded JSONL, named by content hash),
    ``jobs/<job id>.json`` (status + events, rewritten atomically at every change) and one
    artifact directory per trained model. ``background=True`` trains in a thread (poll it
    with :meth:`retrieve_job` like a remote job); by default :meth:`create_job` returns when
    training has finished. ``on_event`` sees every event as it is logged (live progress).
    Hyperparameters: ``n_epochs`` (int or ``"auto"``) scales the iterative trainers (router:
    100 gradient steps per epoch, 300 for auto; adapter: epochs over the pairs, 10 for auto).
    """

    name = "local"

    def __init__(
        self,
        models_dir: str | Path,
        embedder: Embedder,
        *,
        background: bool = False,
        on_event: Callable[[JobEvent], None] | None = None,
        clock: Callable[[], float] = time.time,
        adapter_identity_l2: float = 0.0,
    ):
        self.models_dir = Path(models_dir)
        self.embedder = embedder
        self.background = background
        self.on_event = on_event
        self.clock = clock
        self.adapter_identity_l2 = adapter_identity_l2
        self._lock = threading.RLock()
        self._running: set[str] = set()

    # -- storage -------------------------------------------------------------------------
    @property
    def _files(self) -> Path:
        return self.models_dir / "files"

    @property
    def _jobs(self) -> Path:
        return self.models_dir / "jobs"

    def _job_path(self, job_id: str) -> Path:
        if "/" in job_id or not job_id.startswith("ftjob-local-"):
            raise FineTuneError(f"{job_id!r} is not a local fine-tuning job id")
        return self._jobs / f"{job_id}.json"

    def _read(self, job_id: str) -> dict[str, Any]:
        path = self._job_path(job_id)
        try:
            return read_json(path)
        except FileNotFoundError:
            raise FineTuneError(f"no local fine-tuning job {job_id} in {self._jobs}") from None
        except ValueError as exc:
            raise FineTuneError(f"local job file {path} is corrupt: {exc}") from exc

    def _write(self, record: Mapping[str, Any]) -> None:
        atomic_write_json(self._job_path(record["status"]["id"]), record)

    def _update(self, job_id: str, *, message: str | None = None, level: str = "info",
                data: Mapping[str, Any] | None = None, event_type: str = "message",
                **status: Any) -> None:
        # The file lock also covers another process cancelling the job meanwhile.
        with self._lock, locked(self._job_path(job_id)):
            record = self._read(job_id)
            record["status"].update(status)
            event = None
            if message is not None:
                event = JobEvent(
                    id=f"ftevent-{job_id[len('ftjob-local-'):]}-{len(record['events']) + 1:05d}",
                    created_at=self.clock(),
                    message=message,
                    level=level,
                    type=event_type,
                    data=dict(data or {}),
                )
                record["events"].append(event.to_dict())
            self._write(record)
        if event is not None and self.on_event is not None:
            self.on_event(event)

    # -- protocol ------------------------------------------------------------------------
    def check_model(self, model: str) -> None:
        """Accept ``local``, ``local/...`` ids and the embedder's own name."""
        if model not in ("local", self.embedder.name) and not model.startswith("local/"):
            raise FineTuneError(
                f"the local backend trains small models on the local embedder; pass "
                f"--model local (got {model!r}, which needs --backend openai)"
            )

    def upload_file(self, path: Path) -> UploadedFile:
        """Copy the file into ``files/``, named by its SHA-256 (re-uploads are no-ops)."""
        path = Path(path)
        digest = file_sha256(path)
        file_id = f"file-local-{digest[:24]}"
        target = self._files / f"{file_id}.jsonl"
        if not target.exists():
            atomic_write_bytes(target, path.read_bytes())
        return UploadedFile(id=file_id, filename=path.name, bytes=target.stat().st_size)

    def _file(self, file_id: str) -> Path:
        path = self._files / f"{file_id}.jsonl"
        if "/" in file_id or not path.is_file():
            raise FineTuneError(f"no uploaded file {file_id!r} in {self._files}; upload it first")
        return path

    def create_job(
        self,
        *,
        model: str,
        training_file: str,
        validation_file: str | None = None,
        suffix: str | None = None,
        seed: int | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> JobStatus:
        """Register the job (``validating_files``) and train it, now or in a thread."""
        self.check_model(model)
        self._file(training_file)
        if validation_file:
            self._file(validation_file)
        suffix = suffix or "model"
        if ":" in suffix or "/" in suffix:
            raise FineTuneError(f"suffix {suffix!r} may not contain ':' or '/'")
        job_id = f"ftjob-local-{uuid.uuid4().hex[:16]}"
        status = JobStatus(
            id=job_id,
            status="validating_files",
            model=self.embedder.name,
            created_at=self.clock(),
            training_file=training_file,
            validation_file=validation_file,
            hyperparameters=dict(hyperparameters or {"n_epochs": "auto"}),
            metadata=dict(metadata or {}),
        )
        record = {"status": status.to_dict(), "events": [], "pid": os.getpid(),
                  "suffix": suffix, "seed": seed, "cancel_requested": False}
        with self._lock:
            self._write(record)
            self._running.add(job_id)
        self._update(job_id, message=f"Created fine-tuning job: {job_id}")
        if self.background:
            thread = threading.Thread(target=self._run, args=(job_id,), daemon=True,
                                      name=f"ragft-{job_id}")
            thread.start()
        else:
            self._run(job_id)
        return self.retrieve_job(job_id)

    def find_jobs(self, metadata: Mapping[str, str]) -> list[JobStatus]:
        """Local jobs whose metadata contains every given key/value, newest first."""
        if not self._jobs.is_dir():
            return []
        found = []
        for path in self._jobs.glob("ftjob-local-*.json"):
            status = self.retrieve_job(path.stem)
            if all(status.metadata.get(k) == v for k, v in metadata.items()):
                found.append(status)
        return sorted(found, key=lambda s: s.created_at or 0.0, reverse=True)

    def retrieve_job(self, job_id: str) -> JobStatus:
        """The job's state; a job whose training process died is reported failed."""
        record = self._read(job_id)
        status = JobStatus.from_dict(record["status"])
        if not status.terminal and job_id not in self._running:
            pid = int(record.get("pid", 0))
            if pid == os.getpid() or not _pid_alive(pid):
                self._update(job_id, message="Training process stopped before the job finished",
                             level="error", status="failed", finished_at=self.clock(),
                             error="the training process exited before finishing (crash or "
                                   "interrupt); start the job again")
                status = JobStatus.from_dict(self._read(job_id)["status"])
        return status

    def list_events(self, job_id: str, *, limit: int = 100) -> list[JobEvent]:
        """The job's most recent ``limit`` events, oldest first."""
        events = [JobEvent.from_dict(e) for e in self._read(job_id)["events"]]
        return events[-limit:]

    def list_checkpoints(self, job_id: str) -> list[Checkpoint]:
        """Local jobs keep one checkpoint: the final model."""
        status = self.retrieve_job(job_id)
        if status.status != "succeeded" or not status.fine_tuned_model:
            return []
        return [Checkpoint(id=f"ftckpt-{job_id}", step=int(status.metrics.get("steps", 1)),
                           model=status.fine_tuned_model, metrics=dict(status.metrics),
                           created_at=status.finished_at)]

    def cancel_job(self, job_id: str) -> JobStatus:
        """Request cancellation; a job training now stops at its next step.

        Like OpenAI's endpoint this returns at once: poll :meth:`retrieve_job` (or
        ``JobManager.follow``) to see the job reach ``cancelled``.
        """
        with locked(self._job_path(job_id)):
            record = self._read(job_id)
            status = JobStatus.from_dict(record["status"])
            if status.terminal:
                return status
            record["cancel_requested"] = True
            self._write(record)
        pid = int(record.get("pid", 0))
        training = job_id in self._running or (pid != os.getpid() and _pid_alive(pid))
        if not training:
            self._update(job_id, message="Job cancelled", status="cancelled",
                         finished_at=self.clock())
        return self.retrieve_job(job_id)

    # -- training ------------------------------------------------------------------------
    def _check_cancel(self, job_id: str) -> None:
        if self._read(job_id).get("cancel_requested"):
            raise _Cancelled

    def _run(self, job_id: str) -> None:
        try:
            self._train(job_id)
        except _Cancelled:
            self._update(job_id, message="Job cancelled", status="cancelled",
                         finished_at=self.clock())
        except Exception as exc:  # noqa: BLE001 - any failure becomes the job's error
            self._update(job_id, message=f"Job failed: {exc}", level="error", status="failed",
                         error=str(exc), finished_at=self.clock())
        finally:
            with self._lock:
                self._running.discard(job_id)
            staging = self.models_dir / f".staging-{job_id}"
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def _train(self, job_id: str) -> None:
        record = self._read(job_id)
        status = JobStatus.from_dict(record["status"])
        self._update(job_id, message="Validating training file")
        train = read_jsonl(self._file(str(status.training_file)))
        validation = read_jsonl(self._file(status.validation_file)) if status.validation_file \
            else []
        purpose = status.metadata.get("ragft_purpose") or detect_purpose(train)
        if purpose not in ("generator", "rewriter", "router", "adapter"):
            raise TrainingDataError(f"unknown purpose {purpose!r}")
        if purpose == "adapter":
            tokens_per_epoch = sum(
                count_tokens(str(r.get("query", "")), status.model)
                + count_tokens(str(r.get("passage", r.get("positive", ""))), status.model)
                for r in train
            )
        else:
            report = validate_examples(train, model=status.model, min_examples=2,
                                       source=str(status.training_file))
            report.raise_for_problems()
            tokens_per_epoch = sum(count_chat_tokens(
                [{k: str(v) for k, v in m.items() if k != "weight"} for m in ex["messages"]],
                status.model) for ex in train)
        self._check_cancel(job_id)
        self._update(job_id, message="Files validated, moving job to queued state",
                     status="queued")
        self._check_cancel(job_id)
        epochs_param = status.hyperparameters.get("n_epochs", "auto")
        n_epochs = auto_epochs(len(train)) if epochs_param in (None, "auto") else int(epochs_param)
        self._update(job_id, message=f"Training {purpose} on {len(train)} examples"
                     + (f" ({len(validation)} validation)" if validation else ""),
                     status="running")
        seed = int(record.get("seed") or 0)

        def on_step(step: int, total: int, metrics: Mapping[str, float]) -> None:
            self._check_cancel(job_id)
            shown = ", ".join(
                f"{k.replace('_', ' ')} {v:.4f}" for k, v in metrics.items() if k != "step"
            )
            self._update(job_id, message=f"Step {step}/{total}: {shown}", event_type="metrics",
                         data={"step": step, "total_steps": total, **metrics})

        if purpose == "generator":
            trained = train_generator(train, validation, self.embedder, seed=seed,
                                      on_step=on_step)
        elif purpose == "rewriter":
            trained = train_rewriter(train, validation, self.embedder, on_step=on_step)
        elif purpose == "router":
            steps = 300 if epochs_param in (None, "auto") else 100 * int(epochs_param)
            trained = train_router(train, validation, self.embedder, steps=steps, seed=seed,
                                   on_step=on_step)
        else:
            epochs = 10 if epochs_param in (None, "auto") else int(epochs_param)
            trained = train_adapter(train, validation, self.embedder, epochs=epochs, seed=seed,
                                    identity_l2=self.adapter_identity_l2, on_step=on_step)
        self._check_cancel(job_id)
        model_id = f"{LOCAL_FT_PREFIX}{purpose}:{record['suffix']}:{job_id}"
        self._write_artifact(job_id, model_id, purpose, status, trained)
        metrics = {k: float(v) for k, v in trained.metrics.items()
                   if isinstance(v, (int, float)) and math.isfinite(v)}
        self._update(job_id, message=f"New fine-tuned model created: {model_id}")
        self._update(job_id, message="The job has successfully completed", status="succeeded",
                     fine_tuned_model=model_id, trained_tokens=tokens_per_epoch * n_epochs,
                     finished_at=self.clock(), metrics=metrics)

    def _write_artifact(self, job_id: str, model_id: str, purpose: str, status: JobStatus,
                        trained: TrainedModel) -> None:
        staging = self.models_dir / f".staging-{job_id}"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        files: dict[str, str] = {}
        if trained.arrays:
            np.savez(staging / "weights.npz", **trained.arrays)  # type: ignore[arg-type]
            files["weights.npz"] = file_sha256(staging / "weights.npz")
        if trained.data:
            atomic_write_json(staging / "data.json", trained.data)
            files["data.json"] = file_sha256(staging / "data.json")
        manifest = {
            "format": ARTIFACT_FORMAT,
            "model_id": model_id,
            "purpose": purpose,
            "job_id": job_id,
            "base_model": status.model,
            "embedder": {"name": self.embedder.name, "dimension": self.embedder.dimension},
            "training_file": status.training_file,
            "validation_file": status.validation_file,
            "created_at": self.clock(),
            "metrics": {k: v for k, v in trained.metrics.items()
                        if isinstance(v, (int, float)) and math.isfinite(v)},
            "files": files,
            **trained.manifest,
        }
        atomic_write_json(staging / "model.json", manifest)
        publish_directory(staging, artifact_dir(self.models_dir, model_id))
