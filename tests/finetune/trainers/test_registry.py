"""Trainers keyed by purpose: every purpose the data module knows has exactly one."""

from __future__ import annotations

import pytest

from ragft.errors import TrainingDataError
from ragft.finetune.data import PURPOSES
from ragft.finetune.trainers import TRAINERS, TrainingRun, trainer_for


def test_every_purpose_has_a_trainer() -> None:
    assert sorted(TRAINERS) == sorted(PURPOSES)


def test_unknown_purpose_is_a_training_data_error() -> None:
    with pytest.raises(TrainingDataError, match="unknown purpose 'poetry'"):
        trainer_for("poetry")


def test_router_trainer_turns_epochs_into_steps(hashing, routes) -> None:  # type: ignore[no-untyped-def]
    from ragft.finetune.data import router_examples

    examples = router_examples(routes, ["creative", "procedural", "factual"])
    trained = trainer_for("router")(TrainingRun(train=examples, validation=[], embedder=hashing,
                                                epochs=2))
    assert trained.manifest["params"]["steps"] == 200
    auto = trainer_for("router")(TrainingRun(train=examples, validation=[], embedder=hashing))
    assert auto.manifest["params"]["steps"] == 300
