"""Per-epoch training checkpoints: the adapter plus everything needed to continue exactly.

A checkpoint directory ``checkpoints/epoch-NNNN/`` holds the LoRA adapter as peft writes it
(``adapter_config.json``, ``adapter_model.safetensors``), ``trainer_state.pt`` (optimizer and
scheduler state, torch RNG states) and ``checkpoint.json`` (epoch, step, metered tokens and
seconds, loss history). It is written in a staging directory and renamed into place, so a
process killed mid-write leaves the previous checkpoint as the latest complete one.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragft.storage import atomic_write_json, publish_directory, read_json

__all__ = ["CHECKPOINT_META", "TRAINER_STATE", "CheckpointInfo", "latest_checkpoint",
           "list_checkpoints", "write_checkpoint"]

CHECKPOINT_META = "checkpoint.json"
TRAINER_STATE = "trainer_state.pt"
_NAME = re.compile(r"^epoch-(\d{4,})$")


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    """A complete checkpoint on disk and what its ``checkpoint.json`` says."""

    path: Path
    epoch: int
    step: int
    meta: dict[str, Any]


def list_checkpoints(root: Path) -> list[CheckpointInfo]:
    """Complete checkpoints under ``root``, by epoch (staging leftovers are ignored)."""
    out = []
    if not root.is_dir():
        return out
    for child in root.iterdir():
        match = _NAME.match(child.name)
        if not match or not (child / CHECKPOINT_META).is_file():
            continue
        meta = read_json(child / CHECKPOINT_META)
        out.append(CheckpointInfo(child, int(match.group(1)), int(meta.get("step", 0)), meta))
    return sorted(out, key=lambda c: c.epoch)


def latest_checkpoint(root: Path) -> CheckpointInfo | None:
    """The newest complete checkpoint, or ``None``."""
    found = list_checkpoints(root)
    return found[-1] if found else None


def write_checkpoint(root: Path, epoch: int, *, peft_model: Any, trainer_state: dict[str, Any],
                     meta: dict[str, Any]) -> CheckpointInfo:
    """Write the checkpoint of ``epoch`` atomically (staging directory, then one rename)."""
    import torch

    final = root / f"epoch-{epoch:04d}"
    staging = root / f".staging-epoch-{epoch:04d}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    peft_model.save_pretrained(str(staging))
    torch.save(trainer_state, staging / TRAINER_STATE)
    atomic_write_json(staging / CHECKPOINT_META, meta)  # written last: marks it complete
    publish_directory(staging, final)
    return CheckpointInfo(final, epoch, int(meta.get("step", 0)), meta)
