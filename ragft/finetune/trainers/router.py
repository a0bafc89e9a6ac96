"""The local *router*: multinomial logistic regression on embeddings of the query, trained by
full-batch gradient descent (Adam) with L2; held-out accuracy goes in the job's metrics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ragft.errors import TrainingDataError
from ragft.finetune.data import ROUTER_SYSTEM_PREFIX, message_text
from ragft.finetune.learners.progress import StepCallback
from ragft.finetune.learners.softmax import fit_softmax_regression
from ragft.finetune.trainers.base import TrainedModel, TrainingRun, embed_texts, holdout
from ragft.models.base import Embedder

__all__ = ["STEPS_PER_EPOCH", "train", "train_router"]

#: Gradient steps per job epoch (``"auto"`` epochs: 3 epochs' worth, 300 steps).
STEPS_PER_EPOCH = 100


def _router_labels(train: Sequence[Mapping[str, Any]]) -> list[str]:
    system = message_text(train[0], "system") if train else ""
    seen = list(dict.fromkeys(message_text(ex, "assistant", last=True).strip() for ex in train))
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
        fit_set, val_set = holdout(train, 0.2, seed)
    unknown = sorted({message_text(ex, "assistant", last=True).strip() for ex in val_set} - set(index))
    if unknown:
        raise TrainingDataError(f"validation labels {unknown} never occur in the training data")
    x = embed_texts(embedder, [message_text(ex, "user") for ex in fit_set])
    y = np.array([index[message_text(ex, "assistant", last=True).strip()] for ex in fit_set])
    xv = embed_texts(embedder, [message_text(ex, "user") for ex in val_set])
    yv = np.array([index[message_text(ex, "assistant", last=True).strip()] for ex in val_set], dtype=int)
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


def train(run: TrainingRun) -> TrainedModel:
    """:func:`train_router` for a job: ``STEPS_PER_EPOCH`` gradient steps per epoch."""
    steps = 300 if run.epochs is None else STEPS_PER_EPOCH * run.epochs
    return train_router(run.train, run.validation, run.embedder, steps=steps, seed=run.seed,
                        on_step=run.on_step)
