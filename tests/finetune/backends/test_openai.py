"""OpenAI fine-tuning through the real SDK with HTTP mocked by respx: uploads, jobs, events,
checkpoints, cancel, failures, the 403 wind-down, retired models and crash-resume."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from ragft.errors import (
    FineTuneBackendUnavailable,
    FineTuneError,
    JobFailedError,
    ModelRetiredError,
    TrainingDataError,
    TrainingNotAvailableError,
)
from ragft.finetune.data import generator_examples, write_jsonl
from ragft.finetune.backends.openai import OpenAIFineTuneBackend
from ragft.finetune.jobs import JobEvent, JobManager, TrackedJob
from ragft.metering.meter import Meter
from ragft.metering.prices import PriceTable

TODAY = dt.date(2026, 11, 29)
JOB = "ftjob-abc123"
FILE = "file-abc123"
BASE = "gpt-4o-mini-2024-07-18"
FT_MODEL = f"ft:{BASE}:acme:support:9xYzAbC1"


def file_object(file_id: str = FILE, name: str = "train.jsonl") -> dict[str, Any]:
    return {"id": file_id, "object": "file", "bytes": 2048, "created_at": 1764400000,
            "filename": name, "purpose": "fine-tune", "status": "processed",
            "expires_at": None, "status_details": None}


def job_object(status: str = "validating_files", **changes: Any) -> dict[str, Any]:
    job = {
        "object": "fine_tuning.job", "id": JOB, "model": BASE, "created_at": 1764400100,
        "finished_at": None, "fine_tuned_model": None, "organization_id": "org-acme",
        "result_files": [], "status": status, "validation_file": None, "training_file": FILE,
        "hyperparameters": {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.8},
        "method": {"type": "supervised", "supervised": {"hyperparameters": {
            "n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.8}}},
        "trained_tokens": None, "error": None, "user_provided_suffix": "support", "seed": 42,
        "estimated_finish": None, "integrations": [], "metadata": {},
    }
    job.update(changes)
    return job


def event(n: int, message: str, kind: str = "message", data: Any = None) -> dict[str, Any]:
    return {"object": "fine_tuning.job.event", "id": f"ftevent-{n}", "created_at": 1764400100 + n,
            "level": "info", "message": message, "data": data or {}, "type": kind}


def events_page(*items: dict[str, Any]) -> dict[str, Any]:
    # The API lists newest first.
    return {"object": "list", "data": list(reversed(items)), "has_more": False}


SUCCEEDED = job_object("succeeded", fine_tuned_model=FT_MODEL, trained_tokens=30_000,
                       finished_at=1764403600)


@pytest.fixture
def train_file(tmp_path: Path) -> Path:
    pairs = [(f"How do I do task {i}?", f"Open the app and run task {i}.") for i in range(12)]
    return write_jsonl(generator_examples(pairs), tmp_path / "train.jsonl")


@pytest.fixture
def backend(client) -> OpenAIFineTuneBackend:  # type: ignore[no-untyped-def]
    return OpenAIFineTuneBackend(client, prices=PriceTable.load(), today=TODAY)


def manager(backend, tmp_path: Path, **kwargs: Any) -> JobManager:  # type: ignore[no-untyped-def]
    sleeps: list[float] = []
    m = JobManager(backend, tmp_path / "jobs", sleep=sleeps.append, poll_interval=1.0,
                   max_poll_interval=8.0, **kwargs)
    m.sleeps = sleeps  # type: ignore[attr-defined]
    return m


def route_start(api: respx.MockRouter, job: dict[str, Any] | None = None) -> tuple[Any, Any]:
    upload = api.post("/files").mock(return_value=httpx.Response(200, json=file_object()))
    create = api.post("/fine_tuning/jobs").mock(
        return_value=httpx.Response(200, json=job or job_object()))
    return upload, create


# --------------------------------------------------------------------------- start


def test_start_uploads_and_creates_supervised_job(api, backend, tmp_path, train_file) -> None:  # type: ignore[no-untyped-def]
    upload, create = route_start(api)
    job = manager(backend, tmp_path).start(train_file, model="gpt-4o-mini", suffix="support",
                                           epochs=3, seed=42)
    assert job.job_id == JOB and job.status is not None
    assert job.status.status == "validating_files" and job.training_file_id == FILE
    form = upload.calls.last.request.content
    assert b'name="purpose"' in form and b"fine-tune" in form and b'filename="train.jsonl"' in form
    body = json.loads(create.calls.last.request.content)
    assert body["model"] == "gpt-4o-mini" and body["training_file"] == FILE
    assert body["method"] == {"type": "supervised",
                              "supervised": {"hyperparameters": {"n_epochs": 3}}}
    assert "hyperparameters" not in body  # the deprecated top-level argument is not used
    assert body["suffix"] == "support" and body["seed"] == 42
    assert body["metadata"]["ragft_key"] == job.key and body["metadata"]["ragft_purpose"] == "generator"


def test_start_again_resumes_instead_of_creating(api, backend, tmp_path, train_file) -> None:  # type: ignore[no-untyped-def]
    upload, create = route_start(api)
    first = manager(backend, tmp_path).start(train_file, model="gpt-4o-mini", suffix="support")
    again = manager(backend, tmp_path).start(train_file, model="gpt-4o-mini", suffix="support")
    assert again.job_id == first.job_id
    assert (upload.call_count, create.call_count) == (1, 1)
    # A different suffix is a different job.
    manager(backend, tmp_path).start(train_file, model="gpt-4o-mini", suffix="other")
    assert create.call_count == 2


def test_validation_file_is_uploaded_too(api, backend, tmp_path, train_file) -> None:  # type: ignore[no-untyped-def]
    upload = api.post("/files").mock(side_effect=[
        httpx.Response(200, json=file_object()),
        httpx.Response(200, json=file_object("file-val", "val.jsonl")),
    ])
    create = api.post("/fine_tuning/jobs").mock(
        return_value=httpx.Response(200, json=job_object(validation_file="file-val")))
    val = write_jsonl(generator_examples([("Held-out question?", "Held-out answer.")]),
                      tmp_path / "val.jsonl")
    job = manager(backend, tmp_path).start(train_file, model="gpt-4o-mini", suffix="s",
                                           validation_file=val)
    assert upload.call_count == 2 and job.validation_file_id == "file-val"
    assert json.loads(create.calls.last.request.content)["validation_file"] == "file-val"


def test_invalid_training_data_is_refused_before_upload(api, backend, tmp_path, write_lines) -> None:  # type: ignore[no-untyped-def]
    upload, _ = route_start(api)
    path = write_lines(tmp_path / "bad.jsonl", [{"messages": [{"role": "user", "content": "x"}]}])
    with pytest.raises(TrainingDataError, match="assistant message missing"):
        manager(backend, tmp_path).start(path, model="gpt-4o-mini", suffix="s", purpose="generator")
    assert upload.call_count == 0


# --------------------------------------------------------------------------- provider limits


def test_403_training_not_available(api, backend, tmp_path, train_file) -> None:  # type: ignore[no-untyped-def]
    upload = api.post("/files").mock(return_value=httpx.Response(200, json=file_object()))
    api.post("/fine_tuning/jobs").mock(return_value=httpx.Response(403, json={"error": {
        "message": "Fine-tuning is not available for your organization.",
        "type": "invalid_request_error", "param": None, "code": "training_not_available"}}))
    m = manager(backend, tmp_path)
    with pytest.raises(TrainingNotAvailableError) as err:
        m.start(train_file, model="gpt-4o-mini", suffix="support")
    text = str(err.value)
    assert "not available for this account" in text and "training_not_available" in text
    assert "--backend local" in text and "AzureOpenAI" in text and "vLLM" in text
    # The upload is remembered: retrying later does not upload again.
    (record,) = m.list_jobs()
    assert record.training_file_id == FILE and record.job_id is None
    with pytest.raises(TrainingNotAvailableError):
        m.start(train_file, model="gpt-4o-mini", suffix="support")
    assert upload.call_count == 1


def test_retired_base_model_refused_before_any_upload(api, backend, tmp_path, train_file) -> None:  # type: ignore[no-untyped-def]
    upload, create = route_start(api)
    with pytest.raises(ModelRetiredError, match="gpt-4.1-nano.*shut down on 2026-10-23"):
        manager(backend, tmp_path).start(train_file, model="gpt-4.1-nano", suffix="s")
    assert (upload.call_count, create.call_count) == (0, 0)


def test_no_new_openai_jobs_from_2027_01_06(api, client, tmp_path, train_file) -> None:  # type: ignore[no-untyped-def]
    upload, create = route_start(api)
    late = OpenAIFineTuneBackend(client, today=lambda: dt.date(2027, 1, 6))
    with pytest.raises(TrainingNotAvailableError, match="stopped accepting new fine-tuning jobs"):
        manager(late, tmp_path).start(train_file, model="gpt-4o-mini", suffix="s")
    assert upload.call_count == 0
    # The day before, it is still allowed.
    early = OpenAIFineTuneBackend(client, today=dt.date(2027, 1, 5))
    manager(early, tmp_path).start(train_file, model="gpt-4o-mini", suffix="s")
    assert create.call_count == 1


def test_other_hosts_are_not_held_to_openai_dates(client) -> None:  # type: ignore[no-untyped-def]
    import openai

    azure_like = openai.OpenAI(api_key="k", base_url="https://my-vllm.internal/v1",
                               http_client=httpx.Client(), max_retries=0)
    b = OpenAIFineTuneBackend(azure_like, today=dt.date(2027, 2, 1))
    assert not b.enforce_openai_limits
    b.check_model("meta-llama/Llama-3.1-8B-Instruct")  # open-weights model: allowed
    with pytest.raises(ModelRetiredError):
        b.check_model("gpt-4o-mini")  # but a model past its shutdown is still refused


def test_other_api_errors_carry_the_api_message(api, backend, tmp_path, train_file) -> None:  # type: ignore[no-untyped-def]
    api.post("/files").mock(return_value=httpx.Response(200, json=file_object()))
    api.post("/fine_tuning/jobs").mock(return_value=httpx.Response(400, json={"error": {
        "message": "File file-abc123 has 3 examples; at least 10 are required.",
        "type": "invalid_request_error", "param": "training_file", "code": "invalid_file"}}))
    with pytest.raises(FineTuneError, match="HTTP 400: File file-abc123 has 3 examples") as err:
        manager(backend, tmp_path).start(train_file, model="gpt-4o-mini", suffix="s")
    assert not isinstance(err.value, FineTuneBackendUnavailable)


# --------------------------------------------------------------------------- follow


def test_follow_streams_events_once_backs_off_and_meters_once(api, backend, tmp_path, train_file) -> None:  # type: ignore[no-untyped-def]
    route_start(api)
    retrieve = api.get(f"/fine_tuning/jobs/{JOB}").mock(side_effect=[
        httpx.Response(200, json=job_object("queued")),
        httpx.Response(200, json=job_object("running")),
        httpx.Response(200, json=job_object("running")),
        httpx.Response(200, json=SUCCEEDED),
    ])
    e1 = event(1, "Validating training file: file-abc123")
    e2 = event(2, "Fine-tuning job started")
    e3 = event(3, "Step 1/36: training loss=2.91", "metrics", {"step": 1, "train_loss": 2.91})
    e4 = event(4, f"New fine-tuned model created: {FT_MODEL}")
    api.get(f"/fine_tuning/jobs/{JOB}/events").mock(side_effect=[
        httpx.Response(200, json=events_page(e1)),
        httpx.Response(200, json=events_page(e1, e2, e3)),
        httpx.Response(200, json=events_page(e1, e2, e3)),
        httpx.Response(200, json=events_page(e1, e2, e3, e4)),
    ])
    meter = Meter(PriceTable.load())
    m = manager(backend, tmp_path, meter=meter)
    job = m.start(train_file, model="gpt-4o-mini", suffix="support")
    seen: list[JobEvent] = []
    status = m.follow(job.job_id, on_event=seen.append)
    assert status.status == "succeeded" and status.fine_tuned_model == FT_MODEL
    assert [e.id for e in seen] == ["ftevent-1", "ftevent-2", "ftevent-3", "ftevent-4"]
    assert seen[2].type == "metrics" and seen[2].data["train_loss"] == 2.91
    # New events reset the interval to 1 s; a quiet poll doubles it.
    assert m.sleeps == [1.0, 1.0, 2.0]  # type: ignore[attr-defined]
    assert retrieve.call_count == 4
    (record,) = meter.records
    assert record.usage.kind == "training" and record.usage.training_tokens == 30_000
    assert record.usage.model == BASE  # the snapshot trained, priced as its base model
    assert record.cost_usd == pytest.approx(30_000 * 3.00 / 1e6)
    # Following or checking again never bills twice, even from a new manager (new process).
    api.get(f"/fine_tuning/jobs/{JOB}").mock(return_value=httpx.Response(200, json=SUCCEEDED))
    api.get(f"/fine_tuning/jobs/{JOB}/events").mock(
        return_value=httpx.Response(200, json=events_page(e1, e2, e3, e4)))
    again: list[JobEvent] = []
    manager(backend, tmp_path, meter=meter).follow(JOB, on_event=again.append)
    m.status(JOB)
    assert len(meter.records) == 1 and again == []
    assert m.get(JOB).usage_recorded


def test_follow_caps_the_backoff(api, backend, tmp_path, train_file) -> None:  # type: ignore[no-untyped-def]
    route_start(api)
    api.get(f"/fine_tuning/jobs/{JOB}").mock(
        side_effect=[httpx.Response(200, json=job_object("running"))] * 6
        + [httpx.Response(200, json=SUCCEEDED)])
    api.get(f"/fine_tuning/jobs/{JOB}/events").mock(
        return_value=httpx.Response(200, json=events_page()))
    m = manager(backend, tmp_path)
    m.follow(m.start(train_file, model="gpt-4o-mini", suffix="s").job_id)
    assert m.sleeps == [2.0, 4.0, 8.0, 8.0, 8.0, 8.0]  # type: ignore[attr-defined]


def test_failed_job_raises_with_its_error(api, backend, tmp_path, train_file) -> None:  # type: ignore[no-untyped-def]
    route_start(api)
    api.get(f"/fine_tuning/jobs/{JOB}").mock(return_value=httpx.Response(200, json=job_object(
        "failed", finished_at=1764400500, error={
            "code": "invalid_training_file", "param": "training_file",
            "message": "The job failed due to an invalid training file. Line 4: missing "
                       "assistant message."})))
    api.get(f"/fine_tuning/jobs/{JOB}/events").mock(return_value=httpx.Response(
        200, json=events_page(event(1, "Training file has errors"))))
    meter = Meter(PriceTable.load())
    m = manager(backend, tmp_path, meter=meter)
    job = m.start(train_file, model="gpt-4o-mini", suffix="s")
    with pytest.raises(JobFailedError, match="ftjob-abc123 failed: The job failed due to an "
                                            "invalid training file. Line 4"):
        m.follow(job.job_id)
    assert meter.records == []
    assert m.get(JOB).status.status == "failed"  # type: ignore[union-attr]


def test_failed_job_can_be_started_again_without_reupload(api, backend, tmp_path, train_file) -> None:  # type: ignore[no-untyped-def]
    upload, create = route_start(api)
    api.get(f"/fine_tuning/jobs/{JOB}").mock(
        return_value=httpx.Response(200, json=job_object("failed", error={
            "code": "server_error", "message": "Internal error", "param": None})))
    m = manager(backend, tmp_path)
    m.status(m.start(train_file, model="gpt-4o-mini", suffix="s").job_id)
    create.mock(return_value=httpx.Response(200, json=job_object(id="ftjob-retry")))
    retry = m.start(train_file, model="gpt-4o-mini", suffix="s")
    assert retry.job_id == "ftjob-retry" and retry.attempts == (JOB,)
    assert (upload.call_count, create.call_count) == (1, 2)


def test_follow_times_out_with_clear_message(api, backend, tmp_path, train_file) -> None:  # type: ignore[no-untyped-def]
    route_start(api)
    api.get(f"/fine_tuning/jobs/{JOB}").mock(
        return_value=httpx.Response(200, json=job_object("running")))
    api.get(f"/fine_tuning/jobs/{JOB}/events").mock(
        return_value=httpx.Response(200, json=events_page()))
    now = [0.0]
    m = JobManager(backend, tmp_path / "jobs", sleep=lambda s: now.__setitem__(0, now[0] + s),
                   clock=lambda: now[0], poll_interval=10)
    job = m.start(train_file, model="gpt-4o-mini", suffix="s")
    with pytest.raises(FineTuneError, match="still running after 60s"):
        m.follow(job.job_id, timeout=60)


# --------------------------------------------------------------------------- crashes


def test_500_mid_follow_loses_nothing_and_resume_creates_no_second_job(  # type: ignore[no-untyped-def]
    api, backend, tmp_path, train_file
) -> None:
    upload, create = route_start(api)
    api.get(f"/fine_tuning/jobs/{JOB}").mock(side_effect=[
        httpx.Response(200, json=job_object("running")),
        *[httpx.Response(500, json={"error": {"message": "The server had an error",
                                              "type": "server_error", "code": None}})] * 3,
    ])
    api.get(f"/fine_tuning/jobs/{JOB}/events").mock(return_value=httpx.Response(
        200, json=events_page(event(1, "Fine-tuning job started"))))
    m = manager(backend, tmp_path, max_transient_errors=2)
    job = m.start(train_file, model="gpt-4o-mini", suffix="support")
    with pytest.raises(FineTuneBackendUnavailable, match="HTTP 500"):
        m.follow(job.job_id)
    saved = json.loads((tmp_path / "jobs" / f"{job.key}.json").read_text())
    assert saved["job_id"] == JOB and saved["status"]["status"] == "running"
    assert saved["seen_events"] == ["ftevent-1"]

    # A new process: same inputs -> the same job, no upload, no create; follow to the end.
    api.get(f"/fine_tuning/jobs/{JOB}").mock(return_value=httpx.Response(200, json=SUCCEEDED))
    api.get(f"/fine_tuning/jobs/{JOB}/events").mock(return_value=httpx.Response(200, json=events_page(
        event(1, "Fine-tuning job started"), event(2, "The job has successfully completed"))))
    meter = Meter(PriceTable.load())
    fresh = manager(backend, tmp_path, meter=meter)
    resumed = fresh.start(train_file, model="gpt-4o-mini", suffix="support")
    assert resumed.job_id == JOB
    seen: list[JobEvent] = []
    assert fresh.follow(JOB, on_event=seen.append).status == "succeeded"
    assert [e.id for e in seen] == ["ftevent-2"]  # already-streamed events are not repeated
    assert (upload.call_count, create.call_count) == (1, 1)
    assert meter.records[0].usage.training_tokens == 30_000


def test_a_single_transient_error_is_waited_out(api, backend, tmp_path, train_file) -> None:  # type: ignore[no-untyped-def]
    route_start(api)
    api.get(f"/fine_tuning/jobs/{JOB}").mock(side_effect=[
        httpx.Response(503, json={"error": {"message": "Service unavailable", "type": "x"}}),
        httpx.Response(200, json=SUCCEEDED),
    ])
    api.get(f"/fine_tuning/jobs/{JOB}/events").mock(return_value=httpx.Response(
        200, json=events_page()))
    m = manager(backend, tmp_path)
    assert m.follow(m.start(train_file, model="gpt-4o-mini", suffix="s").job_id).status == \
        "succeeded"


def test_crash_after_create_adopts_the_job_it_created(api, backend, tmp_path, train_file) -> None:  # type: ignore[no-untyped-def]
    upload, create = route_start(api)
    original = backend.create_job

    def create_then_die(**kwargs: Any):  # type: ignore[no-untyped-def]
        original(**kwargs)  # the job exists at OpenAI ...
        raise KeyboardInterrupt  # ... but the process dies before recording its id

    backend.create_job = create_then_die  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        manager(backend, tmp_path).start(train_file, model="gpt-4o-mini", suffix="support")
    (record,) = manager(backend, tmp_path).list_jobs()
    assert record.step == "creating_job" and record.job_id is None
    key = record.key

    backend.create_job = original  # type: ignore[method-assign]
    listing = api.get("/fine_tuning/jobs").mock(return_value=httpx.Response(200, json={
        "object": "list", "has_more": False,
        "data": [job_object("running", metadata={"ragft_key": key, "ragft_suffix": "support"})],
    }))
    resumed = manager(backend, tmp_path).start(train_file, model="gpt-4o-mini", suffix="support")
    assert resumed.job_id == JOB and resumed.step == "created"
    assert (upload.call_count, create.call_count, listing.call_count) == (1, 1, 1)
    assert listing.calls.last.request.url.params["metadata[ragft_key]"] == key


def test_state_file_is_written_atomically_and_reloads(api, backend, tmp_path, train_file) -> None:  # type: ignore[no-untyped-def]
    route_start(api)
    job = manager(backend, tmp_path).start(train_file, model="gpt-4o-mini", suffix="s")
    files = sorted(p.name for p in (tmp_path / "jobs").iterdir())
    assert files == [f"{job.key}.json", f"{job.key}.json.lock"]  # no temp files left
    reloaded = TrackedJob.from_dict(json.loads((tmp_path / "jobs" / files[0]).read_text()))
    assert reloaded == job


# --------------------------------------------------------------------------- other endpoints


def test_events_checkpoints_and_cancel(api, backend, tmp_path, train_file) -> None:  # type: ignore[no-untyped-def]
    route_start(api)
    api.get(f"/fine_tuning/jobs/{JOB}/events").mock(return_value=httpx.Response(200, json=events_page(
        event(1, "Validating training file"), event(2, "Step 5/36: training loss=1.20"))))
    api.get(f"/fine_tuning/jobs/{JOB}/checkpoints").mock(return_value=httpx.Response(200, json={
        "object": "list", "has_more": False, "first_id": "ftckpt_b", "last_id": "ftckpt_a",
        "data": [
            {"object": "fine_tuning.job.checkpoint", "id": "ftckpt_b", "created_at": 1764403000,
             "fine_tuned_model_checkpoint": f"{FT_MODEL}:ckpt-step-24",
             "fine_tuning_job_id": JOB, "step_number": 24,
             "metrics": {"step": 24, "train_loss": 0.41, "valid_loss": 0.52,
                         "full_valid_loss": 0.55, "full_valid_mean_token_accuracy": 0.83}},
            {"object": "fine_tuning.job.checkpoint", "id": "ftckpt_a", "created_at": 1764402000,
             "fine_tuned_model_checkpoint": f"{FT_MODEL}:ckpt-step-12",
             "fine_tuning_job_id": JOB, "step_number": 12,
             "metrics": {"step": 12, "train_loss": 0.9}},
        ]}))
    cancel = api.post(f"/fine_tuning/jobs/{JOB}/cancel").mock(
        return_value=httpx.Response(200, json=job_object("cancelled")))
    m = manager(backend, tmp_path)
    m.start(train_file, model="gpt-4o-mini", suffix="s")
    assert [e.message for e in m.events(JOB)] == ["Validating training file",
                                                   "Step 5/36: training loss=1.20"]
    ckpts = m.checkpoints(JOB)
    assert [c.step for c in ckpts] == [12, 24]
    assert ckpts[1].model.endswith("ckpt-step-24")
    assert ckpts[1].metrics["full_valid_mean_token_accuracy"] == 0.83
    assert m.cancel(JOB).status == "cancelled" and cancel.call_count == 1
    assert m.get(JOB).status.status == "cancelled"  # type: ignore[union-attr]
    api.get(f"/fine_tuning/jobs/{JOB}").mock(
        return_value=httpx.Response(200, json=job_object("cancelled")))
    with pytest.raises(JobFailedError, match="cancelled"):
        m.follow(JOB)


def test_following_a_job_started_elsewhere(api, backend, tmp_path) -> None:  # type: ignore[no-untyped-def]
    api.get(f"/fine_tuning/jobs/{JOB}").mock(return_value=httpx.Response(200, json=SUCCEEDED))
    api.get(f"/fine_tuning/jobs/{JOB}/events").mock(return_value=httpx.Response(
        200, json=events_page()))
    m = manager(backend, tmp_path)
    assert m.follow(JOB).fine_tuned_model == FT_MODEL
    assert m.list_jobs()[0].job_id == JOB


def test_unknown_job_and_connection_errors(api, backend, tmp_path) -> None:  # type: ignore[no-untyped-def]
    api.get("/fine_tuning/jobs/ftjob-nope").mock(return_value=httpx.Response(404, json={
        "error": {"message": "No such fine-tuning job: ftjob-nope", "type": "invalid_request_error",
                  "code": "fine_tune_not_found"}}))
    with pytest.raises(FineTuneError, match="HTTP 404: No such fine-tuning job"):
        backend.retrieve_job("ftjob-nope")
    api.get("/fine_tuning/jobs/ftjob-x").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(FineTuneBackendUnavailable, match="could not reach"):
        backend.retrieve_job("ftjob-x")
    with pytest.raises(FineTuneError, match="no job 'ftjob-zzz'"):
        manager(backend, tmp_path).get("ftjob-zzz")


def test_a_rejected_key_gets_the_same_hint_as_chat_calls(api, backend, tmp_path, train_file) -> None:  # type: ignore[no-untyped-def]
    from ragft.models.openai_errors import MISSING_KEY_HINT

    echoed = "sk-proj-echoedKEY1234567890"
    api.post("/files").mock(return_value=httpx.Response(401, json={"error": {
        "message": f"Incorrect API key provided: {echoed}.", "type": "invalid_request_error",
        "code": "invalid_api_key"}}))
    with pytest.raises(FineTuneError, match="rejected the API key") as err:
        manager(backend, tmp_path).start(train_file, model="gpt-4o-mini", suffix="s")
    assert MISSING_KEY_HINT in str(err.value)
    # The same reading masks a key the server echoed, here as for chat calls.
    assert echoed not in str(err.value) and echoed not in str(err.value.__cause__)
    assert not isinstance(err.value, FineTuneBackendUnavailable)
