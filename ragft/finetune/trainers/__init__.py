"""The local backend's trainers, one module per *purpose* (what the tuned model is for).

:data:`TRAINERS` maps each :data:`~ragft.finetune.data.Purpose` to its module's ``train``:

* :mod:`.generator` — nearest-neighbour answers with a calibrated confidence;
* :mod:`.rewriter` — query-word → rewrite-term associations tuned for token F1;
* :mod:`.router` — logistic regression (scikit-learn) from query embeddings to labels;
* :mod:`.adapter` — a linear query-embedding adapter (contrastive loss).

Each returns a :class:`~ragft.finetune.trainers.base.TrainedModel` that the backend writes as
the artifact read by :mod:`ragft.models.local_ft`. The numerics live in
:mod:`ragft.finetune.learners`.
"""

from __future__ import annotations

from collections.abc import Mapping

from ragft.errors import TrainingDataError
from ragft.finetune.data import Purpose
from ragft.finetune.trainers import adapter, generator, rewriter, router
from ragft.finetune.trainers.base import TrainedModel, Trainer, TrainingRun

__all__ = ["TRAINERS", "TrainedModel", "Trainer", "TrainingRun", "trainer_for"]

#: One trainer per purpose; every purpose of :data:`~ragft.finetune.data.PURPOSES` has one.
TRAINERS: Mapping[Purpose, Trainer] = {
    "generator": generator.train,
    "rewriter": rewriter.train,
    "router": router.train,
    "adapter": adapter.train,
}


def trainer_for(purpose: str) -> Trainer:
    """The trainer for ``purpose``; :class:`~ragft.errors.TrainingDataError` for an unknown one."""
    try:
        return TRAINERS[purpose]  # type: ignore[index]
    except KeyError:
        raise TrainingDataError(f"unknown purpose {purpose!r}") from None
