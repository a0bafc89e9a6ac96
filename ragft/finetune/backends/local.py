"""The offline fine-tuning backend: trains small real models (numpy, local embedder).

:class:`LocalFineTuneBackend` implements :class:`~ragft.finetune.jobs.FineTuneBackend` like
OpenAI's service does — files are uploaded, a job goes ``validating_files → queued → running →
succeeded/failed/cancelled`` and logs events such as ``"Step 40/300: training loss 0.4123"`` —
so :class:`~ragft.finetune.jobs.JobManager`, the CLI and the registry work the same on both.
The result is an artifact directory read by :mod:`ragft.models.local_ft`, with model id
``local-ft:<purpose>:<suffix>:<job id>`` (free in the price table).

This module is the job plumbing (uploaded files, the job store, the training process's
liveness, cancellation, the artifact); what is trained for each *purpose* (detected, or given
as job metadata ``ragft_purpose``) is :mod:`ragft.finetune.trainers`.
"""

from __future__ import annotations

import math
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ragft.errors import FineTuneError
from ragft.finetune.backends import backend_spec
from ragft.finetune.data import auto_epochs, detect_purpose, read_jsonl, validate_examples
from ragft.finetune.jobs import Checkpoint, JobEvent, JobStatus, UploadedFile
from ragft.finetune.processes import pid_alive
from ragft.finetune.trainers import TrainedModel, TrainingRun, trainer_for
from ragft.storage import (
    atomic_write_bytes,
    atomic_write_json,
    file_sha256,
    locked,
    publish_directory,
    read_json,
)
from ragft.tokens import count_chat_tokens, count_tokens
from ragft.models.base import Embedder
from ragft.models.local_ft import ARTIFACT_FORMAT, LOCAL_FT_PREFIX, artifact_dir

__all__ = ["LOCAL_JOB_PREFIX", "LocalFineTuneBackend"]

#: Every local job id starts with this (``ftjob-local-<hex>``), as registered for the backend.
LOCAL_JOB_PREFIX = backend_spec("local").job_prefix


class _Cancelled(Exception):
    pass


class LocalFineTuneBackend:
    """Trains offline, behind the same protocol as OpenAI's fine-tuning API.

    Layout under ``models_dir``: ``files/`` (uploaded JSONL, named by content hash),
    ``jobs/<job id>.json`` (status + events, rewritten atomically at every change) and one
    artifact directory per trained model. ``background=True`` trains in a thread (poll it
    with :meth:`retrieve_job` like a remote job); by default :meth:`create_job` returns when
    training has finished. ``on_event`` sees every event as it is logged (live progress).
    Hyperparameters: ``n_epochs`` (int or ``"auto"``) is the adapter's number of passes over
    its pairs (10 for auto); the router is fitted to convergence and refuses a set number of
    epochs, its ``l2`` (a number or ``"auto"``) sets its regularisation. What is trained is :data:`~ragft.finetune.trainers.TRAINERS`' entry for the purpose.
    """

    name = "local"

    def __init__(
        self,
        models_dir: str | Path,
        embedder: Embedder,
        *,
        background: bool = False,
        on_event: Callable[[JobEvent], None] | None = None,
        clock: Callable[[], float] = time.time,
        adapter_identity_l2: float = 0.0,
    ):
        self.models_dir = Path(models_dir)
        self.embedder = embedder
        self.background = background
        self.on_event = on_event
        self.clock = clock
        self.adapter_identity_l2 = adapter_identity_l2
        self._lock = threading.RLock()
        self._running: set[str] = set()

    # -- storage -------------------------------------------------------------------------
    @property
    def _files(self) -> Path:
        return self.models_dir / "files"

    @property
    def _jobs(self) -> Path:
        return self.models_dir / "jobs"

    def _job_path(self, job_id: str) -> Path:
        if "/" in job_id or not job_id.startswith(LOCAL_JOB_PREFIX):
            raise FineTuneError(f"{job_id!r} is not a local fine-tuning job id")
        return self._jobs / f"{job_id}.json"

    def _read(self, job_id: str) -> dict[str, Any]:
        path = self._job_path(job_id)
        try:
            return read_json(path)
        except FileNotFoundError:
            raise FineTuneError(f"no local fine-tuning job {job_id} in {self._jobs}") from None
        except ValueError as exc:
            raise FineTuneError(f"local job file {path} is corrupt: {exc}") from exc

    def _write(self, record: Mapping[str, Any]) -> None:
        atomic_write_json(self._job_path(record["status"]["id"]), record)

    def _update(self, job_id: str, *, message: str | None = None, level: str = "info",
                data: Mapping[str, Any] | None = None, event_type: str = "message",
                **status: Any) -> None:
        # The file lock also covers another process cancelling the job meanwhile.
        with self._lock, locked(self._job_path(job_id)):
            record = self._read(job_id)
            record["status"].update(status)
            event = None
            if message is not None:
                event = JobEvent(
                    id=f"ftevent-{job_id[len(LOCAL_JOB_PREFIX):]}-{len(record['events']) + 1:05d}",
                    created_at=self.clock(),
                    message=message,
                    level=level,
                    type=event_type,
                    data=dict(data or {}),
                )
                record["events"].append(event.to_dict())
            self._write(record)
        if event is not None and self.on_event is not None:
            self.on_event(event)

    # -- protocol ------------------------------------------------------------------------
    def check_model(self, model: str) -> None:
        """Accept ``local``, ``local/...`` ids and the embedder's own name."""
        if model not in ("local", self.embedder.name) and not model.startswith("local/"):
            raise FineTuneError(
                f"the local backend trains small models on the local embedder; pass "
                f"--model local (got {model!r}, which needs --backend openai)"
            )

    def upload_file(self, path: Path) -> UploadedFile:
        """Copy the file into ``files/``, named by its SHA-256 (re-uploads are no-ops)."""
        path = Path(path)
        digest = file_sha256(path)
        file_id = f"file-local-{digest[:24]}"
        target = self._files / f"{file_id}.jsonl"
        if not target.exists():
            atomic_write_bytes(target, path.read_bytes())
        return UploadedFile(id=file_id, filename=path.name, bytes=target.stat().st_size)

    def _file(self, file_id: str) -> Path:
        path = self._files / f"{file_id}.jsonl"
        if "/" in file_id or not path.is_file():
            raise FineTuneError(f"no uploaded file {file_id!r} in {self._files}; upload it first")
        return path

    def create_job(
        self,
        *,
        model: str,
        training_file: str,
        validation_file: str | None = None,
        suffix: str | None = None,
        seed: int | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> JobStatus:
        """Register the job (``validating_files``) and train it, now or in a thread."""
        self.check_model(model)
        self._file(training_file)
        if validation_file:
            self._file(validation_file)
        suffix = suffix or "model"
        if ":" in suffix or "/" in suffix:
            raise FineTuneError(f"suffix {suffix!r} may not contain ':' or '/'")
        job_id = f"{LOCAL_JOB_PREFIX}{uuid.uuid4().hex[:16]}"
        status = JobStatus(
            id=job_id,
            status="validating_files",
            model=self.embedder.name,
            created_at=self.clock(),
            training_file=training_file,
            validation_file=validation_file,
            hyperparameters=dict(hyperparameters or {"n_epochs": "auto"}),
            metadata=dict(metadata or {}),
        )
        record = {"status": status.to_dict(), "events": [], "pid": os.getpid(),
                  "suffix": suffix, "seed": seed, "cancel_requested": False}
        with self._lock:
            self._write(record)
            self._running.add(job_id)
        self._update(job_id, message=f"Created fine-tuning job: {job_id}")
        if self.background:
            thread = threading.Thread(target=self._run, args=(job_id,), daemon=True,
                                      name=f"ragft-{job_id}")
            thread.start()
        else:
            self._run(job_id)
        return self.retrieve_job(job_id)

    def find_jobs(self, metadata: Mapping[str, str]) -> list[JobStatus]:
        """Local jobs whose metadata contains every given key/value, newest first."""
        if not self._jobs.is_dir():
            return []
        found = []
        for path in self._jobs.glob(f"{LOCAL_JOB_PREFIX}*.json"):
            status = self.retrieve_job(path.stem)
            if all(status.metadata.get(k) == v for k, v in metadata.items()):
                found.append(status)
        return sorted(found, key=lambda s: s.created_at or 0.0, reverse=True)

    def retrieve_job(self, job_id: str) -> JobStatus:
        """The job's state; a job whose training process died is reported failed."""
        record = self._read(job_id)
        status = JobStatus.from_dict(record["status"])
        if not status.terminal and job_id not in self._running:
            pid = int(record.get("pid", 0))
            if pid == os.getpid() or not pid_alive(pid):
                self._update(job_id, message="Training process stopped before the job finished",
                             level="error", status="failed", finished_at=self.clock(),
                             error="the training process exited before finishing (crash or "
                                   "interrupt); start the job again")
                status = JobStatus.from_dict(self._read(job_id)["status"])
        return status

    def list_events(self, job_id: str, *, limit: int = 100) -> list[JobEvent]:
        """The job's most recent ``limit`` events, oldest first."""
        events = [JobEvent.from_dict(e) for e in self._read(job_id)["events"]]
        return events[-limit:]

    def list_checkpoints(self, job_id: str) -> list[Checkpoint]:
        """Local jobs keep one checkpoint: the final model."""
        status = self.retrieve_job(job_id)
        if status.status != "succeeded" or not status.fine_tuned_model:
            return []
        return [Checkpoint(id=f"ftckpt-{job_id}", step=int(status.metrics.get("steps", 1)),
                           model=status.fine_tuned_model, metrics=dict(status.metrics),
                           created_at=status.finished_at)]

    def cancel_job(self, job_id: str) -> JobStatus:
        """Request cancellation; a job training now stops at its next step.

        Like OpenAI's endpoint this returns at once: poll :meth:`retrieve_job` (or
        ``JobManager.follow``) to see the job reach ``cancelled``.
        """
        with locked(self._job_path(job_id)):
            record = self._read(job_id)
            status = JobStatus.from_dict(record["status"])
            if status.terminal:
                return status
            record["cancel_requested"] = True
            self._write(record)
        pid = int(record.get("pid", 0))
        training = job_id in self._running or (pid != os.getpid() and pid_alive(pid))
        if not training:
            self._update(job_id, message="Job cancelled", status="cancelled",
                         finished_at=self.clock())
        return self.retrieve_job(job_id)

    # -- training ------------------------------------------------------------------------
    def _check_cancel(self, job_id: str) -> None:
        if self._read(job_id).get("cancel_requested"):
            raise _Cancelled

    def _run(self, job_id: str) -> None:
        try:
            self._train(job_id)
        except _Cancelled:
            self._update(job_id, message="Job cancelled", status="cancelled",
                         finished_at=self.clock())
        except Exception as exc:  # noqa: BLE001 - any failure becomes the job's error
            self._update(job_id, message=f"Job failed: {exc}", level="error", status="failed",
                         error=str(exc), finished_at=self.clock())
        finally:
            with self._lock:
                self._running.discard(job_id)
            staging = self.models_dir / f".staging-{job_id}"
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def _train(self, job_id: str) -> None:
        record = self._read(job_id)
        status = JobStatus.from_dict(record["status"])
        self._update(job_id, message="Validating training file")
        train = read_jsonl(self._file(str(status.training_file)))
        validation = read_jsonl(self._file(status.validation_file)) if status.validation_file \
            else []
        purpose = status.metadata.get("ragft_purpose") or detect_purpose(train)
        trainer = trainer_for(purpose)
        if purpose == "adapter":
            tokens_per_epoch = sum(
                count_tokens(str(r.get("query", "")), status.model)
                + count_tokens(str(r.get("passage", r.get("positive", ""))), status.model)
                for r in train
            )
        else:
            report = validate_examples(train, model=status.model, min_examples=2,
                                       source=str(status.training_file))
            report.raise_for_problems()
            tokens_per_epoch = sum(count_chat_tokens(
                [{k: str(v) for k, v in m.items() if k != "weight"} for m in ex["messages"]],
                status.model) for ex in train)
        self._check_cancel(job_id)
        self._update(job_id, message="Files validated, moving job to queued state",
                     status="queued")
        self._check_cancel(job_id)
        epochs_param = status.hyperparameters.get("n_epochs", "auto")
        n_epochs = auto_epochs(len(train)) if epochs_param in (None, "auto") else int(epochs_param)
        self._update(job_id, message=f"Training {purpose} on {len(train)} examples"
                     + (f" ({len(validation)} validation)" if validation else ""),
                     status="running")
        seed = int(record.get("seed") or 0)

        def on_step(step: int, total: int, metrics: Mapping[str, float]) -> None:
            self._check_cancel(job_id)
            shown = ", ".join(
                # A regularisation strength spans decades (1e-2 .. 1e-6): significant digits.
                f"{k.replace('_', ' ')} {v:.4g}" if k == "l2" else f"{k.replace('_', ' ')} {v:.4f}"
                for k, v in metrics.items() if k != "step"
            )
            self._update(job_id, message=f"Step {step}/{total}: {shown}", event_type="metrics",
                         data={"step": step, "total_steps": total, **metrics})

        trained = trainer(TrainingRun(
            train=train, validation=validation, embedder=self.embedder,
            epochs=None if epochs_param in (None, "auto") else int(epochs_param), seed=seed,
            on_step=on_step, adapter_identity_l2=self.adapter_identity_l2,
            hyperparameters=dict(status.hyperparameters),
        ))
        self._check_cancel(job_id)
        model_id = f"{LOCAL_FT_PREFIX}{purpose}:{record['suffix']}:{job_id}"
        self._write_artifact(job_id, model_id, purpose, status, trained)
        metrics = {k: float(v) for k, v in trained.metrics.items()
                   if isinstance(v, (int, float)) and math.isfinite(v)}
        self._update(job_id, message=f"New fine-tuned model created: {model_id}")
        self._update(job_id, message="The job has successfully completed", status="succeeded",
                     fine_tuned_model=model_id, trained_tokens=tokens_per_epoch * n_epochs,
                     finished_at=self.clock(), metrics=metrics)

    def _write_artifact(self, job_id: str, model_id: str, purpose: str, status: JobStatus,
                        trained: TrainedModel) -> None:
        staging = self.models_dir / f".staging-{job_id}"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        files: dict[str, str] = {}
        if trained.arrays:
            np.savez(staging / "weights.npz", **trained.arrays)  # type: ignore[arg-type]
            files["weights.npz"] = file_sha256(staging / "weights.npz")
        if trained.data:
            atomic_write_json(staging / "data.json", trained.data)
            files["data.json"] = file_sha256(staging / "data.json")
        manifest = {
            "format": ARTIFACT_FORMAT,
            "model_id": model_id,
            "purpose": purpose,
            "job_id": job_id,
            "base_model": status.model,
            "embedder": {"name": self.embedder.name, "dimension": self.embedder.dimension},
            "training_file": status.training_file,
            "validation_file": status.validation_file,
            "created_at": self.clock(),
            "metrics": {k: v for k, v in trained.metrics.items()
                        if isinstance(v, (int, float)) and math.isfinite(v)},
            "files": files,
            **trained.manifest,
        }
        atomic_write_json(staging / "model.json", manifest)
        publish_directory(staging, artifact_dir(self.models_dir, model_id))
