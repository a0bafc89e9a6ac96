"""Fine-tuning job lifecycle over a pluggable backend, resumable across process restarts.

This module holds what every backend shares and nothing backend-specific:

* the values a backend returns — :class:`JobStatus`, :class:`JobEvent`, :class:`Checkpoint`,
  :class:`UploadedFile` — ragft's own frozen types, never SDK objects;
* :class:`FineTuneBackend` — the seam. A backend uploads files and creates, reads, lists events
  of and cancels jobs. The backends themselves live in :mod:`ragft.finetune.backends`, one
  module each (``openai``, ``local``), registered by name there;
* :class:`JobManager` — starts jobs idempotently and follows them. It writes the job's state
  (:class:`TrackedJob`) to disk *before and after* every remote step, keyed by what defines
  the job (:func:`job_key`: backend, training-file SHA-256, model, suffix, epochs, seed), so a
  restarted process picks up the job it already paid for instead of creating a second one.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from ragft.answer import Usage
from ragft.errors import (
    FineTuneBackendUnavailable,
    FineTuneError,
    JobFailedError,
    TrainingDataError,
)
from ragft.finetune.data import detect_purpose, read_jsonl, validate_file
from ragft.serialize import from_record, to_record
from ragft.storage import atomic_write_json, file_sha256, locked, read_json
from ragft.metering.meter import Meter

__all__ = [
    "TERMINAL_STATES",
    "Checkpoint",
    "FineTuneBackend",
    "JobEvent",
    "JobManager",
    "JobState",
    "JobStatus",
    "TrackedJob",
    "UploadedFile",
    "job_key",
]

JobState = Literal["validating_files", "queued", "running", "succeeded", "failed", "cancelled"]
TERMINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})

# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A training or validation file stored by the backend."""

    id: str
    filename: str
    bytes: int
    purpose: str = "fine-tune"


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A snapshot of one fine-tuning job.

    ``model`` is the base model; ``fine_tuned_model`` is set once the job succeeds.
    ``trained_tokens`` is what the job billed (all epochs). ``metrics`` carries backend
    figures such as the local router's held-out accuracy.
    """

    id: str
    status: JobState
    model: str
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    error: str | None = None
    created_at: float | None = None
    finished_at: float | None = None
    estimated_finish: float | None = None
    training_file: str | None = None
    validation_file: str | None = None
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        """True once the job has succeeded, failed or been cancelled."""
        return self.status in TERMINAL_STATES

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return to_record(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobStatus:
        """Inverse of :meth:`to_dict` (unknown keys ignored)."""
        return from_record(cls, data)


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One line of a job's log (``"Step 10/100: training loss=0.42"``, state changes)."""

    id: str
    created_at: float
    message: str
    level: str = "info"
    type: str = "message"
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return to_record(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobEvent:
        """Inverse of :meth:`to_dict`."""
        return from_record(cls, data)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """An intermediate model saved by a job (OpenAI keeps the last three epochs)."""

    id: str
    step: int
    model: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    created_at: float | None = None


@runtime_checkable
class FineTuneBackend(Protocol):
    """Where fine-tuning happens. Implementations translate their own errors to
    :class:`~ragft.errors.FineTuneError` subclasses and return ragft's values."""

    @property
    def name(self) -> str:
        """Short backend id used in job keys and records (``openai``, ``local``)."""
        ...

    def check_model(self, model: str) -> None:
        """Raise if ``model`` cannot be fine-tuned here (retired, unknown, refused).

        Called before any upload so nothing is sent for a job that cannot run.
        """
        ...

    def upload_file(self, path: Path) -> UploadedFile:
        """Store a JSONL training/validation file; returns its backend id."""
        ...

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
        """Start a supervised fine-tuning job on already uploaded files."""
        ...

    def find_jobs(self, metadata: Mapping[str, str]) -> list[JobStatus]:
        """Jobs whose metadata contains every given key/value, newest first.

        Lets a restarted process find a job whose creation it started but never saw finish.
        """
        ...

    def retrieve_job(self, job_id: str) -> JobStatus:
        """Current state of a job."""
        ...

    def list_events(self, job_id: str, *, limit: int = 100) -> list[JobEvent]:
        """The job's most recent ``limit`` events, oldest first."""
        ...

    def list_checkpoints(self, job_id: str) -> list[Checkpoint]:
        """Checkpoints the job saved, by step."""
        ...

    def cancel_job(self, job_id: str) -> JobStatus:
        """Ask the backend to stop a job; returns the state after the request."""
        ...


# --------------------------------------------------------------------------- manager


def job_key(
    *,
    backend: str,
    training_sha256: str,
    model: str,
    suffix: str,
    epochs: int | str,
    seed: int | None,
    validation_sha256: str | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
) -> str:
    """SHA-256 identifying a job by what defines it; equal inputs -> the same job.

    The validation file's hash and hyperparameters beyond the epochs are part of it too (a
    different validation set or ``l2`` is a different job), but ``None`` keeps the key of jobs
    without them unchanged.
    """
    parts: dict[str, Any] = {
        "backend": backend,
        "training_sha256": training_sha256,
        "model": model,
        "suffix": suffix,
        "epochs": epochs,
        "seed": seed,
    }
    if validation_sha256:
        parts["validation_sha256"] = validation_sha256
    if hyperparameters:
        parts["hyperparameters"] = dict(hyperparameters)
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


#: Where a job record stands. ``uploading_*``/``creating_job`` are written *before* the remote
#: call, so a record left in one of them means the call may or may not have happened.
Step = Literal["new", "uploading_training", "uploading_validation", "creating_job", "created"]


@dataclass(frozen=True, slots=True)
class TrackedJob:
    """A job as the :class:`JobManager` persists it (one JSON file per job key)."""

    key: str
    backend: str
    model: str
    suffix: str
    epochs: int | str
    seed: int | None
    purpose: str | None
    training_path: str
    training_sha256: str
    training_file_id: str | None = None
    validation_path: str | None = None
    validation_sha256: str | None = None
    validation_file_id: str | None = None
    step: Step = "new"
    job_id: str | None = None
    status: JobStatus | None = None
    attempts: tuple[str, ...] = ()
    seen_events: tuple[str, ...] = ()
    usage_recorded: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)

    @property
    def fine_tuned_model(self) -> str | None:
        """The resulting model id once the job has succeeded."""
        return self.status.fine_tuned_model if self.status else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the on-disk format)."""
        record = {**to_record(self), "format": 1}
        if not self.hyperparameters:  # added later: written only when set, old records unchanged
            del record["hyperparameters"]
        return record

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrackedJob:
        """Inverse of :meth:`to_dict`."""
        return from_record(cls, data)


#: Event ids remembered per job to de-duplicate what ``follow`` streams; older ones fall out
#: of the backend's most-recent page anyway.
_MAX_SEEN_EVENTS = 1000


class JobManager:
    """Starts fine-tuning jobs idempotently and follows them to the end.

    State lives in ``store_dir`` as one JSON file per job key, written atomically before and
    after each remote step: calling :meth:`start` again with the same inputs — after a crash,
    a Ctrl-C or from another process — resumes the existing job: an upload that succeeded is
    not repeated and no second job is created. ``sleep``/``clock`` are injectable so tests
    run instantly.
    """

    def __init__(
        self,
        backend: FineTuneBackend,
        store_dir: str | Path,
        *,
        meter: Meter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        poll_interval: float = 5.0,
        max_poll_interval: float = 60.0,
        backoff: float = 2.0,
        max_transient_errors: int = 5,
    ):
        self.backend = backend
        self.store_dir = Path(store_dir)
        self.meter = meter
        self.sleep = sleep
        self.clock = clock
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.backoff = backoff
        self.max_transient_errors = max_transient_errors

    # -- persistence ---------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        return self.store_dir / f"{key}.json"

    def _save(self, job: TrackedJob) -> TrackedJob:
        job = replace(job, updated_at=time.time())
        atomic_write_json(self._path(job.key), job.to_dict())
        return job

    def _load(self, key: str) -> TrackedJob | None:
        path = self._path(key)
        if not path.exists():
            return None
        try:
            return TrackedJob.from_dict(read_json(path))
        except (ValueError, KeyError, TypeError) as exc:
            raise FineTuneError(
                f"job state file {path} is corrupt ({exc}); inspect it, then delete it to start "
                "over (check the provider's dashboard for a job it may have created)"
            ) from exc

    def list_jobs(self) -> list[TrackedJob]:
        """Every job this manager's store knows, oldest first."""
        if not self.store_dir.is_dir():
            return []
        jobs = []
        for path in sorted(self.store_dir.glob("*.json")):
            job = self._load(path.stem)
            if job is not None:
                jobs.append(job)
        return sorted(jobs, key=lambda j: j.created_at)

    def get(self, job_id: str) -> TrackedJob:
        """The stored record of ``job_id`` (or of a job key)."""
        for job in self.list_jobs():
            if job.job_id == job_id or job.key == job_id or job_id in job.attempts:
                return job
        raise FineTuneError(
            f"no job {job_id!r} in {self.store_dir}; `ragft finetune list` shows known jobs"
        )

    def _find(self, job_id: str) -> TrackedJob | None:
        try:
            return self.get(job_id)
        except FineTuneError:
            return None

    # -- starting ------------------------------------------------------------------------
    def start(
        self,
        training_file: str | Path,
        *,
        model: str,
        suffix: str,
        validation_file: str | Path | None = None,
        epochs: int | Literal["auto"] = "auto",
        seed: int | None = None,
        purpose: str | None = None,
        validate: bool = True,
        hyperparameters: Mapping[str, Any] | None = None,
    ) -> TrackedJob:
        """Start (or resume) the job defined by these inputs and return its record.

        Order of work, each step recorded on disk before and after it happens: check the base
        model (retired models fail here, before any upload) and the data; upload the training
        and validation files unless already uploaded; create the job unless a job with this
        key exists — when a previous run crashed *while* creating, the backend is first asked
        for a job tagged with this key. A previous attempt that failed or was cancelled is kept
        in ``attempts`` and a new job is created from the already uploaded files.
        ``hyperparameters`` are passed to the backend beside ``n_epochs`` (e.g. the local
        router's ``{"l2": 1e-4}``).
        """
        training_path = Path(training_file)
        if not training_path.is_file():
            raise FineTuneError(f"training file {training_path} not found")
        validation_path = Path(validation_file) if validation_file else None
        if validation_path is not None and not validation_path.is_file():
            raise FineTuneError(f"validation file {validation_path} not found")
        if not suffix or len(suffix) > 64:
            raise FineTuneError("suffix must be 1-64 characters (it becomes part of the model id)")
        train_sha = file_sha256(training_path)
        val_sha = file_sha256(validation_path) if validation_path else None
        key = job_key(
            backend=self.backend.name,
            training_sha256=train_sha,
            model=model,
            suffix=suffix,
            epochs=epochs,
            seed=seed,
            validation_sha256=val_sha,
            hyperparameters=hyperparameters,
        )
        # The lock stops two processes from racing to create the same job.
        with locked(self._path(key)):
            job = self._load(key)
            if job is not None and job.job_id and job.status is not None:
                if job.status.status not in ("failed", "cancelled"):
                    return job  # running or done: follow it, never create a second one
                job = replace(
                    job,
                    attempts=job.attempts + (job.job_id,),
                    job_id=None,
                    status=None,
                    step="new",
                    seen_events=(),
                    usage_recorded=False,
                )
            if job is None:
                now = time.time()
                job = TrackedJob(
                    key=key,
                    backend=self.backend.name,
                    model=model,
                    suffix=suffix,
                    epochs=epochs,
                    seed=seed,
                    purpose=purpose,
                    training_path=str(training_path.resolve()),
                    training_sha256=train_sha,
                    validation_path=str(validation_path.resolve()) if validation_path else None,
                    validation_sha256=val_sha,
                    created_at=now,
                    hyperparameters=dict(hyperparameters or {}),
                )
            self.backend.check_model(model)
            if job.purpose is None:
                try:
                    rows = read_jsonl(training_path)
                except TrainingDataError:
                    if validate:  # the full line-by-line report beats the first parse error
                        validate_file(training_path, model=model, raise_on_error=True)
                    raise
                job = replace(job, purpose=detect_purpose(rows))
            if validate and job.purpose != "adapter":
                validate_file(training_path, model=model, raise_on_error=True)
                if validation_path is not None:
                    validate_file(validation_path, model=model, min_examples=1,
                                  raise_on_error=True)
            job = self._save(job)
            job = self._ensure_uploaded(job, training_path, validation_path)
            return self._ensure_created(job)

    def _ensure_uploaded(
        self, job: TrackedJob, training: Path, validation: Path | None
    ) -> TrackedJob:
        if job.training_file_id is None:
            job = self._save(replace(job, step="uploading_training"))
            uploaded = self.backend.upload_file(training)
            job = self._save(replace(job, training_file_id=uploaded.id))
        if validation is not None and job.validation_file_id is None:
            job = self._save(replace(job, step="uploading_validation"))
            uploaded = self.backend.upload_file(validation)
            job = self._save(replace(job, validation_file_id=uploaded.id))
        return job

    def _ensure_created(self, job: TrackedJob) -> TrackedJob:
        metadata = {"ragft_key": job.key, "ragft_suffix": job.suffix}
        if job.purpose:
            metadata["ragft_purpose"] = job.purpose
        if job.step == "creating_job":
            # A previous run crashed between asking for the job and recording its id: the
            # job may exist. Adopt it rather than paying twice.
            for found in self.backend.find_jobs({"ragft_key": job.key}):
                if found.id not in job.attempts:
                    return self._save(
                        replace(job, job_id=found.id, status=found, step="created")
                    )
        job = self._save(replace(job, step="creating_job"))
        try:
            status = self.backend.create_job(
                model=job.model,
                training_file=str(job.training_file_id),
                validation_file=job.validation_file_id,
                suffix=job.suffix,
                seed=job.seed,
                hyperparameters={**job.hyperparameters, "n_epochs": job.epochs},
                metadata=metadata,
            )
        except FineTuneBackendUnavailable:
            raise  # outcome unknown (timeout, 5xx): keep "creating_job" so a retry looks first
        except FineTuneError:
            # A definite refusal (403, 400): no job exists, nothing to look for next time.
            self._save(replace(job, step="new"))
            raise
        return self._save(replace(job, job_id=status.id, status=status, step="created"))

    # -- following -----------------------------------------------------------------------
    def _record(self, job_id: str) -> TrackedJob:
        job = self._find(job_id)
        if job is not None:
            return job
        # A job started elsewhere (the dashboard, another tool): track it from here on.
        status = self.backend.retrieve_job(job_id)
        key = "job-" + hashlib.sha256(f"{self.backend.name}:{job_id}".encode()).hexdigest()[:32]
        now = time.time()
        return self._save(
            TrackedJob(
                key=key,
                backend=self.backend.name,
                model=status.model,
                suffix=str(status.metadata.get("ragft_suffix", "")),
                epochs=status.hyperparameters.get("n_epochs", "auto"),
                seed=None,
                purpose=status.metadata.get("ragft_purpose"),
                training_path="",
                training_sha256="",
                training_file_id=status.training_file,
                step="created",
                job_id=job_id,
                status=status,
                created_at=now,
            )
        )

    def _record_usage(self, job: TrackedJob) -> TrackedJob:
        status = job.status
        if self.meter is None or job.usage_recorded or status is None or not status.trained_tokens:
            return job
        # A crash between recording and saving `usage_recorded` must not bill the job twice
        # on resume: the ledger already holding this job's training record settles it.
        ledger = self.meter.ledger
        already = ledger is not None and any(
            r.purpose == "fine-tune" and r.tags.get("job") == job.job_id for r in ledger.read()
        )
        if not already:
            # The backend's model id (a dated snapshot, the local embedder) is what was trained
            # and what the price table resolves; the requested alias may not be priced.
            with self.meter.collect(job=str(job.job_id)):
                self.meter.record(
                    Usage(model=status.model or job.model, kind="training",
                          training_tokens=int(status.trained_tokens)),
                    latency_s=0.0,
                    purpose="fine-tune",
                )
        return self._save(replace(job, usage_recorded=True))

    def follow(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        on_event: Callable[[JobEvent], None] | None = None,
    ) -> JobStatus:
        """Poll until the job ends, streaming each new event once to ``on_event``.

        Polls back off exponentially (``poll_interval`` × ``backoff``ⁿ, capped at
        ``max_poll_interval``) while nothing happens and reset when events arrive. Up to
        ``max_transient_errors`` consecutive transient API failures are waited out; state is
        saved after every poll, so anything raised here can simply be followed again.
        On success the training tokens are recorded on the meter exactly once; a failed or
        cancelled job raises :class:`~ragft.errors.JobFailedError` with the job's error.
        """
        job = self._record(job_id)
        started = self.clock()
        interval = self.poll_interval
        failures = 0
        while True:
            try:
                status = self.backend.retrieve_job(job_id)
                events = self.backend.list_events(job_id)
                failures = 0
            except FineTuneBackendUnavailable:
                failures += 1
                if failures > self.max_transient_errors:
                    raise
                self._check_timeout(job_id, started, timeout)
                self.sleep(interval)
                interval = min(interval * self.backoff, self.max_poll_interval)
                continue
            seen = set(job.seen_events)
            new = [e for e in events if e.id not in seen]
            job = self._save(
                replace(
                    job,
                    status=status,
                    seen_events=(job.seen_events + tuple(e.id for e in new))[-_MAX_SEEN_EVENTS:],
                )
            )
            if on_event is not None:
                for event in new:
                    on_event(event)
            if status.terminal:
                if status.status == "succeeded":
                    self._record_usage(job)
                    return status
                raise JobFailedError(
                    f"fine-tuning job {job_id} {status.status}: "
                    f"{status.error or 'no error message from the backend'}"
                )
            self._check_timeout(job_id, started, timeout)
            interval = self.poll_interval if new else min(
                interval * self.backoff, self.max_poll_interval
            )
            self.sleep(interval)

    def _check_timeout(self, job_id: str, started: float, timeout: float | None) -> None:
        if timeout is not None and self.clock() - started >= timeout:
            raise FineTuneError(
                f"job {job_id} still running after {timeout:.0f}s; it continues remotely — "
                f"`ragft finetune status {job_id}` or follow it again later"
            )

    # -- other operations ----------------------------------------------------------------
    def status(self, job_id: str) -> JobStatus:
        """Fetch the job's current state and store it."""
        job = self._record(job_id)
        status = self.backend.retrieve_job(job_id)
        job = self._save(replace(job, status=status))
        if status.status == "succeeded":
            self._record_usage(job)
        return status

    def events(self, job_id: str, *, limit: int = 100) -> list[JobEvent]:
        """The job's most recent events, oldest first."""
        return self.backend.list_events(job_id, limit=limit)

    def checkpoints(self, job_id: str) -> list[Checkpoint]:
        """The job's checkpoints."""
        return self.backend.list_checkpoints(job_id)

    def cancel(self, job_id: str) -> JobStatus:
        """Cancel the job and store the resulting state."""
        job = self._record(job_id)
        status = self.backend.cancel_job(job_id)
        self._save(replace(job, status=status))
        return status
