"""The local *router*: multinomial logistic regression on embeddings of the query
(scikit-learn's ``LogisticRegression``, L-BFGS to convergence).

Two things are chosen on validation data at training time and stored with the model:

* the L2 strength ``l2`` (unless the job sets it): the value of :data:`L2_GRID` with the best
  validation accuracy (ties: the stronger one), tried from strong to weak until
  :data:`PATIENCE` steps bring no improvement;
* the routing threshold ``min_score``: the top probability under which the router's label is
  more often wrong than right on validation data (:func:`choose_min_score`). Probabilities
  spread over 150 labels are much flatter than over 4, so a threshold fixed in a config
  cannot carry over between label sets; the stored one does, and the router strategy uses it
  unless ``[strategy.router] min_score`` overrides it.

The model is fitted to convergence, so a number of epochs has no meaning for it: a job that
sets one is refused (leave ``n_epochs`` at ``"auto"``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ragft.errors import TrainingDataError
from ragft.finetune.data import message_text
from ragft.finetune.learners.progress import StepCallback
from ragft.finetune.trainers.base import TrainedModel, TrainingRun, embed_texts, holdout
from ragft.models.base import Embedder

__all__ = ["L2_GRID", "MAX_ITER", "PATIENCE", "choose_min_score", "parse_l2", "train", "train_router"]

#: L2 strengths tried when none is given (λ of ``mean cross-entropy + λ/2·‖W‖²``), strong to
#: weak; the search stops after :data:`PATIENCE` strengths without a better validation accuracy.
L2_GRID: tuple[float, ...] = (1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6)
PATIENCE = 2
#: L-BFGS iteration cap per fit (far above what normalised embeddings need to converge).
MAX_ITER = 1000


def _labels_of(examples: Sequence[Mapping[str, Any]]) -> list[str]:
    return [message_text(ex, "assistant", last=True).strip() for ex in examples]


def parse_l2(value: Any) -> float | None:
    """The ``l2`` hyperparameter: ``None`` for ``"auto"`` (chosen on validation data), else a
    positive number; anything else is a :class:`~ragft.errors.TrainingDataError`."""
    if value is None or value == "auto":
        return None
    try:
        l2 = float(value)
    except (TypeError, ValueError):
        l2 = math.nan
    if not math.isfinite(l2) or l2 <= 0:
        raise TrainingDataError(
            f"router hyperparameter l2 must be 'auto' or a positive number such as 1e-4, "
            f"got {value!r}"
        )
    return l2


def choose_min_score(top_probability: np.ndarray, correct: np.ndarray) -> float:
    """The routing threshold: the top probability that best separates right from wrong labels.

    Among the validation set's own top probabilities (and 0), the threshold ``t`` is the one
    maximising the queries decided well — routed with a right label (``p >= t``) or sent to the
    default route with a wrong one (``p < t``); ties go to the lowest ``t``. With no wrong
    label at all it is 0: nothing needs the default route.
    """
    p = np.asarray(top_probability, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    if len(p) == 0 or ok.all():
        return 0.0
    candidates = np.unique(np.concatenate([[0.0], p]))
    # Decided well at threshold t: right with p >= t, plus wrong with p < t.
    good = [(ok & (p >= t)).sum() + (~ok & (p < t)).sum() for t in candidates]
    return float(candidates[int(np.argmax(good))])


def _fit(x: np.ndarray, y: np.ndarray, l2: float) -> Any:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    # sklearn minimises ½‖W‖² + C·Σ loss; ours is mean loss + λ/2‖W‖², i.e. C = 1/(λ·n).
    # Each fit starts from zero: warm-started from the previous strength, L-BFGS sometimes
    # stopped at once (0 iterations) and the search compared two copies of one model.
    model = LogisticRegression(C=1.0 / (l2 * len(y)), max_iter=MAX_ITER)
    # One BLAS thread: these matrices are small, and on a busy machine a thread pool per core
    # made a fit 30x slower (6.4 s against 0.2 s for 500 × 256 × 80, measured).
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    return model


def _probabilities(model: Any, x: np.ndarray, n_classes: int) -> np.ndarray:
    # Columns follow the label index even when a class is missing from a fit set.
    out = np.zeros((len(x), n_classes))
    out[:, model.classes_] = model.predict_proba(x)
    return out


def train_router(
    train: Sequence[Mapping[str, Any]],
    validation: Sequence[Mapping[str, Any]],
    embedder: Embedder,
    *,
    l2: float | None = None,
    seed: int = 0,
    on_step: StepCallback | None = None,
) -> TrainedModel:
    """Logistic regression from embeddings of the user message to the assistant's label.

    ``l2=None`` picks the L2 strength from :data:`L2_GRID` by validation accuracy. Without
    ``validation`` data 20% of the training set (by key hash) is held out to choose ``l2`` and
    ``min_score`` and measure accuracy, then the model is refitted on everything so no example
    is wasted. ``on_step`` sees one step per L2 strength tried (``total`` is the grid's size;
    the search may stop before it).
    """
    fit_labels = _labels_of(train)
    labels = sorted(set(fit_labels))
    if len(labels) < 2:
        raise TrainingDataError(
            f"a router needs at least 2 distinct labels in its training data, got {labels}"
        )
    index = {label: i for i, label in enumerate(labels)}
    held_out_internal = not validation
    fit_set, val_set = list(train), list(validation)
    if held_out_internal:
        fit_set, val_set = holdout(train, 0.2, seed)
    unknown = sorted(set(_labels_of(val_set)) - set(index))
    if unknown:
        raise TrainingDataError(f"validation labels {unknown} never occur in the training data")
    x = embed_texts(embedder, [message_text(ex, "user") for ex in fit_set]).astype(np.float64)
    y = np.array([index[lab] for lab in _labels_of(fit_set)], dtype=int)
    xv = embed_texts(embedder, [message_text(ex, "user") for ex in val_set]).astype(np.float64)
    yv = np.array([index[lab] for lab in _labels_of(val_set)], dtype=int)
    if len(set(y.tolist())) < 2:  # a tiny set whose hold-out took a whole class
        fit_set, val_set, held_out_internal = list(train), [], False
        x, y = np.concatenate([x, xv]), np.concatenate([y, yv])
        xv, yv = xv[:0], yv[:0]

    grid = list(L2_GRID) if l2 is None and len(yv) else [l2 if l2 is not None else 1e-3]
    best: tuple[float, float, Any] | None = None  # (accuracy, l2, model)
    model: Any = None
    since_best = 0
    for step, strength in enumerate(grid, start=1):
        model = _fit(x, y, strength)
        row = {"l2": strength, "train_loss": _log_loss(_probabilities(model, x, len(labels)), y)}
        if len(yv):
            row["valid_accuracy"] = float(np.mean(
                _probabilities(model, xv, len(labels)).argmax(axis=1) == yv))
            if best is None or row["valid_accuracy"] > best[0]:
                best, since_best = (row["valid_accuracy"], strength, model), 0
            else:
                since_best += 1
        if on_step is not None:
            on_step(step, len(grid), row)
        if since_best >= PATIENCE:
            break  # validation accuracy has stopped improving: weaker fits only overfit more
    chosen_l2, fit = (best[1], best[2]) if best is not None else (grid[0], model)

    metrics: dict[str, float] = {
        "train_loss": _log_loss(_probabilities(fit, x, len(labels)), y),
        "l2": chosen_l2,
        "iterations": float(np.max(fit.n_iter_)),
    }
    min_score = 0.0
    if len(yv):
        pv = _probabilities(fit, xv, len(labels))
        top, correct = pv.max(axis=1), pv.argmax(axis=1) == yv
        min_score = choose_min_score(top, correct)
        routed = top >= min_score
        metrics.update(
            valid_accuracy=float(np.mean(correct)),
            valid_examples=float(len(yv)),
            valid_median_top_probability=float(np.median(top)),
            valid_default_rate=float(np.mean(~routed)),
            valid_routed_accuracy=float(np.mean(correct[routed])) if routed.any() else 0.0,
        )
    metrics["min_score"] = min_score
    if held_out_internal and len(yv):
        fit = _fit(np.concatenate([x, xv]), np.concatenate([y, yv]), chosen_l2)
    return TrainedModel(
        arrays={"weights": _full_coefficients(fit, x.shape[1], len(labels)),
                "bias": _full_intercepts(fit, len(labels))},
        data={"labels": labels},
        manifest={"params": {"learner": "sklearn.LogisticRegression", "l2": chosen_l2,
                             "l2_chosen_on_validation": l2 is None and len(grid) > 1},
                  "min_score": min_score},
        metrics=metrics,
    )


def _log_loss(p: np.ndarray, y: np.ndarray) -> float:
    return -float(np.mean(np.log(p[np.arange(len(y)), y] + 1e-12)))


def _full_coefficients(model: Any, dimension: int, n_classes: int) -> np.ndarray:
    # d × k weights in label order (LocalRouterModel computes softmax(x @ W + b)). sklearn
    # gives a single row for two classes (the logit of class 1): split it as ±½ so the
    # softmax over two columns equals sklearn's sigmoid.
    coef = np.asarray(model.coef_, dtype=np.float64)
    weights = np.zeros((dimension, n_classes))
    if coef.shape[0] == 1:
        weights[:, model.classes_[0]] = -coef[0] / 2
        weights[:, model.classes_[1]] = coef[0] / 2
    else:
        weights[:, model.classes_] = coef.T
    return weights.astype(np.float32)


def _full_intercepts(model: Any, n_classes: int) -> np.ndarray:
    intercept = np.asarray(model.intercept_, dtype=np.float64)
    bias = np.full(n_classes, -1e4)  # a label the fit never saw is never chosen
    if intercept.shape[0] == 1:
        bias[model.classes_[0]] = -intercept[0] / 2
        bias[model.classes_[1]] = intercept[0] / 2
    else:
        bias[model.classes_] = intercept
    return bias.astype(np.float32)


def train(run: TrainingRun) -> TrainedModel:
    """:func:`train_router` for a job: ``l2`` from the job's hyperparameters (``"auto"``: chosen
    on validation data); a set number of epochs is refused (the fit runs to convergence)."""
    if run.epochs is not None:
        raise TrainingDataError(
            f"the local router is fitted to convergence (L-BFGS), so n_epochs={run.epochs} has "
            "no meaning for it: leave epochs at 'auto' (`--epochs auto`) and set its "
            "regularisation with the l2 hyperparameter (`--l2 1e-4`, default 'auto': chosen "
            "on validation data)"
        )
    return train_router(run.train, run.validation, run.embedder,
                        l2=parse_l2(run.hyperparameters.get("l2")), seed=run.seed,
                        on_step=run.on_step)
