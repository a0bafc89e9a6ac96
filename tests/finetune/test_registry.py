"""Model registry: versions, gated promotion, rollback with history, references, evaluation."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from ragft.answer import Usage
from ragft.errors import RegistryError
from ragft.finetune.registry import Gate, ModelRegistry, evaluate_model
from ragft.models.base import Completion, Message
from ragft.models.local import ABSTAIN_TEXT


class LookupModel:
    """A tiny real ChatModel: answers from a dict keyed by the last user message."""

    def __init__(self, answers: dict[str, str], name: str = "local/lookup"):
        self.answers = answers
        self.name = name

    def complete(self, messages: Sequence[Message], *, max_tokens: int | None = None,
                 temperature: float = 0.0, logprobs: bool = False) -> Completion:
        question = messages[-1]["content"]
        text = self.answers.get(question, ABSTAIN_TEXT)
        return Completion(text=text, usage=Usage(model=self.name), model=self.name, score=0.9)


def ex(q: str, a: str) -> dict:
    return {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": q},
                         {"role": "assistant", "content": a}]}


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    clock = iter(range(1000, 2000))
    return ModelRegistry(tmp_path / "registry.json", clock=lambda: next(clock))


def add(registry: ModelRegistry, n: int, f1: float | None = None) -> None:
    registry.register("generator", model_id=f"local-ft:generator:s:job{n}", base_model="local",
                      purpose="generator", job_id=f"job{n}", training_file_sha256="ab" * 32,
                      metrics={} if f1 is None else {"f1": f1})


def test_register_numbers_versions(registry: ModelRegistry) -> None:
    add(registry, 1)
    add(registry, 2, f1=0.7)
    versions = registry.versions("generator")
    assert [(v.version, v.model_id, v.status) for v in versions] == [
        (1, "local-ft:generator:s:job1", "candidate"), (2, "local-ft:generator:s:job2", "candidate")]
    assert versions[1].metrics == {"f1": 0.7} and versions[1].created_at == 1001
    assert versions[0].ref == "registry:generator@1"
    assert registry.names() == ["generator"] and len(registry.list()) == 2


def test_promote_gate_refuses_with_metric_value_and_threshold(registry: ModelRegistry) -> None:
    add(registry, 1, f1=0.42)
    with pytest.raises(RegistryError) as err:
        registry.promote("generator", 1, gate=Gate("f1", 0.5))
    assert str(err.value) == ("refusing to promote generator@1: held-out f1 = 0.4200 is below "
                              "the gate's minimum 0.5000")
    assert registry.get("generator", 1).status == "candidate"
    with pytest.raises(RegistryError, match="has no promoted version"):
        registry.resolve("registry:generator")


def test_gate_without_the_metric_says_to_evaluate(registry: ModelRegistry) -> None:
    add(registry, 1)
    with pytest.raises(RegistryError, match="no 'accuracy' metric .*evaluate it on held-out"):
        registry.promote("generator", 1, gate=Gate("accuracy", 0.8))


def test_evaluate_gate_stores_metrics_then_promotes(registry: ModelRegistry) -> None:
    add(registry, 1)
    result = registry.evaluate_gate("generator", 1, {"f1": 0.61}, metric="f1", min_value=0.6)
    assert result.passed and result.value == 0.61
    assert "passes the gate" in str(result)
    assert not registry.evaluate_gate("generator", 1, metric="f1", min_value=0.7).passed
    promoted = registry.promote("generator", 1, gate=Gate("f1", 0.6))
    assert promoted.status == "promoted"
    assert registry.resolve("registry:generator") == "local-ft:generator:s:job1"


def test_rollback_returns_to_the_previous_promotion_and_keeps_history(registry: ModelRegistry) -> None:
    for n in (1, 2, 3):
        add(registry, n, f1=0.5 + n / 10)
        registry.promote("generator", n, gate=Gate("f1", 0.5))
    assert registry.get("generator").version == 3
    assert registry.get("generator", 2).status == "archived"
    back = registry.rollback("generator")
    assert back.version == 2 and registry.get("generator", 3).status == "rolled_back"
    assert registry.resolve("registry:generator") == "local-ft:generator:s:job2"
    assert registry.rollback("generator").version == 1  # skips the withdrawn version 3
    with pytest.raises(RegistryError, match="no earlier promoted version"):
        registry.rollback("generator")
    actions = [(h["action"], h["version"]) for h in registry.history("generator")]
    assert actions == [("promote", 1), ("promote", 2), ("promote", 3), ("rollback", 3),
                       ("rollback", 2)]
    # A pinned reference still works after rollback.
    assert registry.resolve("registry:generator@3") == "local-ft:generator:s:job3"


def test_promoting_again_after_rollback(registry: ModelRegistry) -> None:
    add(registry, 1)
    add(registry, 2)
    registry.promote("generator", 1)
    registry.promote("generator", 2)
    registry.rollback("generator")
    add(registry, 3)
    registry.promote("generator", 3)
    assert registry.rollback("generator").version == 1
    # A version withdrawn once and promoted again is a valid rollback target later.
    registry.promote("generator", 2)
    registry.promote("generator", 3)
    assert registry.rollback("generator").version == 2


def test_resolve_refs(registry: ModelRegistry) -> None:
    add(registry, 1)
    registry.promote("generator", 1)
    assert registry.resolve("gpt-4.1-mini") == "gpt-4.1-mini"  # not a registry ref
    assert registry.resolve("registry:generator@1") == "local-ft:generator:s:job1"
    for bad, message in [("registry:nope", "no model named 'nope'"),
                         ("registry:generator@9", "has no version 9"),
                         ("registry:generator@x", "not a number"),
                         ("registry:", "bad registry reference")]:
        with pytest.raises(RegistryError, match=message):
            registry.resolve(bad)


def test_register_rejects_bad_names(registry: ModelRegistry) -> None:
    with pytest.raises(RegistryError):
        registry.register("a:b", model_id="m", base_model="b", purpose="generator")


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "r.json")
    errors: list[Exception] = []

    def worker(k: int) -> None:
        try:
            for i in range(5):
                ModelRegistry(tmp_path / "r.json").register(
                    "router", model_id=f"m{k}-{i}", base_model="local", purpose="router")
                registry.list()  # readers never see a torn file
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(v.version for v in registry.versions("router")) == list(range(1, 21))


def test_corrupt_registry_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    path.write_text("{not json")
    with pytest.raises(RegistryError, match="not valid JSON"):
        ModelRegistry(path).list()


def test_evaluate_model_exact_match_and_f1() -> None:
    model = LookupModel({"q1": "The answer is 42.", "q2": "blue sky", "q3": "no idea"})
    data = [ex("q1", "the answer is 42"), ex("q2", "a blue sky today"), ex("q4", "green")]
    m = evaluate_model(model, data)
    # q1: EM 1, F1 1. q2: EM 0, F1 = 2*(2/2*2/3)/(2/2+2/3) = 0.8. q4: abstains, F1 0.
    assert m["n"] == 3 and m["exact_match"] == pytest.approx(1 / 3)
    assert m["f1"] == pytest.approx((1 + 0.8 + 0) / 3)
    assert m["abstain_rate"] == pytest.approx(1 / 3) and m["mean_confidence"] == 0.9
    assert m["answered_f1"] == pytest.approx((1 + 0.8) / 2)
    assert "accuracy" not in m


def test_evaluate_router_accuracy_and_label_validity() -> None:
    model = LookupModel({"a": "factual", "b": "Creative.", "c": "poem"}, name="local-ft:router:x:y")
    m = evaluate_model(model, [ex("a", "factual"), ex("b", "creative"), ex("c", "creative")],
                       labels=["factual", "creative"])
    assert m["accuracy"] == pytest.approx(2 / 3)  # normalised: "Creative." == "creative"
    assert m["valid_label_rate"] == pytest.approx(2 / 3)


def test_evaluate_model_needs_examples() -> None:
    with pytest.raises(RegistryError):
        evaluate_model(LookupModel({}), [])
