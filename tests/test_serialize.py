"""Records written by today's code still load, and write back byte for byte the same; the
shared helpers of :mod:`ragft.serialize` round-trip nested values.

``tests/data/records/`` holds files written by ragft before serialisation moved to
:mod:`ragft.serialize` (ledger lines, an answer, an index chunk, a job record and event, the model
registry, an evaluation result).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ragft.answer import Answer, CallRecord, Source, Usage
from ragft.eval.harness import EvalResult
from ragft.finetune.jobs import JobEvent, TrackedJob
from ragft.finetune.registry import ModelRegistry
from ragft.metering.meter import Ledger, RollUp
from ragft.rag.chunker import Chunk
from ragft.route import Route
from ragft.serialize import from_record, known_fields, to_record

DATA = Path(__file__).parent / "data" / "records"


def _json(name: str) -> dict:
    return json.loads((DATA / name).read_text("utf-8"))


def test_an_old_ledger_loads_and_writes_the_same_lines() -> None:
    records = Ledger(DATA / "ledger.jsonl").read()
    assert [r.purpose for r in records] == ["embed_query", "generate", "generate"]
    assert records[1].usage == Usage(model="gpt-4.1-mini", input_tokens=120, cached_input_tokens=20,
                                     output_tokens=30, reasoning_tokens=4)
    assert records[0].usage.source == "estimated" and records[2].cost_usd is None and records[2].nested
    lines = (DATA / "ledger.jsonl").read_text("utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [r.to_dict() for r in records]
    assert json.loads(json.dumps(RollUp.of(records).to_dict())) == _json("rollup.json")


def test_an_old_chunk_job_and_event_round_trip() -> None:
    chunk = Chunk.from_dict(_json("chunk.json"))
    assert chunk.heading == "Travel Policy > Meals" and chunk.token_count == 9
    assert chunk.to_dict() == _json("chunk.json")
    job = TrackedJob.from_dict(_json("job.json"))
    assert job.status is not None and job.status.fine_tuned_model == "ft:gpt-4.1-mini:org:support:xyz"
    assert job.attempts == ("ftjob-abc",) and job.seen_events == ("ev1", "ev2")
    assert job.to_dict() == _json("job.json")
    event = JobEvent.from_dict(_json("job_event.json"))
    assert event.data == {"step": 10} and event.to_dict() == _json("job_event.json")


def test_an_old_registry_file_resolves(tmp_path) -> None:
    path = tmp_path / "registry.json"
    path.write_bytes((DATA / "registry.json").read_bytes())
    registry = ModelRegistry(path)
    assert registry.resolve("registry:generator") == "ft:gpt-4.1-mini:org:support:xyz"
    assert registry.resolve("registry:generator@2") == "local-ft:generator:support:ftjob-local-1"
    versions = registry.versions("generator")
    assert [v.to_dict() for v in versions] == _json("registry.json")["models"]["generator"]["versions"]


def test_an_old_evaluation_result_loads_and_writes_the_same_json(tmp_path) -> None:
    result = EvalResult.from_json(DATA / "eval_result.json")
    record = result.records[0]
    assert record.documents == ("policies/travel.md",) and record.judge_score == 4
    assert result.summaries["rag"].route_mix == {"rag": 2} and result.costs_traced
    out = result.to_json(tmp_path / "result.json")
    assert json.loads(out.read_text("utf-8")) == _json("eval_result.json")


def test_answer_to_dict_keeps_its_shape() -> None:
    old = _json("answer.json")
    calls = tuple(CallRecord.from_dict(c) for c in old["calls"])
    source = Source(**old["sources"][0])
    answer = Answer(
        text=old["text"], query=old["query"], sources=(source,),
        route=Route("cascade", "fallback", "finetuned confidence 0.42 < 0.80 -> rag",
                    inner=Route("rag", detail="2 passages from 2 documents -> gpt-4.1-mini")),
        strategy="cascade", confidence=0.9, calls=calls, latency_s=0.5,
        retrieved=tuple(Source(**s) for s in old["retrieved"]),
    )
    assert list(answer.to_dict()) == list(old)  # same keys, same order
    assert answer.to_dict() == old


@dataclass(frozen=True)
class _Inner:
    name: str
    weights: tuple[float, ...] = ()


@dataclass(frozen=True)
class _Outer:
    inner: _Inner
    maybe: _Inner | None = None
    many: tuple[_Inner, ...] = ()
    by_name: dict[str, _Inner] = field(default_factory=dict)
    tags: tuple[str, ...] = ()


def test_nested_values_round_trip_and_unknown_keys_are_ignored() -> None:
    value = _Outer(_Inner("a", (0.5, 1.0)), None, (_Inner("b"),), {"c": _Inner("c", (2.0,))}, ("x",))
    data = to_record(value)
    assert data == {"inner": {"name": "a", "weights": [0.5, 1.0]}, "maybe": None,
                    "many": [{"name": "b", "weights": []}],
                    "by_name": {"c": {"name": "c", "weights": [2.0]}}, "tags": ["x"]}
    assert from_record(_Outer, json.loads(json.dumps(data))) == value
    assert from_record(_Outer, {**data, "added_later": 1}) == value
    assert known_fields(_Inner, {"name": "n", "other": 2}) == {"name": "n"}
    with pytest.raises(TypeError):
        from_record(_Outer, {"maybe": None})  # the required field is missing
