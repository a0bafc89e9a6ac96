"""The LoRA training process: ``python -m ragft.finetune.lora.worker JOB_DIR``.

The backend starts one per job, detached from the command that started it, so training goes
on when ``ragft finetune start`` returns (follow it with ``ragft finetune status ID --wait``).
It validates the data with the base model's tokenizer, loads the model, trains with
:func:`~ragft.finetune.lora.trainer.train_lora` — every step, validation loss and checkpoint
becoming a job event — checks for a cancel request between steps, and finally publishes the
adapter directory (adapter + ``lora.json`` manifest) in one rename. Killed, it leaves its
last per-epoch checkpoint; the job's next attempt resumes from it.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ragft.finetune.lora.artifacts import write_artifact
from ragft.finetune.lora.base_models import (
    BaseModelRef,
    load_base_model,
    load_tokenizer,
    pick_device,
)
from ragft.finetune.lora.chat_encoding import encode_file
from ragft.finetune.lora.hyperparameters import LoraHyperparameters
from ragft.finetune.lora.job_record import JobRecord
from ragft.finetune.lora.trainer import TrainingCancelled, train_lora

__all__ = ["WORK_DIR", "main", "run_job"]

WORK_DIR = "work"


def run_job(job_dir: str | Path) -> str:
    """Train the job recorded in ``job_dir`` to its end; returns its final state."""
    record = JobRecord(job_dir)
    started = time.monotonic()
    try:
        _train(record, started)
    except TrainingCancelled:
        record.update(message="Job cancelled", status="cancelled", finished_at=time.time())
    except Exception as exc:  # noqa: BLE001 - any failure becomes the job's error
        record.update(message=f"Job failed: {exc}", level="error", status="failed",
                      error=str(exc), finished_at=time.time())
    return str(record.status().status)


def _train(record: JobRecord, started: float) -> None:
    data = record.read()
    ref = BaseModelRef.from_dict(data["base"])
    hp = LoraHyperparameters(**data["hyperparameters"])
    files = data["files"]

    def stop() -> bool:
        return record.cancel_requested()

    record.update(message="Validating training file with the base model's tokenizer",
                  status="validating_files")
    tokenizer = load_tokenizer(ref, data.get("tokenizer_cache"))
    train = encode_file(files["training"], tokenizer, max_length=hp.max_length)
    validation = (encode_file(files["validation"], tokenizer, max_length=hp.max_length)
                  if files.get("validation") else [])
    if stop():
        raise TrainingCancelled
    record.update(message="Files validated, moving job to queued state", status="queued")
    device = pick_device(hp.device)
    loaded = time.monotonic()
    record.update(message=f"Loading base model {ref.name} on {device}", status="running")
    model = load_base_model(ref, device)
    record.update(message=f"Loaded {ref.name} in {time.monotonic() - loaded:.1f} s; training "
                  f"on {len(train)} examples" + (f" ({len(validation)} validation)"
                                                 if validation else ""))

    def progress(kind: str, message: str, figures: Mapping[str, Any]) -> None:
        record.update(message=message, event_type="metrics" if kind in ("step", "validation")
                      else "message", data=dict(figures))

    before_training = time.monotonic()
    result = train_lora(model, tokenizer, train, validation, hyperparameters=hp,
                        work_dir=record.dir / WORK_DIR, on_progress=progress, should_stop=stop)
    if stop():
        raise TrainingCancelled
    metrics = {k: v for k, v in result.metrics().items() if math.isfinite(v)}
    # What a rented GPU bills: training (including the attempts this one resumed, less
    # their unsaved partial epoch, which is not known) plus this process's loading time.
    metrics["compute_seconds"] = round(result.seconds + before_training - started, 3)
    model_id = str(data["model_id"])
    artifact = write_artifact(Path(data["artifact_dir"]), model_id=model_id,
                              job_id=record.job_id, adapter_dir=result.adapter_dir, base=ref,
                              hyperparameters=hp, metrics=metrics, files=files)
    record.update(message=f"New fine-tuned model created: {model_id} (adapter {artifact})")
    record.update(message="The job has successfully completed", status="succeeded",
                  fine_tuned_model=model_id, trained_tokens=result.tokens,
                  finished_at=time.time(), metrics=metrics)
    shutil.rmtree(record.dir / WORK_DIR / "adapter", ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point: one argument, the job directory."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m ragft.finetune.lora.worker JOB_DIR", file=sys.stderr)
        return 2
    return 0 if run_job(args[0]) == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
