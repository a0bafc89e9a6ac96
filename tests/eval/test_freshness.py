"""Update frequency, measured: RAG (real index), the local fine-tuning backend (real trainer),
and a past OpenAI job's timings (real SDK, HTTP mocked by respx)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import respx

from ragft.eval.freshness import (
    FreshnessReport,
    make_fact,
    measure_finetune_update,
    measure_rag_update,
    parse_update_frequency,
    timings_from_job,
)
from ragft.finetune.backends.openai import OpenAIFineTuneBackend
from ragft.finetune.jobs import JobManager
from ragft.finetune.backends.local import LocalFineTuneBackend
from ragft.finetune.registry import ModelRegistry
from ragft.metering.meter import Meter
from ragft.metering.prices import PriceTable
from ragft.models.local import ExtractiveReader, HashingEmbedder
from ragft.models.local_ft import load_local_model
from ragft.rag.knowledge import KnowledgeBase
from ragft.strategies import RAG

API = "https://api.openai.com/v1"


def test_rag_answers_the_added_and_then_changed_fact_after_an_incremental_update(tmp_path: Path) -> None:
    corpus = tmp_path / "docs"
    (corpus / "policies").mkdir(parents=True)
    (corpus / "policies" / "travel.md").write_text("# Travel\n\nThe meal per diem is $75 per day.\n")
    meter = Meter()
    kb = KnowledgeBase.open(tmp_path / "index", meter.embedder(HashingEmbedder(256)), chunk_tokens=64,
                            chunk_overlap=8)
    kb.sync(corpus, progress=False)
    rag = RAG(kb.retriever(mode="bm25", top_k=3), ExtractiveReader(), meter=meter)
    fact = make_fact(seed=3)
    before = rag.answer(fact.question)
    assert fact.old not in before.text  # the corpus does not know it yet

    measured = measure_rag_update(corpus, lambda: kb.sync(corpus, progress=False), rag, fact, meter=meter)
    assert [(m.approach, m.change, m.correct) for m in measured] == [("rag", "add", True), ("rag", "change", True)]
    assert [s.name for s in measured[0].steps] == ["index update", "answer"]
    assert "added 1" in measured[0].steps[0].detail and "changed 1" in measured[1].steps[0].detail
    assert fact.new in measured[1].answer and fact.old not in measured[1].answer
    assert all(m.seconds > 0 and m.cost_usd == 0.0 for m in measured)


def test_local_fine_tuning_update_is_prepared_trained_gated_and_promoted(tmp_path: Path) -> None:
    meter = Meter()
    embedder = HashingEmbedder(256)
    models = tmp_path / "models"
    manager = JobManager(LocalFineTuneBackend(models, embedder), tmp_path / "jobs", meter=meter,
                         poll_interval=0.01)
    registry = ModelRegistry(tmp_path / "registry.json")
    training = [{"question": f"How do I reset the {w} password?", "answer": f"Open settings, then {w}, then reset."}
                for w in ("email", "laptop", "vpn", "okta", "slack", "wifi", "jira", "github", "zoom", "badge")]
    fact = make_fact(seed=1)
    measured = measure_finetune_update(
        manager, registry, lambda model_id: load_local_model(model_id, models, embedder), fact,
        meter=meter, workdir=tmp_path, base_model="local", training=training,
    )
    assert [(m.approach, m.change) for m in measured] == [("finetune:local", "add"), ("finetune:local", "change")]
    for m, value in zip(measured, (fact.old, fact.new), strict=True):
        assert [s.name for s in m.steps] == ["data preparation", "training", "evaluation gate", "promotion"]
        assert m.correct is True and value in m.answer, m
        assert m.steps[-1].detail.startswith("promoted generator@")
        assert any("by its own timestamps" in n for n in m.notes)
    # Both versions went through the registry; the changed one serves.
    assert registry.resolve("registry:generator") == registry.get("generator", 2).model_id


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=API, assert_all_called=False, assert_all_mocked=True) as router:
        yield router


def test_a_past_openai_job_is_timed_from_its_timestamps(api: respx.MockRouter, tmp_path: Path) -> None:
    job = {
        "object": "fine_tuning.job", "id": "ftjob-abc", "model": "gpt-4.1-mini-2025-04-14", "created_at": 1764400000,
        "finished_at": 1764407200, "fine_tuned_model": "ft:gpt-4.1-mini-2025-04-14:acme::x1",
        "organization_id": "org", "result_files": [], "status": "succeeded", "validation_file": None,
        "training_file": "file-1", "hyperparameters": {"n_epochs": 3}, "trained_tokens": 30_000, "error": None,
        "user_provided_suffix": None, "seed": 1, "estimated_finish": None, "integrations": [], "metadata": {},
    }
    events = [("Validating training file", 1764400010), ("Fine-tuning job started", 1764401800),
              ("Step 1/100: training loss=1.2", 1764401900), ("The job has successfully completed", 1764407200)]
    api.get("/fine_tuning/jobs/ftjob-abc").mock(return_value=httpx.Response(200, json=job))
    api.get("/fine_tuning/jobs/ftjob-abc/events").mock(return_value=httpx.Response(200, json={
        "object": "list", "has_more": False, "data": [
            {"object": "fine_tuning.job.event", "id": f"e{i}", "created_at": t, "level": "info", "message": m,
             "data": {}, "type": "message"} for i, (m, t) in reversed(list(enumerate(events)))]}))
    with openai.OpenAI(api_key="sk-test", base_url=API, http_client=httpx.Client(), max_retries=0) as client:
        backend = OpenAIFineTuneBackend(client, prices=PriceTable.load())
        m = timings_from_job(JobManager(backend, tmp_path / "jobs"), "ftjob-abc")
    assert m.approach == "finetune:openai" and m.source == "job timestamps" and m.correct is None
    assert [(s.name, s.seconds) for s in m.steps] == [("queued and validated", 1800.0), ("training", 5400.0)]
    assert m.seconds == 7200.0 and "30,000 trained tokens" in m.steps[1].detail


def test_report_round_trips_and_summarises(tmp_path: Path) -> None:
    from ragft.eval.freshness import Step, UpdateMeasurement

    report = FreshnessReport([UpdateMeasurement("rag", "add", (Step("index update", 0.2), Step("answer", 0.1)),
                                                True, "$100 per trip")], make_fact(), simulated_prices="gpt-4.1-mini")
    again = FreshnessReport.from_json(report.to_json(tmp_path / "f.json"))
    assert again.to_dict() == report.to_dict()
    assert again.per_update() == {"rag": {"seconds": pytest.approx(0.3), "cost_usd": 0.0}}
    text = again.summary()
    assert "SIMULATED PRICES" in text and "index update 0.20 s, answer 0.10 s" in text
    assert parse_update_frequency("weekly") == ("weekly", pytest.approx(30 / 7))
