"""LoRA fine-tuning of open-weights causal LMs, behind :class:`~ragft.finetune.jobs.FineTuneBackend`.

``ragft finetune start FILE --backend lora --model smollm2`` (or a Hugging Face model
directory, or a ``.gguf`` file) validates the file with the base model's own tokenizer and
chat template — a problem is an error with line numbers and no job is created — then starts a
detached training process (:mod:`ragft.finetune.lora.worker`) and returns. ``status``,
``events``, ``cancel`` and ``list`` read the job's record, which that process keeps current;
``cancel`` is cooperative (the process stops before its next optimizer step).

A job whose process died (killed, out of memory, machine restarted) is reported ``failed``
with the epoch of its last checkpoint; starting the same job again (same file, model, suffix,
epochs, seed and hyperparameters — the :class:`~ragft.finetune.jobs.JobManager` key) creates
a new attempt that resumes from that checkpoint instead of from scratch.

Layout under ``<models>/lora/``: ``files/`` (uploaded JSONL by content hash), ``jobs/<job
id>/`` (``job.json``, ``worker.log``, ``work/checkpoints/``), ``adapters/<job id>/``
(the adapter and its manifest, :mod:`ragft.finetune.lora.artifacts`) and ``tokenizers/``
(tokenizers read out of GGUF files, saved once). The model id is
``lora:<suffix>:<job id>``; training is metered under ``local/<base name>`` with the tokens
read and the compute seconds, which a configured GPU price per hour turns into dollars.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ragft.errors import FineTuneError
from ragft.finetune.jobs import Checkpoint, JobEvent, JobStatus, UploadedFile
from ragft.finetune.lora.base_models import load_tokenizer, resolve_base_model
from ragft.finetune.lora.chat_encoding import encode_file
from ragft.finetune.lora.checkpoints import CheckpointInfo, latest_checkpoint, list_checkpoints
from ragft.finetune.lora.hyperparameters import parse_hyperparameters
from ragft.finetune.lora.job_record import WORKER_LOG, WORKER_MODULE, JobRecord, process_alive
from ragft.finetune.lora.trainer import CHECKPOINTS_DIR
from ragft.finetune.lora.worker import WORK_DIR
from ragft.models.lora_layout import LORA_PREFIX, lora_adapter_dir
from ragft.storage import atomic_write_bytes, file_sha256, locked, publish_directory

__all__ = ["LORA_JOB_PREFIX", "LoraFineTuneBackend", "lora_adapter_dir"]

LORA_JOB_PREFIX = "ftjob-lora-"
#: Tokenizers read out of GGUF files, saved once per GGUF (see ``load_tokenizer``).
TOKENIZER_CACHE = "tokenizers"
#: Set only in the training process's environment: nothing may be fetched at run time.
_OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


class LoraFineTuneBackend:
    """Trains LoRA adapters in background processes on this machine.

    ``python`` is the interpreter that runs the training process (default: this one).
    ``on_event`` is not used: progress arrives as job events, which ``JobManager.follow``
    streams.
    """

    name = "lora"

    def __init__(self, models_dir: str | Path, *, python: str = sys.executable,
                 clock: Callable[[], float] = time.time,
                 on_event: Callable[[JobEvent], None] | None = None):
        self.root = Path(models_dir) / "lora"
        self.models_dir = Path(models_dir)
        self.python = python
        self.clock = clock
        self.on_event = on_event
        # Processes started here: polled (which also reaps them) rather than probed by pid.
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    # -- storage -------------------------------------------------------------------------
    def _record(self, job_id: str) -> JobRecord:
        if "/" in job_id or not job_id.startswith(LORA_JOB_PREFIX):
            raise FineTuneError(f"{job_id!r} is not a LoRA fine-tuning job id")
        record = JobRecord(self.root / "jobs" / job_id, clock=self.clock)
        if not record.path.is_file():
            raise FineTuneError(f"no LoRA fine-tuning job {job_id} in {self.root / 'jobs'}")
        return record

    def _file(self, file_id: str) -> Path:
        path = self.root / "files" / f"{file_id}.jsonl"
        if "/" in file_id or not path.is_file():
            raise FineTuneError(f"no uploaded file {file_id!r} in {path.parent}; upload it first")
        return path

    def _alive(self, job_id: str, pid: int) -> bool:
        proc = self._procs.get(job_id)
        if proc is not None:
            return proc.poll() is None
        return process_alive(pid)

    # -- protocol ------------------------------------------------------------------------
    def check_model(self, model: str) -> None:
        """Accept ``smollm2``, a Hugging Face model directory or a ``.gguf`` file."""
        resolve_base_model(model)

    def upload_file(self, path: Path) -> UploadedFile:
        """Copy the file into ``files/``, named by its SHA-256 (re-uploads are no-ops)."""
        path = Path(path)
        file_id = f"file-lora-{file_sha256(path)[:24]}"
        target = self.root / "files" / f"{file_id}.jsonl"
        if not target.exists():
            atomic_write_bytes(target, path.read_bytes())
        return UploadedFile(id=file_id, filename=path.name, bytes=target.stat().st_size)

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
        """Validate the data with the base model's tokenizer, then start training.

        Raises :class:`~ragft.errors.TrainingDataError` (every problem with its line number)
        or :class:`~ragft.errors.FineTuneError` (bad hyperparameters, unknown base model)
        before any job exists.
        """
        values = dict(hyperparameters or {})
        if seed is not None:
            values["seed"] = seed
        hp = parse_hyperparameters(values)
        ref = resolve_base_model(model)
        suffix = suffix or "lora"
        if ":" in suffix or "/" in suffix:
            raise FineTuneError(f"suffix {suffix!r} may not contain ':' or '/'")
        train_path = self._file(training_file)
        val_path = self._file(validation_file) if validation_file else None
        tokenizer = load_tokenizer(ref, self.root / TOKENIZER_CACHE)
        encode_file(train_path, tokenizer, max_length=hp.max_length)
        if val_path is not None:
            encode_file(val_path, tokenizer, max_length=hp.max_length)

        resume_from = self._resumable(metadata or {})
        job_id = f"{LORA_JOB_PREFIX}{uuid.uuid4().hex[:16]}"
        model_id = f"{LORA_PREFIX}{suffix}:{job_id}"
        status = JobStatus(id=job_id, status="validating_files", model=ref.model_id,
                           created_at=self.clock(), training_file=training_file,
                           validation_file=validation_file,
                           hyperparameters={**hp.to_dict(), "n_epochs": hp.epochs},
                           metadata=dict(metadata or {}))
        record = JobRecord(self.root / "jobs" / job_id, clock=self.clock)
        record.create({
            "status": status.to_dict(), "events": [], "pid": 0, "cancel_requested": False,
            "base": ref.to_dict(), "hyperparameters": hp.model_dump(), "model_id": model_id,
            "artifact_dir": str(lora_adapter_dir(self.models_dir, model_id)),
            "tokenizer_cache": str(self.root / TOKENIZER_CACHE),
            "files": {"training": str(train_path), "training_sha256": file_sha256(train_path),
                      "validation": str(val_path) if val_path else None,
                      "validation_sha256": file_sha256(val_path) if val_path else None},
        })
        record.update(message=f"Created fine-tuning job: {job_id} (LoRA r={hp.rank} on "
                      f"{ref.name})")
        if resume_from is not None:
            self._adopt_checkpoint(record, *resume_from)
        self._spawn(record)
        return record.status()

    def _resumable(self, metadata: Mapping[str, str]) -> tuple[str, CheckpointInfo] | None:
        # The newest earlier attempt of the same job (same ragft_key) whose process died,
        # and its last checkpoint: the new attempt continues from there.
        key = metadata.get("ragft_key")
        for earlier in self.find_jobs({"ragft_key": key}) if key else []:
            if earlier.status != "failed":
                continue
            found = latest_checkpoint(self.root / "jobs" / earlier.id / WORK_DIR / CHECKPOINTS_DIR)
            if found is not None:
                return earlier.id, found
        return None

    def _adopt_checkpoint(self, record: JobRecord, earlier: str, found: CheckpointInfo) -> None:
        target = record.dir / WORK_DIR / CHECKPOINTS_DIR / found.path.name
        staging = target.with_name(f".staging-{found.path.name}")
        shutil.copytree(found.path, staging)
        publish_directory(staging, target)
        record.update(message=f"Resuming from job {earlier}'s checkpoint after epoch "
                      f"{found.epoch} (step {found.step})",
                      data={"resumed_from": earlier, "epoch": found.epoch})

    def _spawn(self, record: JobRecord) -> None:
        env = {**os.environ, **_OFFLINE_ENV}
        with open(record.dir / WORKER_LOG, "ab") as log:
            proc = subprocess.Popen(
                [self.python, "-m", WORKER_MODULE, str(record.dir)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True,  # Ctrl-C in the starting shell does not stop training
            )
        self._procs[record.job_id] = proc
        record.update(fields={"pid": proc.pid})

    def find_jobs(self, metadata: Mapping[str, str]) -> list[JobStatus]:
        """LoRA jobs whose metadata contains every given key/value, newest first."""
        jobs = self.root / "jobs"
        found = []
        for path in jobs.glob(f"{LORA_JOB_PREFIX}*") if jobs.is_dir() else []:
            if (path / "job.json").is_file():
                status = self.retrieve_job(path.name)
                if all(status.metadata.get(k) == v for k, v in metadata.items()):
                    found.append(status)
        return sorted(found, key=lambda s: s.created_at or 0.0, reverse=True)

    def retrieve_job(self, job_id: str) -> JobStatus:
        """The job's state; a job whose training process died is reported failed, with the
        checkpoint a new attempt will resume from."""
        record = self._record(job_id)
        with locked(record.path):
            data = record.read()
            status = JobStatus.from_dict(data["status"])
            if status.terminal or self._alive(job_id, int(data.get("pid") or 0)):
                return status
        if data.get("cancel_requested"):
            record.update(message="Job cancelled", status="cancelled", finished_at=self.clock())
            return record.status()
        found = latest_checkpoint(record.dir / WORK_DIR / CHECKPOINTS_DIR)
        where = (f"run the same `ragft finetune start` again to resume from the checkpoint "
                 f"after epoch {found.epoch}" if found else
                 "no epoch had finished, so starting it again begins from scratch")
        error = (f"the training process stopped before finishing (killed or crashed; see "
                 f"{record.dir / WORKER_LOG}); {where}")
        record.update(message="Training process stopped before the job finished", level="error",
                      status="failed", error=error, finished_at=self.clock())
        return record.status()

    def list_events(self, job_id: str, *, limit: int = 100) -> list[JobEvent]:
        """The job's most recent ``limit`` events, oldest first."""
        return self._record(job_id).events()[-limit:]

    def list_checkpoints(self, job_id: str) -> list[Checkpoint]:
        """One checkpoint per finished epoch (``model`` is its directory)."""
        record = self._record(job_id)
        out = []
        for ckpt in list_checkpoints(record.dir / WORK_DIR / CHECKPOINTS_DIR):
            history = ckpt.meta.get("history") or [{}]
            metrics = {k: float(v) for k, v in history[-1].items() if isinstance(v, (int, float))}
            out.append(Checkpoint(id=f"ftckpt-{job_id}-epoch-{ckpt.epoch}", step=ckpt.step,
                                  model=str(ckpt.path), metrics=metrics,
                                  created_at=ckpt.path.stat().st_mtime))
        return out

    def cancel_job(self, job_id: str) -> JobStatus:
        """Ask the training process to stop before its next step; returns at once (poll
        :meth:`retrieve_job` to see ``cancelled``). A job with no live process is cancelled
        here."""
        record = self._record(job_id)
        if record.status().terminal:
            return record.status()
        record.update(message="Cancellation requested", fields={"cancel_requested": True})
        return self.retrieve_job(job_id)

    def wait(self, job_id: str, timeout: float | None = None) -> None:
        """Block until this backend's training process for ``job_id`` exits (tests, scripts)."""
        proc = self._procs.get(job_id)
        if proc is not None:
            proc.wait(timeout=timeout)
