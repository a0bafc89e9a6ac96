"""The local *adapter*: a d×d linear query-embedding adapter, initialised to the identity and
trained with an in-batch-negative contrastive loss (as LlamaIndex's
``EmbeddingAdapterFinetuneEngine``), with an optional penalty on its distance from the
identity; from ``{"query", "passage"}`` rows."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ragft.errors import TrainingDataError
from ragft.finetune.learners.linear_adapter import fit_linear_adapter
from ragft.finetune.learners.progress import StepCallback
from ragft.finetune.trainers.base import TrainedModel, TrainingRun, embed_texts, holdout
from ragft.models.base import Embedder

__all__ = ["train", "train_adapter"]


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
        held = {d["query"] for d in holdout([{"query": q} for q in qids], 0.15, seed)[1]}
        val_rows = [r for r in rows if r[2] in held]
        rows = [r for r in rows if r[2] not in held]
    q = embed_texts(embedder, [r[0] for r in rows], "query")
    p = embed_texts(embedder, [r[1] for r in rows], "document")
    group_ids: dict[str, int] = {}
    groups = np.array([group_ids.setdefault(r[2], len(group_ids)) for r in rows])
    vq = embed_texts(embedder, [r[0] for r in val_rows], "query") if val_rows else None
    vp = embed_texts(embedder, [r[1] for r in val_rows], "document") if val_rows else None
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


def train(run: TrainingRun) -> TrainedModel:
    """:func:`train_adapter` for a job: ``epochs`` passes over the pairs (10 for ``"auto"``)."""
    return train_adapter(run.train, run.validation, run.embedder,
                         epochs=10 if run.epochs is None else run.epochs, seed=run.seed,
                         identity_l2=run.adapter_identity_l2, on_step=run.on_step)
