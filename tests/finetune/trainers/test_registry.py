"""Trainers keyed by purpose: every purpose the data module knows has exactly one."""

from __future__ import annotations

import pytest

from ragft.errors import TrainingDataError
from ragft.finetune.data import PURPOSES
from ragft.finetune.trainers import TRAINERS, trainer_for


def test_every_purpose_has_a_trainer() -> None:
    assert sorted(TRAINERS) == sorted(PURPOSES)


def test_unknown_purpose_is_a_training_data_error() -> None:
    with pytest.raises(TrainingDataError, match="unknown purpose 'poetry'"):
        trainer_for("poetry")

