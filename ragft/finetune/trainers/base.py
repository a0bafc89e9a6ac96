"""What every local trainer shares: its inputs (:class:`TrainingRun`), its output
(:class:`TrainedModel`), the :class:`Trainer` signature and two helpers (embedding texts,
holding out a stable fraction of examples)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ragft.finetune.data import example_key
from ragft.finetune.learners.progress import StepCallback
from ragft.models.base import Embedder

__all__ = ["TrainedModel", "Trainer", "TrainingRun", "embed_texts", "holdout"]


@dataclass
class TrainedModel:
    """What a purpose trainer returns: the artifact's arrays (``weights.npz``), JSON data
    (``data.json``), extra manifest entries and the held-out metrics."""

    arrays: dict[str, np.ndarray]
    data: dict[str, Any]
    manifest: dict[str, Any]
    metrics: dict[str, float]


@dataclass(frozen=True)
class TrainingRun:
    """Everything a trainer receives from the job that runs it.

    ``epochs`` is the job's ``n_epochs`` (``None`` for ``"auto"``: each trainer picks its own
    default); ``hyperparameters`` are the job's own (e.g. the router's ``l2``);
    ``adapter_identity_l2`` is the backend's setting for the adapter trainer.
    """

    train: Sequence[Mapping[str, Any]]
    validation: Sequence[Mapping[str, Any]]
    embedder: Embedder
    epochs: int | None = None
    seed: int = 0
    on_step: StepCallback | None = None
    adapter_identity_l2: float = 0.0
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)


class Trainer(Protocol):
    """Trains one purpose's model from a :class:`TrainingRun`."""

    def __call__(self, run: TrainingRun) -> TrainedModel:
        """Fit the model; raise :class:`~ragft.errors.TrainingDataError` on unusable data."""
        ...


def embed_texts(embedder: Embedder, texts: Sequence[str], kind: str = "query") -> np.ndarray:
    """``texts`` embedded as float32 rows (an empty ``(0, dimension)`` array for none)."""
    if not texts:
        return np.zeros((0, embedder.dimension), dtype=np.float32)
    return embedder.embed(list(texts), kind=kind).vectors.astype(np.float32)  # type: ignore[arg-type]


def holdout(
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
