"""The LoRA supervised fine-tuning loop (plain PyTorch + peft, no Trainer framework).

:func:`train_lora` wraps a causal LM with a peft LoRA adapter and trains only the adapter with
AdamW, a linear warm-up/decay schedule, gradient accumulation and clipping. The loss is the
token-weighted cross-entropy over assistant tokens (labels from
:mod:`ragft.finetune.lora.chat_encoding`), so an accumulation group of short and long answers
counts every answer token once.

It reports through ``on_progress(kind, message, data)``: ``step`` (training loss, learning
rate, tokens/s), ``validation`` (validation loss at the end of every epoch), ``checkpoint``
and ``resume``. Between optimizer steps it asks ``should_stop()``; when that returns true it
raises :class:`TrainingCancelled` without writing anything further. After every epoch it writes
a checkpoint (:mod:`ragft.finetune.lora.checkpoints`); called again on the same ``work_dir``
it resumes after the last complete one — same adapter weights, optimizer moments, schedule
position and RNG state — refusing a checkpoint made from other data or hyperparameters.

The hand-written loop is ~150 lines; TRL's ``SFTTrainer`` would add a dependency and its own
checkpoint layout and callbacks while ragft needs its job events, cancel and atomic writes.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragft.errors import FineTuneError
from ragft.finetune.lora.chat_encoding import IGNORE_INDEX, EncodedExample
from ragft.finetune.lora.checkpoints import (
    TRAINER_STATE,
    CheckpointInfo,
    latest_checkpoint,
    write_checkpoint,
)
from ragft.finetune.lora.hyperparameters import ALL_LINEAR, LoraHyperparameters
from ragft.storage import publish_directory

__all__ = [
    "ADAPTER_DIR",
    "CHECKPOINTS_DIR",
    "LoraTrainingResult",
    "ProgressCallback",
    "TrainingCancelled",
    "data_fingerprint",
    "train_lora",
]

ADAPTER_DIR = "adapter"
CHECKPOINTS_DIR = "checkpoints"

#: ``on_progress(kind, message, data)`` with kind ``step``, ``validation``, ``checkpoint``,
#: ``resume`` or ``info``; ``data`` holds the figures (``step``, ``train_loss``, ...).
ProgressCallback = Callable[[str, str, Mapping[str, Any]], None]


class TrainingCancelled(Exception):
    """``should_stop()`` returned true between two optimizer steps."""


@dataclass(frozen=True)
class LoraTrainingResult:
    """What a finished run produced and measured.

    ``tokens`` are the tokens the model read over all epochs (padding excluded): what
    training is metered by. ``trained_tokens`` are those that carried loss. ``seconds`` is
    the training time including earlier runs this one resumed (their partial, unsaved epoch
    excepted). ``model`` is the trained peft model, still in memory.
    """

    adapter_dir: Path
    epochs: int
    steps: int
    tokens: int
    trained_tokens: int
    seconds: float
    train_loss: float | None
    validation_loss: float | None
    history: list[dict[str, float]]
    resumed_from_epoch: int | None = None
    model: Any = field(default=None, repr=False, compare=False)

    def metrics(self) -> dict[str, float]:
        """Numeric figures for a job's ``metrics`` and the registry."""
        out: dict[str, float] = {"epochs": float(self.epochs), "steps": float(self.steps),
                                 "tokens": float(self.tokens),
                                 "trained_tokens": float(self.trained_tokens),
                                 "train_seconds": round(self.seconds, 3)}
        if self.train_loss is not None:
            out["train_loss"] = self.train_loss
        if self.validation_loss is not None:
            out["valid_loss"] = self.validation_loss
        if self.seconds > 0:
            out["tokens_per_second"] = round(self.tokens / self.seconds, 2)
        return out


def data_fingerprint(examples: Sequence[EncodedExample]) -> str:
    """SHA-256 of the encoded examples: a checkpoint only resumes on the same data."""
    digest = hashlib.sha256()
    for ex in examples:
        digest.update(json.dumps([ex.input_ids, ex.labels]).encode())
    return digest.hexdigest()


def _batch(examples: Sequence[EncodedExample], pad_id: int, device: Any) -> dict[str, Any]:
    import torch

    width = max(ex.n_tokens for ex in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, ex in enumerate(examples):
        n = ex.n_tokens
        ids[row, :n] = torch.tensor(ex.input_ids)
        labels[row, :n] = torch.tensor(ex.labels)
        mask[row, :n] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device),
            "labels": labels.to(device)}


def _loss_tokens(batch: Mapping[str, Any]) -> int:
    # The model predicts token t+1 from t: the first label of each row is never scored.
    return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())


def _validation_loss(model: Any, examples: Sequence[EncodedExample], batch_size: int,
                     pad_id: int, device: Any) -> float:
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            batch = _batch(examples[start : start + batch_size], pad_id, device)
            n = _loss_tokens(batch)
            if n:
                total += float(model(**batch).loss) * n
                count += n
    model.train()
    return total / count if count else math.nan


def _wrap(model: Any, hp: LoraHyperparameters) -> Any:
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(hp.seed)  # LoRA's A matrices start random: same seed, same start
    targets: Any = ALL_LINEAR if hp.target_modules == ALL_LINEAR else list(hp.target_modules)
    config = LoraConfig(r=hp.rank, lora_alpha=hp.lora_alpha, lora_dropout=hp.dropout,
                        target_modules=targets, bias="none", task_type="CAUSAL_LM")
    try:
        peft_model = get_peft_model(model, config)
    except ValueError as exc:  # peft: "Target modules {...} not found in the base model"
        raise FineTuneError(f"cannot apply LoRA to this model: {exc}") from exc
    if hp.gradient_checkpointing:
        # Non-reentrant checkpointing needs no input that requires grad (the base is frozen).
        peft_model.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False})
    return peft_model


def _restore(peft_model: Any, ckpt: CheckpointInfo, optimizer: Any, scheduler: Any) -> None:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = load_file(str(ckpt.path / "adapter_model.safetensors"))
    set_peft_model_state_dict(peft_model, weights)
    state = torch.load(ckpt.path / TRAINER_STATE, weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])


def train_lora(
    model: Any,
    tokenizer: Any,
    train: Sequence[EncodedExample],
    validation: Sequence[EncodedExample] = (),
    *,
    hyperparameters: LoraHyperparameters,
    work_dir: str | Path,
    on_progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> LoraTrainingResult:
    """Train a LoRA adapter on ``model`` (already on its device) and save it.

    Writes ``work_dir/checkpoints/epoch-NNNN/`` after every epoch and the final adapter to
    ``work_dir/adapter/`` (peft format: ``adapter_config.json`` + ``adapter_model.safetensors``,
    the base model referenced, never copied). Resumes from the last checkpoint in ``work_dir``.
    """
    import torch
    from transformers import get_linear_schedule_with_warmup

    hp = hyperparameters
    if not train:
        raise FineTuneError("no training examples")
    work = Path(work_dir)
    report = on_progress or (lambda kind, message, data: None)
    started = clock()
    device = next(model.parameters()).device
    pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None
                 else tokenizer.eos_token_id)
    fingerprint = data_fingerprint(train)
    setup = {"hyperparameters": hp.to_dict(), "data_sha256": fingerprint}

    peft_model = _wrap(model, hp)
    if hasattr(peft_model.config, "use_cache"):
        peft_model.config.use_cache = False
    peft_model.train()
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=hp.learning_rate, weight_decay=hp.weight_decay)
    micro_per_epoch = math.ceil(len(train) / hp.batch_size)
    steps_per_epoch = math.ceil(micro_per_epoch / hp.gradient_accumulation)
    total_steps = hp.epochs * steps_per_epoch
    if hp.max_steps is not None:
        total_steps = min(total_steps, hp.max_steps)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, round(total_steps * hp.warmup_ratio), total_steps
    )

    first_epoch, step, tokens, trained, carried = 1, 0, 0, 0, 0.0
    history: list[dict[str, float]] = []
    resumed: int | None = None
    ckpt = latest_checkpoint(work / CHECKPOINTS_DIR)
    if ckpt is not None:
        if {k: ckpt.meta.get(k) for k in setup} != json.loads(json.dumps(setup)):
            raise FineTuneError(
                f"checkpoint {ckpt.path} was made from other training data or hyperparameters; "
                "resume with the same ones, or train into another directory"
            )
        _restore(peft_model, ckpt, optimizer, scheduler)
        first_epoch, step = ckpt.epoch + 1, ckpt.step
        tokens, trained = int(ckpt.meta["tokens"]), int(ckpt.meta["trained_tokens"])
        carried, history = float(ckpt.meta["seconds"]), list(ckpt.meta["history"])
        resumed = ckpt.epoch
        report("resume", f"Resuming from the checkpoint of epoch {ckpt.epoch} (step {step})",
               {"epoch": ckpt.epoch, "step": step})

    def elapsed() -> float:
        return carried + (clock() - started)

    train_loss: float | None = history[-1].get("epoch_train_loss") if history else None
    valid_loss: float | None = history[-1].get("valid_loss") if history else None
    epoch = first_epoch - 1
    for epoch in range(first_epoch, hp.epochs + 1):
        if step >= total_steps:
            epoch -= 1
            break
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(hp.seed + epoch))
        micro = [[train[int(i)] for i in order[s : s + hp.batch_size]]
                 for s in range(0, len(train), hp.batch_size)]
        epoch_loss, epoch_count = 0.0, 0
        for g in range(0, len(micro), hp.gradient_accumulation):
            if step >= total_steps:
                break
            if should_stop is not None and should_stop():
                raise TrainingCancelled
            batches = [_batch(mb, pad_id, device) for mb in micro[g : g + hp.gradient_accumulation]]
            group_tokens = sum(_loss_tokens(b) for b in batches)
            if group_tokens == 0:
                continue
            loss_sum = 0.0
            for batch in batches:
                n = _loss_tokens(batch)
                if n == 0:
                    continue
                loss = peft_model(**batch).loss
                (loss * (n / group_tokens)).backward()
                loss_sum += float(loss.detach()) * n
                tokens += int(batch["attention_mask"].sum())
                trained += n
            torch.nn.utils.clip_grad_norm_(params, hp.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            step_loss = loss_sum / group_tokens
            epoch_loss += loss_sum
            epoch_count += group_tokens
            seconds = elapsed()
            row = {"step": step, "epoch": epoch, "train_loss": step_loss,
                   "learning_rate": float(scheduler.get_last_lr()[0]), "tokens": float(tokens),
                   "tokens_per_second": round(tokens / seconds, 2) if seconds > 0 else 0.0}
            report("step", f"Step {step}/{total_steps}: training loss {step_loss:.4f}",
                   {**row, "total_steps": total_steps})
        train_loss = epoch_loss / epoch_count if epoch_count else train_loss
        summary: dict[str, float] = {"epoch": float(epoch), "step": float(step)}
        if train_loss is not None:
            summary["epoch_train_loss"] = train_loss
        if validation:
            valid_loss = _validation_loss(peft_model, validation, hp.batch_size, pad_id, device)
            summary["valid_loss"] = valid_loss
            report("validation", f"Epoch {epoch}/{hp.epochs}: validation loss {valid_loss:.4f}",
                   {"epoch": epoch, "step": step, "valid_loss": valid_loss})
        history.append(summary)
        state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "torch_rng": torch.get_rng_state(),
                 "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}
        meta = {**setup, "epoch": epoch, "step": step, "tokens": tokens,
                "trained_tokens": trained, "seconds": elapsed(), "history": history}
        saved = write_checkpoint(work / CHECKPOINTS_DIR, epoch, peft_model=peft_model,
                                 trainer_state=state, meta=meta)
        report("checkpoint", f"Checkpoint saved after epoch {epoch} (step {step})",
               {"epoch": epoch, "step": step, "path": str(saved.path)})

    staging = work / ".staging-adapter"
    if staging.exists():
        shutil.rmtree(staging)
    peft_model.save_pretrained(str(staging))
    publish_directory(staging, work / ADAPTER_DIR)
    peft_model.eval()
    return LoraTrainingResult(
        adapter_dir=work / ADAPTER_DIR, epochs=max(epoch, 0), steps=step, tokens=tokens,
        trained_tokens=trained, seconds=elapsed(), train_loss=train_loss,
        validation_loss=valid_loss, history=history, resumed_from_epoch=resumed,
        model=peft_model,
    )
