"""The offline backend: real training behind the same job protocol and states as OpenAI
(the learners it fits are tested in ``tests/finetune/learners``)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ragft.errors import FineTuneError, JobFailedError
from ragft.finetune.data import (
    generator_examples,
    read_jsonl,
    rewriter_examples,
    router_examples,
    split_examples,
    write_jsonl,
)
from ragft.finetune.jobs import FineTuneBackend, JobEvent, JobManager
from ragft.finetune.backends.local import LocalFineTuneBackend
from ragft.finetune.registry import evaluate_model
from ragft.metering.meter import Meter
from ragft.models.local_ft import AdaptedEmbedder, artifact_dir, load_local_model

CORPUS = Path(__file__).resolve().parents[3] / "corpus" / "finetune"
LABELS = ["factual", "procedural", "creative", "out_of_scope"]


@pytest.fixture
def router_file(tmp_path: Path, routes) -> Path:  # type: ignore[no-untyped-def]
    return write_jsonl(router_examples(routes, ["creative", "procedural", "factual"]),
                       tmp_path / "routes.jsonl")


def test_protocol_is_implemented(tmp_path: Path, hashing) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(LocalFineTuneBackend(tmp_path, hashing), FineTuneBackend)


def test_router_job_goes_through_states_and_events(tmp_path: Path, hashing, router_file) -> None:  # type: ignore[no-untyped-def]
    live: list[JobEvent] = []
    backend = LocalFineTuneBackend(tmp_path / "models", hashing, on_event=live.append)
    meter = Meter()
    manager = JobManager(backend, tmp_path / "jobs", meter=meter, sleep=lambda s: None)
    job = manager.start(router_file, model="local", suffix="demo", hyperparameters={"l2": 1e-3})
    followed: list[JobEvent] = []
    status = manager.follow(job.job_id, on_event=followed.append)
    assert status.status == "succeeded"
    assert status.fine_tuned_model == f"local-ft:router:demo:{job.job_id}"
    messages = [e.message for e in followed]
    assert messages == [e.message for e in live]  # the log is complete and in order
    order = ["Created fine-tuning job", "Validating training file", "Files validated",
             "Training router on 30 examples", "Step 1/1: l2 0.001, train loss",
             "New fine-tuned model created",
             "The job has successfully completed"]
    positions = [next(i for i, m in enumerate(messages) if m.startswith(o)) for o in order]
    assert positions == sorted(positions)
    step = next(e for e in followed if e.type == "metrics")
    assert {"step", "l2", "train_loss", "valid_accuracy"} <= set(step.data)
    assert status.metrics["valid_accuracy"] >= 0.5
    assert status.trained_tokens and status.trained_tokens > 0
    # Local training is metered (so token totals compare) but free.
    (record,) = meter.records
    assert record.usage.kind == "training" and record.cost_usd == 0.0
    assert artifact_dir(tmp_path / "models", status.fine_tuned_model).is_dir()
    assert [c.model for c in backend.list_checkpoints(job.job_id)] == [status.fine_tuned_model]


def test_trained_router_classifies(tmp_path: Path, hashing, router_file) -> None:  # type: ignore[no-untyped-def]
    backend = LocalFineTuneBackend(tmp_path, hashing)
    status = backend.create_job(model="local", training_file=backend.upload_file(router_file).id,
                                suffix="r")
    model = load_local_model(status.fine_tuned_model, tmp_path, hashing)  # type: ignore[arg-type]
    reply = model.complete([{"role": "user", "content": "write a poem about the ocean"}])
    assert reply.text == "creative" and reply.score is not None and reply.score > 0.5
    metrics = evaluate_model(model, read_jsonl(router_file))
    assert metrics["accuracy"] >= 0.9


def test_background_training_is_followed_by_polling(tmp_path: Path, hashing, router_file) -> None:  # type: ignore[no-untyped-def]
    backend = LocalFineTuneBackend(tmp_path / "m", hashing, background=True)
    manager = JobManager(backend, tmp_path / "jobs", sleep=time.sleep, poll_interval=0.01,
                         max_poll_interval=0.05)
    job = manager.start(router_file, model="local", suffix="bg")
    assert job.status is not None and job.status.status in {"validating_files", "queued",
                                                             "running", "succeeded"}
    assert manager.follow(job.job_id, timeout=60).status == "succeeded"


def test_cancel_stops_a_running_job(tmp_path: Path, hashing, router_file) -> None:  # type: ignore[no-untyped-def]
    first_step, go = threading.Event(), threading.Event()

    def hold(event: JobEvent) -> None:  # runs in the training thread
        if event.type == "metrics" and not first_step.is_set():
            first_step.set()
            go.wait(10)

    backend = LocalFineTuneBackend(tmp_path, hashing, background=True, on_event=hold)
    status = backend.create_job(model="local", training_file=backend.upload_file(router_file).id,
                                suffix="c")
    assert first_step.wait(10)
    assert backend.cancel_job(status.id).status == "running"  # requested, not yet stopped
    go.set()
    manager = JobManager(backend, tmp_path / "jobs", sleep=time.sleep, poll_interval=0.01)
    with pytest.raises(JobFailedError, match="cancelled"):
        manager.follow(status.id, timeout=30)
    assert backend.list_events(status.id)[-1].message == "Job cancelled"
    assert not any(tmp_path.glob("local-ft__*"))  # no artifact from a cancelled job


def test_invalid_file_fails_the_job_with_its_problems(tmp_path: Path, hashing, write_lines) -> None:  # type: ignore[no-untyped-def]
    bad = write_lines(tmp_path / "bad.jsonl", [
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": "user", "content": "q2"}]},
    ])
    backend = LocalFineTuneBackend(tmp_path, hashing)
    status = backend.create_job(model="local", training_file=backend.upload_file(bad).id,
                                metadata={"ragft_purpose": "generator"})
    assert status.status == "failed"
    assert "line 2: assistant message missing" in (status.error or "")
    assert backend.list_events(status.id)[-1].level == "error"


def test_dead_training_process_is_reported_failed(tmp_path: Path, hashing, router_file) -> None:  # type: ignore[no-untyped-def]
    backend = LocalFineTuneBackend(tmp_path, hashing)
    status = backend.create_job(model="local", training_file=backend.upload_file(router_file).id)
    path = tmp_path / "jobs" / f"{status.id}.json"
    record = json.loads(path.read_text())
    record["status"].update(status="running", fine_tuned_model=None)
    record["pid"] = 2**22 + 12345  # no such process
    path.write_text(json.dumps(record))
    again = LocalFineTuneBackend(tmp_path, hashing).retrieve_job(status.id)
    assert again.status == "failed" and "exited before finishing" in (again.error or "")


def test_local_backend_refuses_openai_models_and_bad_ids(tmp_path: Path, hashing) -> None:  # type: ignore[no-untyped-def]
    backend = LocalFineTuneBackend(tmp_path, hashing)
    with pytest.raises(FineTuneError, match="--model local"):
        backend.check_model("gpt-4o-mini")
    with pytest.raises(FineTuneError, match="not a local fine-tuning job id"):
        backend.retrieve_job("../etc/passwd")
    with pytest.raises(FineTuneError, match="no uploaded file"):
        backend.create_job(model="local", training_file="file-local-missing")


def test_find_jobs_by_metadata(tmp_path: Path, hashing, router_file) -> None:  # type: ignore[no-untyped-def]
    backend = LocalFineTuneBackend(tmp_path, hashing)
    fid = backend.upload_file(router_file).id
    a = backend.create_job(model="local", training_file=fid, metadata={"ragft_key": "a"})
    backend.create_job(model="local", training_file=fid, metadata={"ragft_key": "b"})
    assert [s.id for s in backend.find_jobs({"ragft_key": "a"})] == [a.id]


def test_adapter_job_writes_an_adapter(tmp_path: Path, hashing, write_lines) -> None:  # type: ignore[no-untyped-def]
    rows = [{"query": f"price of {w}", "passage": f"The {w} costs {i} dollars per night."}
            for i, w in enumerate(("hotel", "meal", "taxi", "flight", "train", "desk", "chair",
                                   "lamp", "phone", "cable", "mouse", "screen"))]
    path = write_lines(tmp_path / "pairs.jsonl", rows)
    backend = LocalFineTuneBackend(tmp_path, hashing)
    status = backend.create_job(model="local", training_file=backend.upload_file(path).id,
                                suffix="ad", hyperparameters={"n_epochs": 3})
    assert status.status == "succeeded" and status.fine_tuned_model.startswith("local-ft:adapter:")  # type: ignore[union-attr]
    adapted = AdaptedEmbedder(hashing, artifact_dir(tmp_path, status.fine_tuned_model))  # type: ignore[arg-type]
    doc = adapted.embed(["price of hotel"], kind="document").vectors
    assert np.allclose(doc, hashing.embed(["price of hotel"]).vectors)


# --------------------------------------------------------------------------- on the sample corpus


def _split_file(tmp_path: Path, name: str, examples: list) -> tuple[Path, Path, list]:  # type: ignore[type-arg]
    parts = split_examples(examples, validation=0.1, test=0.2, seed=0)
    return (write_jsonl(parts.train, tmp_path / f"{name}.train.jsonl"),
            write_jsonl(parts.validation, tmp_path / f"{name}.val.jsonl"), parts.test)


@pytest.mark.skipif(not (CORPUS / "routes.jsonl").exists(), reason="corpus routes not written")
def test_router_on_the_sample_corpus(tmp_path: Path, minilm) -> None:  # type: ignore[no-untyped-def]
    rows = [json.loads(line) for line in (CORPUS / "routes.jsonl").read_text().splitlines()
            if line.strip()]
    train, val, test = _split_file(tmp_path, "routes", router_examples(rows, LABELS))
    backend = LocalFineTuneBackend(tmp_path / "models", minilm)
    manager = JobManager(backend, tmp_path / "jobs", sleep=lambda s: None)
    job = manager.start(train, model="local", suffix="corpus", validation_file=val)
    status = manager.follow(job.job_id)
    model = load_local_model(status.fine_tuned_model, tmp_path / "models", minilm)  # type: ignore[arg-type]
    metrics = evaluate_model(model, test, labels=LABELS)
    # 109 labelled queries, ~20% held out; measured 0.86 at the time of writing.
    assert metrics["accuracy"] >= 0.7
    assert metrics["valid_label_rate"] == 1.0


@pytest.mark.skipif(not (CORPUS / "qa_train.jsonl").exists(), reason="corpus QA not written")
def test_generator_and_rewriter_on_the_sample_corpus(tmp_path: Path, minilm) -> None:  # type: ignore[no-untyped-def]
    qa = [json.loads(x) for x in (CORPUS / "qa_train.jsonl").read_text().splitlines() if x.strip()]
    backend = LocalFineTuneBackend(tmp_path / "models", minilm)
    manager = JobManager(backend, tmp_path / "jobs", sleep=lambda s: None)
    train, val, test = _split_file(tmp_path, "qa", generator_examples(qa))
    gen = manager.follow(manager.start(train, model="local", suffix="qa",
                                       validation_file=val).job_id)
    model = load_local_model(gen.fine_tuned_model, tmp_path / "models", minilm)  # type: ignore[arg-type]
    # A paraphrase of a trained question is answered with the trained answer ...
    trained = read_jsonl(train)[0]["messages"]
    reply = model.complete([{"role": "user", "content": trained[1]["content"].upper() + " please"}])
    assert reply.text == trained[2]["content"] and reply.score > 0.5  # type: ignore[operator]
    # ... an unrelated question is not.
    far = model.complete([{"role": "user", "content": "Who won the 1966 football World Cup?"}])
    assert far.score < 0.2 and "I don't know" in far.text  # type: ignore[operator]

    rw = [json.loads(x) for x in (CORPUS / "rewrites.jsonl").read_text().splitlines() if x.strip()]
    train, val, test = _split_file(tmp_path, "rw", rewriter_examples(rw))
    status = manager.follow(manager.start(train, model="local", suffix="rw",
                                          validation_file=val).job_id)
    assert status.metrics["loo_f1" if "loo_f1" in status.metrics else "valid_f1"] >= \
        status.metrics["identity_f1"]


def test_training_usage_is_metered_once_even_after_a_crash_before_the_state_save(  # type: ignore[no-untyped-def]
    tmp_path: Path, hashing, router_file, monkeypatch
) -> None:
    from ragft.metering.meter import Ledger

    backend = LocalFineTuneBackend(tmp_path / "models", hashing)
    ledger = Ledger(tmp_path / "ledger.jsonl")
    manager = JobManager(backend, tmp_path / "jobs", meter=Meter(ledger=ledger), sleep=lambda s: None)
    job = manager.start(router_file, model="local", suffix="crash")
    real_save = manager._save
    calls = {"n": 0}

    def crash_after_recording(tracked):  # type: ignore[no-untyped-def]
        if tracked.usage_recorded:
            calls["n"] += 1
            raise KeyboardInterrupt("killed between recording and saving")
        return real_save(tracked)

    monkeypatch.setattr(manager, "_save", crash_after_recording)
    with pytest.raises(KeyboardInterrupt):
        manager.follow(job.job_id)
    assert calls["n"] == 1 and len(ledger.read()) == 1
    # A new process resumes: the job state says "not recorded", the ledger says it was.
    resumed = JobManager(backend, tmp_path / "jobs", meter=Meter(ledger=ledger), sleep=lambda s: None)
    resumed.follow(job.job_id)
    records = ledger.read()
    assert len(records) == 1 and records[0].tags["job"] == job.job_id
    assert resumed.get(job.job_id).usage_recorded


def test_router_job_with_epochs_fails_saying_why(tmp_path: Path, hashing, router_file) -> None:  # type: ignore[no-untyped-def]
    backend = LocalFineTuneBackend(tmp_path, hashing)
    status = backend.create_job(model="local", training_file=backend.upload_file(router_file).id,
                                hyperparameters={"n_epochs": 3})
    assert status.status == "failed"
    assert "n_epochs=3 has no meaning" in str(status.error)


def test_router_l2_reaches_the_trainer_and_keys_the_job(tmp_path: Path, hashing, router_file) -> None:  # type: ignore[no-untyped-def]
    backend = LocalFineTuneBackend(tmp_path / "models", hashing)
    manager = JobManager(backend, tmp_path / "jobs", sleep=lambda s: None)
    strong = manager.follow(manager.start(router_file, model="local", suffix="r",
                                          hyperparameters={"l2": 0.5}).job_id)
    weak = manager.follow(manager.start(router_file, model="local", suffix="r",
                                        hyperparameters={"l2": 1e-5}).job_id)
    assert strong.id != weak.id  # another l2 is another job, not a resume
    assert strong.metrics["l2"] == 0.5 and weak.metrics["l2"] == 1e-5
    assert strong.hyperparameters == {"l2": 0.5, "n_epochs": "auto"}
