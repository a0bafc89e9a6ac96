"""LoRA training hyperparameters: one validated model, bounds checked before anything loads.

A typo or an out-of-range value is an error that names the field (pydantic, ``extra="forbid"``),
raised before the base model is read, so a bad option never costs a model load. The same
values travel as the job's ``hyperparameters`` and end up in the registry record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ragft.errors import FineTuneError

__all__ = ["ALL_LINEAR", "LoraHyperparameters", "parse_hyperparameters"]

#: ``target_modules`` value that adapts every linear projection of the decoder (not the head).
ALL_LINEAR = "all-linear"


class LoraHyperparameters(BaseModel):
    """Supervised LoRA fine-tuning settings.

    Defaults follow what worked here on SmolLM2-135M (rank 16, learning rate 3e-4, one epoch,
    batch 4, loss on the answers only). ``alpha`` defaults to ``2 × rank`` (scale 2).
    ``max_steps`` stops early after that many optimizer steps (quick tries, benchmarks).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(1, ge=1, le=100, description="passes over the training file")
    learning_rate: float = Field(3e-4, gt=0, le=1e-2, description="AdamW peak learning rate")
    rank: int = Field(16, ge=1, le=512, description="LoRA rank r")
    alpha: float | None = Field(None, gt=0, le=4096, description="LoRA alpha (default 2 x rank)")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="LoRA dropout")
    target_modules: list[str] | Literal["all-linear"] = Field(
        ALL_LINEAR, description="module names to adapt (e.g. q_proj, v_proj) or 'all-linear'"
    )
    max_length: int = Field(1024, ge=16, le=131_072, description="tokens per example, at most")
    batch_size: int = Field(4, ge=1, le=1024, description="examples per forward pass")
    gradient_accumulation: int = Field(1, ge=1, le=1024,
                                       description="forward passes per optimizer step")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seed for init, shuffling and dropout")
    warmup_ratio: float = Field(0.05, ge=0.0, le=0.5,
                                description="share of steps with a linear warm-up")
    weight_decay: float = Field(0.0, ge=0.0, le=1.0)
    max_grad_norm: float = Field(1.0, gt=0, le=1000.0, description="gradient clipping")
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps")
    gradient_checkpointing: bool = Field(
        False, description="recompute activations in the backward pass: far less memory, "
        "~30% more time")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", description="auto: CUDA, then MPS, then CPU"
    )

    @model_validator(mode="after")
    def _check_modules(self) -> LoraHyperparameters:
        if isinstance(self.target_modules, list):
            if not self.target_modules:
                raise ValueError("target_modules is empty; name modules or use 'all-linear'")
            bad = [m for m in self.target_modules if not m or not m.replace("_", "").isalnum()]
            if bad:
                raise ValueError(f"target_modules {bad} are not module names like 'q_proj'")
        return self

    @property
    def lora_alpha(self) -> float:
        """``alpha``, or ``2 × rank`` when not given."""
        return float(self.alpha) if self.alpha is not None else 2.0 * self.rank

    @property
    def effective_batch_size(self) -> int:
        """Examples per optimizer step."""
        return self.batch_size * self.gradient_accumulation

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with ``alpha`` resolved."""
        data = self.model_dump()
        data["alpha"] = self.lora_alpha
        return data


#: Names the OpenAI-style job hyperparameters use for the same settings.
_ALIASES = {"n_epochs": "epochs", "learning_rate_multiplier": None, "r": "rank",
            "lora_alpha": "alpha", "lora_dropout": "dropout"}


def parse_hyperparameters(values: Mapping[str, Any] | None) -> LoraHyperparameters:
    """Validate job hyperparameters (OpenAI names such as ``n_epochs`` accepted).

    ``"auto"`` (or ``None``) for any setting means its default. Raises
    :class:`~ragft.errors.FineTuneError` naming every bad field and its bound.
    """
    data: dict[str, Any] = {}
    for key, value in (values or {}).items():
        name = _ALIASES.get(key, key)
        if key in _ALIASES and name is None:
            raise FineTuneError(f"LoRA training has no {key!r}; set learning_rate instead")
        if value is None or value == "auto":
            continue
        data[str(name)] = value
    try:
        return LoraHyperparameters(**data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'hyperparameters'}: {err['msg']}"
            for err in exc.errors()
        )
        raise FineTuneError(f"invalid LoRA hyperparameters: {problems}") from None
