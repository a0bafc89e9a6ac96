"""Numeric learners (numpy only) that the local trainers fit; nothing here knows about jobs,
files or purposes.

* :mod:`.softmax` — multinomial logistic regression (the router);
* :mod:`.calibration` — Platt scaling of one score (the generator's confidence);
* :mod:`.linear_adapter` — a d×d query-embedding adapter (retrieval fine-tuning);
* :mod:`.adam` — the optimiser they share; :mod:`.progress` — the step callback type.
"""

from ragft.finetune.learners.calibration import calibrate_logistic
from ragft.finetune.learners.linear_adapter import AdapterFit, fit_linear_adapter
from ragft.finetune.learners.progress import StepCallback
from ragft.finetune.learners.softmax import SoftmaxFit, fit_softmax_regression

__all__ = [
    "AdapterFit",
    "SoftmaxFit",
    "StepCallback",
    "calibrate_logistic",
    "fit_linear_adapter",
    "fit_softmax_regression",
]
