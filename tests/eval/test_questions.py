"""Question-file loading and validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragft.errors import EvaluationError
from ragft.eval.questions import Question, filter_questions, load_questions

SAMPLE = Path(__file__).resolve().parents[2] / "corpus" / "questions.jsonl"


def write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_sample_question_set_loads() -> None:
    questions = load_questions(SAMPLE)
    assert len(questions) == 118
    kinds = {k: sum(q.kind == k for q in questions) for k in ("factual", "procedural", "format", "out_of_scope")}
    assert kinds == {"factual": 58, "procedural": 25, "format": 15, "out_of_scope": 20}
    q = next(q for q in questions if q.id == "q003")
    assert q.golds == ("2,000 credits per month", "2,000", "2000 credits")
    assert q.sources == ("product/lumen_assist.md", "product/pricing.md") and q.answerable
    assert all(not q.answerable and not q.answer for q in questions if q.kind == "out_of_scope")


def test_kinds_and_limit_filter() -> None:
    oos = load_questions(SAMPLE, kinds=["out_of_scope"], limit=3)
    assert [q.kind for q in oos] == ["out_of_scope"] * 3
    with pytest.raises(EvaluationError, match="unknown question kind"):
        filter_questions(oos, kinds=["factoid"])


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    ok = json.dumps({"id": "a", "question": "Q?", "answer": "A"})
    path = write(tmp_path, [
        ok,
        "{not json",
        json.dumps({"question": "no id", "answer": "x"}),
        json.dumps({"id": "a", "question": "dup", "answer": "x"}),
        json.dumps({"id": "b", "question": "Q", "answer": "x", "kind": "trivia"}),
        "",
        json.dumps({"id": "c", "question": "Q", "kind": "factual"}),
        json.dumps({"id": "d", "answer": "x"}),
    ])
    with pytest.raises(EvaluationError) as info:
        load_questions(path)
    msg = str(info.value)
    assert "6 problem(s)" in msg
    assert "q.jsonl line 2: invalid JSON" in msg
    assert 'line 3: missing "id"' in msg
    assert "line 4: duplicate id 'a' (first used on line 1)" in msg
    assert "line 5: unknown kind 'trivia'" in msg
    assert 'line 7: "answer" is empty' in msg
    assert 'line 8: missing "question"' in msg


def test_out_of_scope_needs_no_answer_and_aliases_may_be_a_string(tmp_path: Path) -> None:
    path = write(tmp_path, [
        json.dumps({"id": 1, "question": "Dog?", "kind": "out_of_scope"}),
        json.dumps({"id": "2", "question": "Q?", "answer": "A", "aliases": "a", "sources": ["x.md"]}),
    ])
    assert load_questions(path) == [
        Question("1", "Dog?", "", (), (), "out_of_scope"),
        Question("2", "Q?", "A", ("a",), ("x.md",), "factual"),
    ]


def test_missing_or_empty_file(tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match="not found"):
        load_questions(tmp_path / "nope.jsonl")
    with pytest.raises(EvaluationError, match="no questions"):
        load_questions(write(tmp_path, [""]))
