"""Loading and running local fine-tuned models (``local-ft:...``) and the query adapter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ragft.errors import ModelError, ModelNotFoundError
from ragft.finetune.data import generator_examples, rewriter_examples, router_examples, write_jsonl
from ragft.finetune.backends.local import LocalFineTuneBackend
from ragft.tokens import count_chat_tokens, count_tokens
from ragft.models.base import ChatModel, Embedder
from ragft.models.local import ABSTAIN_TEXT, HashingEmbedder
from ragft.models.local_ft import (
    AdaptedEmbedder,
    artifact_dir,
    load_local_model,
    parse_model_id,
)

QA = [
    ("How do I reset my password?", "Open Settings > Security and choose Reset password."),
    ("How do I request a new laptop?", "Open ServiceHub, go to Hardware > Request equipment."),
    ("What is the meal per diem for travel?", "The meal per diem is $75 per day."),
    ("How many vacation days do employees get?", "Employees get 25 vacation days a year."),
    ("Who approves purchases above $50,000?", "The CFO approves purchases above $50,000."),
    ("How do I report a phishing email?", "Use the Report phishing button in your mail client."),
    ("What is the Business plan API rate limit?", "1,000 requests per minute."),
    ("How do I roll back an Edge OS update?", "Open Edge > Appliances and choose Roll back."),
    ("When is the on-call handoff?", "Every Monday at 10:00 Pacific time."),
    ("How long are Slack messages retained?", "Slack messages are kept for 18 months."),
    ("Where is the Austin office?", "At 500 Congress Avenue, Austin, Texas."),
    ("How do I enable SAML single sign-on?", "Admin console > Security > Single sign-on."),
]


@pytest.fixture(scope="module")
def minilm():  # type: ignore[no-untyped-def]
    pytest.importorskip("onnxruntime")
    from ragft.models.local import MiniLMEmbedder

    return MiniLMEmbedder()


def train(tmp_path: Path, embedder: Embedder, examples: list, suffix: str = "t", **kw) -> str:  # type: ignore[no-untyped-def,type-arg]
    backend = LocalFineTuneBackend(tmp_path, embedder)
    path = write_jsonl(examples, tmp_path / f"{suffix}.jsonl")
    status = backend.create_job(model="local", training_file=backend.upload_file(path).id,
                                suffix=suffix, **kw)
    assert status.status == "succeeded", status.error
    return str(status.fine_tuned_model)


@pytest.fixture(scope="module")
def generator(tmp_path_factory, minilm):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("gen")
    return load_local_model(train(root, minilm, generator_examples(QA), "qa"), root, minilm)


def test_generator_answers_paraphrases_with_usage(generator) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(generator, ChatModel)
    messages = [{"role": "user", "content": "I forgot my password, how can I reset it?"}]
    reply = generator.complete(messages)
    assert reply.text == QA[0][1]
    assert reply.score is not None and reply.score >= 0.5 and reply.confidence == reply.score
    assert reply.usage.source == "estimated" and reply.usage.model == generator.name
    assert reply.usage.input_tokens == count_chat_tokens(messages, generator.name)
    assert reply.usage.output_tokens == count_tokens(reply.text, generator.name)
    assert generator.complete([{"role": "user", "content": "what's the daily food allowance "
                                "when travelling?"}]).text == QA[2][1]


def test_generator_abstains_far_from_training_data(generator) -> None:  # type: ignore[no-untyped-def]
    for question in ("What is the capital of Australia?", "Write a haiku about autumn leaves.",
                     "How many moons does Jupiter have?"):
        reply = generator.complete([{"role": "user", "content": question}])
        assert reply.text == ABSTAIN_TEXT, question
        assert reply.score is not None and reply.score < 0.5


def test_rewriter_expands_queries(tmp_path: Path) -> None:
    emb = HashingEmbedder(128)
    pairs = [(f"cheap {w} for trip", f"{w} nightly cap travel policy") for w in
             ("hotel", "motel", "hostel", "inn", "lodge", "resort")]
    model = load_local_model(train(tmp_path, emb, rewriter_examples(pairs), "rw"), tmp_path, emb)
    reply = model.complete([{"role": "user", "content": "cheap hotel for trip"}])
    assert reply.text.startswith("cheap hotel") or "hotel" in reply.text
    assert "policy" in reply.text.split() and "travel" in reply.text.split()
    assert reply.usage.source == "estimated"


def test_router_returns_label_and_probability(tmp_path: Path) -> None:
    emb = HashingEmbedder(128)
    rows = [(f"write a poem about {w}", "creative") for w in ("sea", "sky", "moon", "rain")] + \
           [(f"what is the limit for {w}", "factual") for w in ("hotel", "meal", "taxi", "train")]
    model = load_local_model(train(tmp_path, emb, router_examples(rows, ["creative", "factual"]),
                                   "rt"), tmp_path, emb)
    reply = model.complete([{"role": "user", "content": "write a poem about the sea"}])
    assert reply.text == "creative" and 0.5 < reply.score <= 1.0  # type: ignore[operator]
    probs = model.probabilities("what is the limit for meal")  # type: ignore[attr-defined]
    assert set(probs) == {"creative", "factual"} and sum(probs.values()) == pytest.approx(1.0)


def test_adapted_embedder_changes_queries_only(tmp_path: Path) -> None:
    emb = HashingEmbedder(64)
    rows = [{"query": f"how much is {w}", "passage": f"{w} price list and costs"}
            for w in ("hotel", "meal", "taxi", "flight", "phone", "desk")]
    path = write_jsonl(rows, tmp_path / "pairs.jsonl")
    backend = LocalFineTuneBackend(tmp_path, emb)
    status = backend.create_job(model="local", training_file=backend.upload_file(path).id,
                                suffix="ad", hyperparameters={"n_epochs": 20})
    adapted = AdaptedEmbedder(emb, artifact_dir(tmp_path, str(status.fine_tuned_model)))
    assert isinstance(adapted, Embedder)
    assert adapted.name == emb.name and adapted.dimension == 64
    assert adapted.adapter_id == status.fine_tuned_model
    texts = ["how much is hotel", "meal price list"]
    base_q = emb.embed(texts, kind="query")
    new_q = adapted.embed(texts, kind="query")
    assert not np.allclose(new_q.vectors, base_q.vectors)
    assert np.allclose(np.linalg.norm(new_q.vectors, axis=1), 1.0, atol=1e-5)
    assert new_q.usage == base_q.usage
    assert np.array_equal(adapted.embed(texts, kind="document").vectors,
                          emb.embed(texts, kind="document").vectors)
    with pytest.raises(ModelError, match="not a chat model"):
        load_local_model(str(status.fine_tuned_model), tmp_path, emb)


def test_missing_artifact(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no local fine-tuned model"):
        load_local_model("local-ft:router:x:ftjob-local-nope", tmp_path, HashingEmbedder(64))
    with pytest.raises(ModelNotFoundError, match="not a local fine-tuned model id"):
        parse_model_id("ft:gpt-4o-mini:org:x:y")


def test_corrupt_artifact_is_detected(tmp_path: Path) -> None:
    emb = HashingEmbedder(64)
    rows = [(f"write about {w}", "creative") for w in ("a1", "b2", "c3")] + \
           [(f"price of {w}", "factual") for w in ("d4", "e5", "f6")]
    model_id = train(tmp_path, emb, router_examples(rows, ["creative", "factual"]), "c")
    folder = artifact_dir(tmp_path, model_id)
    weights = folder / "weights.npz"
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ModelError, match="corrupt"):
        load_local_model(model_id, tmp_path, emb)
    weights.unlink()
    with pytest.raises(ModelError, match="missing weights.npz"):
        load_local_model(model_id, tmp_path, emb)
    (folder / "model.json").write_text("{")
    with pytest.raises(ModelError, match="corrupt model.json"):
        load_local_model(model_id, tmp_path, emb)


def test_wrong_embedder_is_refused(tmp_path: Path) -> None:
    rows = [(f"write about {w}", "creative") for w in ("a1", "b2", "c3")] + \
           [(f"price of {w}", "factual") for w in ("d4", "e5", "f6")]
    model_id = train(tmp_path, HashingEmbedder(64), router_examples(rows, ["creative", "factual"]))
    with pytest.raises(ModelError, match="trained with embedder 'local/hashing-64'"):
        load_local_model(model_id, tmp_path, HashingEmbedder(128))


def test_manifest_records_provenance(tmp_path: Path) -> None:
    emb = HashingEmbedder(64)
    rows = [(f"write about {w}", "creative") for w in ("a1", "b2", "c3")] + \
           [(f"price of {w}", "factual") for w in ("d4", "e5", "f6")]
    model_id = train(tmp_path, emb, router_examples(rows, ["creative", "factual"]), "p")
    manifest = json.loads((artifact_dir(tmp_path, model_id) / "model.json").read_text())
    assert manifest["model_id"] == model_id and manifest["purpose"] == "router"
    assert manifest["embedder"] == {"name": "local/hashing-64", "dimension": 64}
    assert set(manifest["files"]) == {"weights.npz", "data.json"}
