"""The local *generator*: a nearest-neighbour memory of the training questions whose
confidence is a logistic calibration of "how clearly does the question match one trained
question".

It is fitted on real held-out negatives (validation questions, and each training question
against the *other* training questions) and on word-dropout views of training questions (the
positives are only those whose nearest neighbour is still their own question).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ragft.metrics import token_f1
from ragft.errors import TrainingDataError
from ragft.finetune.data import message_text
from ragft.finetune.learners.calibration import calibrate_logistic
from ragft.finetune.learners.progress import StepCallback
from ragft.finetune.trainers.base import TrainedModel, TrainingRun, embed_texts
from ragft.models.base import Embedder

__all__ = ["train", "train_generator"]


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
    questions = [message_text(ex, "user") for ex in train]
    answers = [message_text(ex, "assistant", last=True) for ex in train]
    if len(questions) < 2:
        raise TrainingDataError("the local generator needs at least 2 training examples")
    total = 3
    vectors = embed_texts(embedder, questions)
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
    val_q = [message_text(ex, "user") for ex in validation]
    val_a = [message_text(ex, "assistant", last=True) for ex in validation]
    val_vecs = embed_texts(embedder, val_q)
    val_pred: list[str] = []
    val_feat: list[float] = []
    for k in range(len(val_q)):
        j, f = _feature(vectors @ val_vecs[k])
        feats.append(f)
        labels.append(int(token_f1(answers[j], val_a[k]) >= 0.5))
        val_pred.append(answers[j])
        val_feat.append(f)
    views_text = [_dropout(q, rng, dropout_rate) for q in questions for _ in range(views)]
    view_vecs = embed_texts(embedder, views_text)
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


def train(run: TrainingRun) -> TrainedModel:
    """:func:`train_generator` for a job (epochs do not apply: nothing is iterated)."""
    return train_generator(run.train, run.validation, run.embedder, seed=run.seed,
                           on_step=run.on_step)
