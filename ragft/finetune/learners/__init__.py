"""Numeric learners (numpy only) that the local trainers fit; nothing here knows about jobs,
files or purposes.

* :mod:`.calibration` — Platt scaling of one score (the generator's confidence);
* :mod:`.linear_adapter` — a d×d query-embedding adapter (retrieval fine-tuning);
* :mod:`.adam` — its optimiser; :mod:`.progress` — the step callback type.
"""

from ragft.finetune.learners.calibration import calibrate_logistic
from ragft.finetune.learners.linear_adapter import AdapterFit, fit_linear_adapter
from ragft.finetune.learners.progress import StepCallback

__all__ = [
    "AdapterFit",
    "StepCallback",
    "calibrate_logistic",
    "fit_linear_adapter",
]
