"""The LoRA backend with real training processes on a tiny Llama: the whole job, bad data,
cancel, and a job whose process is killed resuming from its checkpoint."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

pytest.importorskip("peft")

from ragft.errors import FineTuneError, JobFailedError, TrainingDataError  # noqa: E402
from ragft.finetune.backends.lora import LoraFineTuneBackend, lora_adapter_dir  # noqa: E402
from ragft.finetune.jobs import JobManager  # noqa: E402
from ragft.finetune.lora.artifacts import read_artifact  # noqa: E402
from ragft.metering.meter import Ledger, Meter  # noqa: E402

from ..lora.conftest import qa_examples, tiny_llama, write_jsonl  # noqa: E402,F401

HP = {"rank": 8, "learning_rate": 1e-2, "batch_size": 4, "dropout": 0.0, "max_length": 64}
EPOCHS = 6
STEPS_PER_EPOCH = 3  # 12 examples, batch 4


def _wait_for(predicate, timeout: float = 120.0, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(every)


def _manager(backend: LoraFineTuneBackend, tmp_path: Path, meter: Meter | None = None):
    return JobManager(backend, tmp_path / "jobs", meter=meter, poll_interval=0.2,
                      max_poll_interval=0.5)


def test_bad_data_is_refused_with_line_numbers_and_nothing_trains(
        tiny_llama: Path, tmp_path: Path) -> None:
    good = qa_examples(3)
    rows = [
        good[0],
        {"messages": [{"role": "user", "content": "Hello?"}]},                      # no answer
        {"messages": [{"role": "user", "content": "long " * 200},
                      {"role": "assistant", "content": "ok"}]},                     # too long
        {"messages": [{"role": "bot", "content": "Hi"},
                      {"role": "assistant", "content": "ok"}]},                     # bad role
        {"messages": [{"role": "tool", "content": "42"},
                      {"role": "assistant", "content": "ok"}]},                     # no template
        good[1],
    ]
    backend = LoraFineTuneBackend(tmp_path / "models")
    uploaded = backend.upload_file(write_jsonl(tmp_path / "bad.jsonl", rows))
    with pytest.raises(TrainingDataError) as info:
        backend.create_job(model=str(tiny_llama), training_file=uploaded.id, hyperparameters=HP)
    message = str(info.value)
    assert "nothing was trained" in message
    assert "line 2: assistant message missing" in message
    assert "line 3: example has" in message and "over max_length 64" in message
    assert "line 4: message 1 has role 'bot'" in message
    assert "line 5: role(s) ['tool']" in message
    assert {p.line for p in info.value.problems} == {2, 3, 4, 5}
    assert not (tmp_path / "models" / "lora" / "jobs").exists()

    with pytest.raises(FineTuneError, match="rank: Input should be less than or equal to 512"):
        backend.create_job(model=str(tiny_llama), training_file=uploaded.id,
                           hyperparameters={"rank": 1024})
    with pytest.raises(FineTuneError, match="not found"):
        backend.check_model(str(tmp_path / "nowhere"))


@pytest.mark.slow
def test_killed_job_resumes_from_its_checkpoint_then_succeeds(
        tiny_llama: Path, tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", qa_examples(12))
    valid = write_jsonl(tmp_path / "valid.jsonl", qa_examples(12)[:3])
    backend = LoraFineTuneBackend(tmp_path / "models")
    meter = Meter(ledger=Ledger(tmp_path / "ledger.jsonl"))
    manager = _manager(backend, tmp_path, meter)
    start = dict(model=str(tiny_llama), suffix="badges", validation_file=valid, epochs=EPOCHS,
                 seed=3)
    job = manager.start(train, **start, hyperparameters=HP)
    first = job.job_id
    checkpoints = tmp_path / "models" / "lora" / "jobs" / first / "work" / "checkpoints"
    pid = json.loads((checkpoints.parents[1] / "job.json").read_text())["pid"]
    # Freeze the process the moment its first checkpoint is complete, then kill it: the
    # remaining epochs (steps, validation, checkpoints) take far longer than one poll.
    _wait_for(lambda: (checkpoints / "epoch-0001" / "checkpoint.json").is_file(), every=0.005)
    os.kill(pid, signal.SIGSTOP)
    os.kill(pid, signal.SIGKILL)
    backend.wait(first, timeout=30)

    died = manager.status(first)
    assert died.status == "failed"
    assert "resume from the checkpoint after epoch" in str(died.error)

    job = manager.start(train, **start, hyperparameters=HP)  # same job again: a new attempt
    assert job.attempts == (first,) and job.job_id != first
    status = manager.follow(job.job_id, timeout=300)
    assert status.status == "succeeded"
    events = manager.events(job.job_id, limit=10_000)
    messages = [e.message for e in events]
    resumed = [m for m in messages if m.startswith(f"Resuming from job {first}")]
    assert resumed and any(m.startswith("Resuming from the checkpoint of epoch") for m in messages)
    resumed_epoch = next(e.data["epoch"] for e in events if e.message in resumed)
    steps = [e.data["step"] for e in events if e.type == "metrics" and "train_loss" in e.data]
    assert resumed_epoch < EPOCHS
    assert steps[0] == resumed_epoch * STEPS_PER_EPOCH + 1  # no step repeated or skipped
    assert steps == list(range(steps[0], EPOCHS * STEPS_PER_EPOCH + 1))
    assert sum(1 for e in events if "valid_loss" in e.data) == EPOCHS - resumed_epoch
    assert len(manager.checkpoints(job.job_id)) == EPOCHS

    # The adapter: published with its manifest, base referenced by path, never copied.
    assert status.fine_tuned_model == f"lora:badges:{job.job_id}"
    artifact = read_artifact(lora_adapter_dir(tmp_path / "models", status.fine_tuned_model))
    assert artifact.base.directory == tiny_llama.resolve()
    assert not any(p.name.startswith("model") for p in artifact.directory.iterdir())
    assert artifact.hyperparameters["rank"] == 8 and artifact.hyperparameters["seed"] == 3
    from ragft.storage import file_sha256

    assert artifact.training_file_sha256 == file_sha256(train)
    # Metered once: the tokens of all epochs, under the free local base id, with time.
    assert status.trained_tokens and status.metrics["compute_seconds"] > 0
    records = [r for r in meter.ledger.read() if r.purpose == "fine-tune"]
    assert len(records) == 1 and records[0].usage.training_tokens == status.trained_tokens
    assert records[0].usage.model == "local/" + tiny_llama.name and records[0].cost_usd == 0.0


@pytest.mark.slow
def test_cancel_stops_the_training_process_between_steps(tiny_llama: Path, tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", qa_examples(12))
    backend = LoraFineTuneBackend(tmp_path / "models")
    manager = _manager(backend, tmp_path)
    job = manager.start(train, model=str(tiny_llama), suffix="c", epochs=100,
                        hyperparameters=HP)
    _wait_for(lambda: any(e.type == "metrics" for e in manager.events(job.job_id)))
    manager.cancel(job.job_id)
    with pytest.raises(JobFailedError, match="cancelled"):
        manager.follow(job.job_id, timeout=120)
    backend.wait(job.job_id, timeout=30)
    events = manager.events(job.job_id, limit=10_000)
    assert events[-1].message == "Job cancelled"
    assert max(e.data.get("step", 0) for e in events) < 100 * STEPS_PER_EPOCH
    assert not (tmp_path / "models" / "lora" / "adapters").exists()
