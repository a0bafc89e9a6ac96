"""The on-disk record of one LoRA job, shared by the backend and the training process.

``jobs/<job id>/job.json`` holds the job's :class:`~ragft.finetune.jobs.JobStatus`, its events,
the training process id and whether cancellation was requested. Both sides change it only
under the file's lock and rewrite it atomically, so a reader always sees a whole record and a
cancel request is never lost to a concurrent progress update.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ragft.errors import FineTuneError
from ragft.finetune.jobs import JobEvent, JobStatus
from ragft.finetune.processes import pid_alive
from ragft.storage import atomic_write_json, locked, read_json

__all__ = ["JOB_FILE", "WORKER_LOG", "JobRecord", "process_alive"]

JOB_FILE = "job.json"
WORKER_LOG = "worker.log"
#: What the training process's command line contains (guards against a recycled pid).
WORKER_MODULE = "ragft.finetune.lora.worker"


def process_alive(pid: int) -> bool:
    """True when ``pid`` runs a LoRA training process (not a zombie, not a recycled pid)."""
    if pid <= 0:
        return False
    proc = Path(f"/proc/{pid}")
    if Path("/proc/self").exists():
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return False
        state = stat.rsplit(")", 1)[-1].split()[0]
        return state not in ("Z", "X") and WORKER_MODULE in cmdline
    return pid_alive(pid)  # no /proc (macOS): existence is all that can be checked


class JobRecord:
    """Read and update ``<job dir>/job.json``."""

    def __init__(self, job_dir: str | Path, *, clock: Any = time.time):
        self.dir = Path(job_dir)
        self.path = self.dir / JOB_FILE
        self.clock = clock

    @property
    def job_id(self) -> str:
        """The job id (the directory's name)."""
        return self.dir.name

    def read(self) -> dict[str, Any]:
        """The whole record."""
        try:
            return read_json(self.path)
        except FileNotFoundError:
            raise FineTuneError(f"no LoRA job {self.job_id} in {self.dir.parent}") from None
        except ValueError as exc:
            raise FineTuneError(f"LoRA job file {self.path} is corrupt: {exc}") from exc

    def status(self) -> JobStatus:
        """The stored status."""
        return JobStatus.from_dict(self.read()["status"])

    def create(self, record: Mapping[str, Any]) -> None:
        """Write a new record."""
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path, dict(record))

    def update(self, *, message: str | None = None, level: str = "info",
               event_type: str = "message", data: Mapping[str, Any] | None = None,
               fields: Mapping[str, Any] | None = None, **status: Any) -> JobEvent | None:
        """Merge ``status`` into the job's status and ``fields`` into the record, and append
        an event when ``message`` is given. Returns that event."""
        with locked(self.path):
            record = self.read()
            record["status"].update(status)
            record.update(fields or {})
            event = None
            if message is not None:
                short = self.job_id.rsplit("-", 1)[-1]
                event = JobEvent(id=f"ftevent-{short}-{len(record['events']) + 1:05d}",
                                 created_at=self.clock(), message=message, level=level,
                                 type=event_type, data=dict(data or {}))
                record["events"].append(event.to_dict())
            atomic_write_json(self.path, record)
        return event

    def events(self) -> list[JobEvent]:
        """Every event, oldest first."""
        return [JobEvent.from_dict(e) for e in self.read()["events"]]

    def cancel_requested(self) -> bool:
        """Whether someone asked the job to stop."""
        return bool(self.read().get("cancel_requested"))
