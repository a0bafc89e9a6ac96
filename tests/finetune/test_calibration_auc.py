"""The generator's calibration AUC (scikit-learn) against the hand-written version it replaced."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ragft.finetune.trainers.generator import _auc


def test_auc_reproduces_the_previous_pairwise_values_ties_included() -> None:
    reference = json.loads((Path(__file__).parent.parent / "data" / "auc_reference.json").read_text())
    for case in reference["cases"]:
        got = _auc(np.array(case["scores"]), np.array(case["labels"]))
        assert got == pytest.approx(case["auc"], abs=1e-12)


def test_auc_is_nan_with_one_class() -> None:
    assert math.isnan(_auc(np.array([0.1, 0.9]), np.array([1, 1])))
