"""Where a trained LoRA adapter lives, and how its model id names it.

Shared by the trainer that writes adapters (:mod:`ragft.finetune.backends.lora`) and the server
that serves them (:mod:`ragft.models.lora_server`). A LoRA fine-tune's model id is
``lora:<suffix>:<job id>``; its files are ``<models>/lora/adapters/<job id>/`` — peft's
adapter beside a ``lora.json`` manifest naming the base model, never a copy of the base.
"""

from __future__ import annotations

from pathlib import Path

from ragft.errors import ConfigError

__all__ = ["LORA_MANIFEST", "LORA_PREFIX", "lora_adapter_dir"]

#: Model ids of trained LoRA adapters: ``lora:<suffix>:<job id>``.
LORA_PREFIX = "lora:"
#: The manifest written beside peft's adapter files.
LORA_MANIFEST = "lora.json"


def lora_adapter_dir(models_dir: str | Path, model_id: str) -> Path:
    """Where the adapter of ``lora:<suffix>:<job id>`` lives under ``models_dir``."""
    job_id = model_id.rsplit(":", 1)[-1]
    if not model_id.startswith(LORA_PREFIX) or model_id.count(":") < 2 or not job_id:
        raise ConfigError(f"{model_id!r} is not a LoRA model id: expected lora:SUFFIX:JOB_ID")
    return Path(models_dir) / "lora" / "adapters" / job_id
