"""Fine-tuning through the official ``openai`` SDK: api.openai.com, ``openai.AzureOpenAI``, or
an OpenAI-compatible server (such as vLLM serving LoRA adapters).

OpenAI's self-serve fine-tuning is being wound down: new accounts get HTTP 403
``training_not_available``, new jobs stop on :data:`OPENAI_NEW_JOBS_END`, and base models retire
on the price table's ``shutdown`` dates. Each becomes a specific error that says what to do.
SDK failures are read by :func:`ragft.models.openai_errors.read_api_error`, like every other
OpenAI call's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ragft.errors import (
    FineTuneBackendUnavailable,
    FineTuneError,
    ModelRetiredError,
    TrainingNotAvailableError,
)
from ragft.finetune.data import check_base_model
from ragft.finetune.jobs import Checkpoint, JobEvent, JobStatus, UploadedFile
from ragft.metering.prices import PriceTable
from ragft.models.openai import sdk_field
from ragft.models.openai_errors import read_api_error

__all__ = ["ALTERNATIVES_HINT", "OPENAI_NEW_JOBS_END", "OpenAIFineTuneBackend"]

#: OpenAI's announced last day for *creating* fine-tuning jobs is the day before this date.
OPENAI_NEW_JOBS_END = dt.date(2027, 1, 6)

#: What to do when OpenAI will not fine-tune; the backend protocol makes each pluggable.
ALTERNATIVES_HINT = (
    "Alternatives: train offline with `ragft finetune start FILE --backend local`; use Azure "
    "OpenAI fine-tuning by passing an `openai.AzureOpenAI` client to OpenAIFineTuneBackend; or "
    "fine-tune an open-weights model with LoRA and serve the adapters from an OpenAI-compatible "
    "server such as vLLM (`--enable-lora`), pointing ragft's base_url at it."
)


def _today(today: dt.date | Callable[[], dt.date] | None) -> dt.date:
    if today is None:
        return dt.date.today()
    return today() if callable(today) else today


def _plain(obj: Any) -> Any:
    # SDK models -> plain JSON-able values (pydantic v2 ``model_dump``), dicts pass through.
    if obj is None:
        return None
    if hasattr(obj, "model_dump"):
        return obj.model_dump(exclude_none=True)
    return obj


class OpenAIFineTuneBackend:
    """Fine-tuning through the official ``openai`` SDK.

    ``client`` is an ``openai.OpenAI`` (or ``AzureOpenAI``, or one pointed at an
    OpenAI-compatible server). For api.openai.com, ragft applies OpenAI's announced limits
    itself before spending anything: base models past their price-table ``shutdown`` date
    raise :class:`~ragft.errors.ModelRetiredError`, and from :data:`OPENAI_NEW_JOBS_END` new
    jobs raise :class:`~ragft.errors.TrainingNotAvailableError`. Other hosts set their own
    rules, so only the retirement check of models the price table knows applies there
    (``enforce_openai_limits`` overrides the detection).
    """

    name = "openai"

    def __init__(
        self,
        client: Any,
        *,
        prices: PriceTable | None = None,
        today: dt.date | Callable[[], dt.date] | None = None,
        enforce_openai_limits: bool | None = None,
    ):
        self.client = client
        self.prices = prices if prices is not None else PriceTable.load()
        self._today = today
        if enforce_openai_limits is None:
            host = urlparse(str(getattr(client, "base_url", "") or "")).hostname or ""
            enforce_openai_limits = host in ("", "api.openai.com")
        self.enforce_openai_limits = enforce_openai_limits

    # -- errors -------------------------------------------------------------------------
    @staticmethod
    def _translate(exc: Exception, action: str) -> FineTuneError:
        # The SDK failure is read by the one reader all OpenAI calls share (same kinds, same
        # hints); only what is specific to fine-tuning is added here.
        failure = read_api_error(exc)
        status, message = failure.status, failure.message
        if failure.code == "training_not_available":
            return TrainingNotAvailableError(
                f"OpenAI refused to {action}: fine-tuning is not available for this account "
                f"(HTTP {status} training_not_available: {message}). OpenAI is winding down "
                f"self-serve fine-tuning. {ALTERNATIVES_HINT}"
            )
        if failure.kind == "auth":
            return FineTuneError(
                f"OpenAI rejected the API key while trying to {action} ({message}); "
                f"{failure.hint}"
            )
        if failure.transient and status is None:
            return FineTuneBackendUnavailable(
                f"could not reach the OpenAI API to {action} ({message}); {failure.hint}"
            )
        if failure.transient:
            return FineTuneBackendUnavailable(
                f"OpenAI failed to {action} (HTTP {status}: {message}); nothing was lost (the "
                f"job state is saved): {failure.hint}"
            )
        if status is None:
            return FineTuneError(f"OpenAI SDK error while trying to {action}: {message}")
        return FineTuneError(f"OpenAI could not {action} (HTTP {status}: {message})")

    def _call(self, action: str, fn: Callable[[], Any]) -> Any:
        import openai

        try:
            return fn()
        except openai.OpenAIError as exc:
            raise self._translate(exc, action) from exc

    # -- conversions ---------------------------------------------------------------------
    @staticmethod
    def _status(job: Any) -> JobStatus:
        error = sdk_field(job, "error")
        message = sdk_field(error, "message")
        code = sdk_field(error, "code")
        error_text = None
        if message:
            error_text = f"{message} ({code})" if code else str(message)
        method = sdk_field(job, "method")
        hyper = _plain(sdk_field(sdk_field(method, "supervised"), "hyperparameters")) or _plain(
            sdk_field(job, "hyperparameters")
        ) or {}
        return JobStatus(
            id=str(sdk_field(job, "id")),
            status=sdk_field(job, "status"),
            model=str(sdk_field(job, "model")),
            fine_tuned_model=sdk_field(job, "fine_tuned_model"),
            trained_tokens=sdk_field(job, "trained_tokens"),
            error=error_text,
            created_at=sdk_field(job, "created_at"),
            finished_at=sdk_field(job, "finished_at"),
            estimated_finish=sdk_field(job, "estimated_finish"),
            training_file=sdk_field(job, "training_file"),
            validation_file=sdk_field(job, "validation_file"),
            hyperparameters=dict(hyper),
            metadata=dict(sdk_field(job, "metadata") or {}),
        )

    # -- protocol ------------------------------------------------------------------------
    def check_model(self, model: str) -> None:
        """Refuse retired base models and, on api.openai.com, jobs after the end date."""
        today = _today(self._today)
        if self.enforce_openai_limits:
            if today >= OPENAI_NEW_JOBS_END:
                raise TrainingNotAvailableError(
                    f"OpenAI stopped accepting new fine-tuning jobs on "
                    f"{OPENAI_NEW_JOBS_END.isoformat()} (today is {today.isoformat()}); "
                    f"existing fine-tuned models keep working until their base model's "
                    f"shutdown. {ALTERNATIVES_HINT}"
                )
            check_base_model(model, self.prices, today=today)
        else:
            date = self.prices.shutdown_date(model)
            if date is not None and date <= today:
                raise ModelRetiredError(
                    f"base model {model!r} was shut down on {date.isoformat()}; pick a current one"
                )

    def upload_file(self, path: Path) -> UploadedFile:
        """``files.create(purpose="fine-tune")``."""
        path = Path(path)
        data = path.read_bytes()
        obj = self._call(
            f"upload {path.name}",
            lambda: self.client.files.create(file=(path.name, data), purpose="fine-tune"),
        )
        return UploadedFile(
            id=str(obj.id),
            filename=str(sdk_field(obj, "filename", path.name)),
            bytes=int(sdk_field(obj, "bytes", len(data)) or len(data)),
            purpose=str(sdk_field(obj, "purpose", "fine-tune")),
        )

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
        """``fine_tuning.jobs.create`` with ``method={"type": "supervised", ...}``.

        Hyperparameters go under ``method.supervised`` — the top-level ``hyperparameters``
        argument is deprecated.
        """
        self.check_model(model)
        kwargs: dict[str, Any] = {
            "model": model,
            "training_file": training_file,
            "method": {
                "type": "supervised",
                "supervised": {"hyperparameters": dict(hyperparameters or {})},
            },
        }
        if validation_file:
            kwargs["validation_file"] = validation_file
        if suffix:
            kwargs["suffix"] = suffix
        if seed is not None:
            kwargs["seed"] = seed
        if metadata:
            kwargs["metadata"] = dict(metadata)
        job = self._call(
            f"create a fine-tuning job on {model}",
            lambda: self.client.fine_tuning.jobs.create(**kwargs),
        )
        return self._status(job)

    def find_jobs(self, metadata: Mapping[str, str]) -> list[JobStatus]:
        """``fine_tuning.jobs.list(metadata=...)``, filtered again locally to be sure."""
        page = self._call(
            "list fine-tuning jobs",
            lambda: self.client.fine_tuning.jobs.list(metadata=dict(metadata), limit=20),
        )
        found = [self._status(j) for j in page.data]
        return [
            s for s in found if all(s.metadata.get(k) == v for k, v in metadata.items())
        ]

    def retrieve_job(self, job_id: str) -> JobStatus:
        """``fine_tuning.jobs.retrieve``."""
        job = self._call(
            f"read job {job_id}", lambda: self.client.fine_tuning.jobs.retrieve(job_id)
        )
        return self._status(job)

    def list_events(self, job_id: str, *, limit: int = 100) -> list[JobEvent]:
        """``fine_tuning.jobs.list_events``; the API returns newest first, this oldest first."""
        page = self._call(
            f"list events of job {job_id}",
            lambda: self.client.fine_tuning.jobs.list_events(job_id, limit=limit),
        )
        events = [
            JobEvent(
                id=str(e.id),
                created_at=float(e.created_at),
                message=str(e.message),
                level=str(sdk_field(e, "level", "info")),
                type=str(sdk_field(e, "type", "message") or "message"),
                data=dict(_plain(sdk_field(e, "data")) or {}),
            )
            for e in page.data
        ]
        events.reverse()
        return events

    def list_checkpoints(self, job_id: str) -> list[Checkpoint]:
        """``fine_tuning.jobs.checkpoints.list``, ordered by step."""
        page = self._call(
            f"list checkpoints of job {job_id}",
            lambda: self.client.fine_tuning.jobs.checkpoints.list(job_id),
        )
        out = [
            Checkpoint(
                id=str(c.id),
                step=int(c.step_number),
                model=str(c.fine_tuned_model_checkpoint),
                metrics={k: float(v) for k, v in (_plain(c.metrics) or {}).items()
                         if isinstance(v, (int, float))},
                created_at=float(c.created_at),
            )
            for c in page.data
        ]
        return sorted(out, key=lambda c: c.step)

    def cancel_job(self, job_id: str) -> JobStatus:
        """``fine_tuning.jobs.cancel``."""
        job = self._call(
            f"cancel job {job_id}", lambda: self.client.fine_tuning.jobs.cancel(job_id)
        )
        return self._status(job)
