"""How learners and trainers report progress while they run."""

from __future__ import annotations

from collections.abc import Callable, Mapping

__all__ = ["StepCallback"]

#: ``on_step(step, total, metrics)``: training progress, e.g. ``(40, 300, {"train_loss": 0.41})``.
StepCallback = Callable[[int, int, Mapping[str, float]], None]
