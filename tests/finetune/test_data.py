"""Training data: builders, splitting, validation (one test per defect) and cost estimates."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from ragft.errors import FineTuneError, ModelRetiredError, TrainingDataError
from ragft.finetune.data import (
    GENERATOR_SYSTEM,
    REWRITER_SYSTEM,
    auto_epochs,
    detect_purpose,
    estimate_training,
    generator_examples,
    read_jsonl,
    rewriter_examples,
    router_examples,
    split_examples,
    validate_examples,
    validate_file,
    write_jsonl,
)
from ragft.tokens import count_tokens

MODEL = "gpt-4o-mini"
TODAY = dt.date(2026, 11, 29)


def good(i: int) -> dict:
    return {"messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": f"Question number {i}?"},
        {"role": "assistant", "content": f"Answer number {i}."},
    ]}


def file_with(tmp_path: Path, write_lines, bad: dict[int, object], n: int = 12) -> Path:  # type: ignore[no-untyped-def]
    """``n`` good lines with line numbers in ``bad`` (1-based) replaced."""
    lines = [bad.get(i, good(i)) for i in range(1, n + 1)]
    return write_lines(tmp_path / "train.jsonl", lines)


def problems_at(report, code: str) -> list[int | None]:  # type: ignore[no-untyped-def]
    return [p.line for p in report.problems if p.code == code]


# --------------------------------------------------------------------------- builders


def test_generator_examples_builds_chat_format() -> None:
    ex = generator_examples([{"question": "Q1?", "answer": "A1"}, ("Q2?", "A2")])
    assert ex[0] == {"messages": [
        {"role": "system", "content": GENERATOR_SYSTEM},
        {"role": "user", "content": "Q1?"},
        {"role": "assistant", "content": "A1"},
    ]}
    assert ex[1]["messages"][1]["content"] == "Q2?"
    assert generator_examples([("q", "a")], system=None)[0]["messages"][0]["role"] == "user"


def test_builders_report_every_empty_item() -> None:
    with pytest.raises(TrainingDataError) as err:
        generator_examples([{"question": "ok", "answer": "ok"}, {"question": ""}, 7])
    lines = [p.line for p in err.value.problems]
    assert lines == [2, 2, 3]


def test_rewriter_examples_and_router_label_is_the_reply() -> None:
    rw = rewriter_examples([{"query": "cab money?", "rewrite": "taxi reimbursement policy"}])
    assert rw[0]["messages"][0]["content"] == REWRITER_SYSTEM
    rt = router_examples([{"query": "write a poem", "label": "creative"}], ["factual", "creative"])
    assert rt[0]["messages"][-1] == {"role": "assistant", "content": "creative"}
    from ragft.prompts import ROUTER_SYSTEM

    assert rt[0]["messages"][0]["content"] == ROUTER_SYSTEM


def test_router_examples_rejects_unknown_label() -> None:
    with pytest.raises(TrainingDataError, match="'creatve' is not one of"):
        router_examples([("q", "factual"), ("p", "creatve")], ["factual", "creative"])


def test_detect_purpose(chat) -> None:  # type: ignore[no-untyped-def]
    assert detect_purpose(generator_examples([("q", "a")])) == "generator"
    assert detect_purpose(rewriter_examples([("q", "r")])) == "rewriter"
    assert detect_purpose(router_examples([("q", "x")], ["x", "y"])) == "router"
    assert detect_purpose([{"query": "q", "passage": "p"}]) == "adapter"
    # Without the builders' system prompts, the heuristics decide.
    labels = [chat(f"query {i}", ["a", "b"][i % 2], system=None) for i in range(12)]
    assert detect_purpose(labels) == "router"
    rewrites = [chat(f"cheap hotel {i}", f"cheap hotel nightly cap {i}", system=None)
                for i in range(5)]
    assert detect_purpose(rewrites) == "rewriter"
    answers = [chat(f"what is item {i}?", f"It costs {i} dollars.", system=None) for i in range(5)]
    assert detect_purpose(answers) == "generator"


def test_detect_purpose_many_one_word_labels_is_a_router(chat) -> None:  # type: ignore[no-untyped-def]
    # A 150-intent data set as a plain chat JSONL: 150 distinct one-word labels, each repeated.
    intents = [f"intent_{k}" for k in range(150)]
    rows = [chat(f"utterance {i} about {intents[i % 150]}", intents[i % 150], system=None)
            for i in range(150 * 6)]
    assert detect_purpose(rows) == "router"
    # One-word replies that (almost) never repeat are answers, however many there are.
    answers = [chat(f"what is the code of item {i}?", f"X{i}", system=None) for i in range(300)]
    assert detect_purpose(answers) == "generator"


# --------------------------------------------------------------------------- files and splits


def test_write_jsonl_is_atomic_and_round_trips(tmp_path: Path) -> None:
    ex = generator_examples([("Qué?", "Sí")])
    path = write_jsonl(ex, tmp_path / "out" / "a.jsonl")
    assert read_jsonl(path) == ex
    assert "Qué" in path.read_text("utf-8")  # not \u-escaped
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.jsonl"]  # no temp left over


def test_read_jsonl_names_bad_lines(tmp_path: Path, write_lines) -> None:  # type: ignore[no-untyped-def]
    path = write_lines(tmp_path / "x.jsonl", [good(1), "{oops", "[1]"])
    with pytest.raises(TrainingDataError) as err:
        read_jsonl(path)
    assert [p.line for p in err.value.problems] == [2, 3]


def test_split_is_deterministic_and_stable_when_data_grows() -> None:
    examples = [good(i) for i in range(200)]
    a = split_examples(examples, seed=1)
    b = split_examples(examples, seed=1)
    assert a == b
    assert 8 <= len(a.test) <= 35 and 8 <= len(a.validation) <= 35
    grown = split_examples(examples + [good(i) for i in range(200, 260)], seed=1)
    # Every original example stays in the partition it was in.
    for part in ("train", "validation", "test"):
        old = getattr(a, part)
        assert [e for e in getattr(grown, part) if e in examples] == old
    assert split_examples(examples, seed=2) != a


def test_split_keeps_one_question_in_one_partition() -> None:
    same_q = [generator_examples([("Same question?", f"answer {i}")])[0] for i in range(30)]
    split = split_examples(same_q, validation=0.3, test=0.3)
    assert sorted(split.sizes().values()) == [0, 0, 30]


def test_split_rejects_bad_fractions() -> None:
    with pytest.raises(ValueError):
        split_examples([], validation=0.6, test=0.5)


# --------------------------------------------------------------------------- validation


def test_valid_file_has_no_problems_and_stats(tmp_path: Path, write_lines) -> None:  # type: ignore[no-untyped-def]
    path = file_with(tmp_path, write_lines, {})
    report = validate_file(path, model=MODEL)
    assert report.ok and report.problems == ()
    assert report.n_examples == 12
    assert report.tokens.min > 0 and report.tokens.max >= report.tokens.mean >= report.tokens.min
    assert report.assistant_tokens.mean == pytest.approx(
        sum(count_tokens(f"Answer number {i}.", MODEL) for i in range(1, 13)) / 12
    )
    assert report.billed_tokens_per_epoch == sum(report.tokens_per_example)
    assert "no problems found" in report.summary()


def test_invalid_json_line(tmp_path: Path, write_lines) -> None:  # type: ignore[no-untyped-def]
    report = validate_file(file_with(tmp_path, write_lines, {3: '{"messages": [}'}), model=MODEL)
    assert problems_at(report, "invalid_json") == [3]
    assert "line 3: not valid JSON" in str(report.problems[0])


def test_line_not_an_object(tmp_path: Path, write_lines) -> None:  # type: ignore[no-untyped-def]
    report = validate_file(file_with(tmp_path, write_lines, {2: [1, 2]}), model=MODEL)
    assert problems_at(report, "not_object") == [2]


def test_missing_messages(tmp_path: Path, write_lines) -> None:  # type: ignore[no-untyped-def]
    report = validate_file(file_with(tmp_path, write_lines, {4: {"prompt": "x"}}), model=MODEL)
    assert problems_at(report, "missing_messages") == [4]


def test_messages_not_a_list(tmp_path: Path, write_lines) -> None:  # type: ignore[no-untyped-def]
    report = validate_file(file_with(tmp_path, write_lines, {5: {"messages": "hi"}}), model=MODEL)
    assert problems_at(report, "messages_not_list") == [5]


def test_message_missing_role(tmp_path: Path, write_lines) -> None:  # type: ignore[no-untyped-def]
    bad = {"messages": [{"content": "hi"}, {"role": "assistant", "content": "yo"}]}
    report = validate_file(file_with(tmp_path, write_lines, {6: bad}), model=MODEL)
    assert problems_at(report, "message_missing_role") == [6]
    assert "message 1 has no 'role'" in report.problems[0].message


def test_message_missing_content(tmp_path: Path, write_lines) -> None:  # type: ignore[no-untyped-def]
    bad = {"messages": [{"role": "user"}, {"role": "assistant", "content": "yo"}]}
    report = validate_file(file_with(tmp_path, write_lines, {7: bad}), model=MODEL)
    assert problems_at(report, "message_missing_content") == [7]


def test_unrecognized_role(tmp_path: Path, write_lines) -> None:  # type: ignore[no-untyped-def]
    bad = {"messages": [{"role": "human", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    report = validate_file(file_with(tmp_path, write_lines, {8: bad}), model=MODEL)
    assert problems_at(report, "unrecognized_role") == [8]
    assert "'human'" in report.problems[0].message


def test_unknown_key_in_message(tmp_path: Path, write_lines) -> None:  # type: ignore[no-untyped-def]
    bad = {"messages": [{"role": "user", "content": "hi", "lang": "en"},
                        {"role": "assistant", "content": "yo"}]}
    report = validate_file(file_with(tmp_path, write_lines, {9: bad}), model=MODEL)
    assert problems_at(report, "unrecognized_key") == [9]
    assert "['lang']" in report.problems[0].message


def test_allowed_keys_and_tool_calls_pass(tmp_path: Path, write_lines) -> None:  # type: ignore[no-untyped-def]
    ok = {"messages": [
        {"role": "user", "content": "weather?", "name": "ann"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
        {"role": "tool", "content": "sunny", "tool_call_id": "c1"},
        {"role": "assistant", "content": "Sunny.", "weight": 1},
    ]}
    report = validate_file(file_with(tmp_path, write_lines, {10: ok}), model=MODEL)
    assert report.ok, report.problems


def test_empty_content(tmp_path: Path, write_lines) -> None:  # type: ignore[no-untyped-def]
    bad = {"messages": [{"role": "user", "content": "   "}, {"role": "assistant", "content": "yo"}]}
    report = validate_file(file_with(tmp_path, write_lines, {11: bad}), model=MODEL)
    assert problems_at(report, "empty_content") == [11]


def test_non_string_content(tmp_path: Path, write_lines) -> None:  # type: ignore[no-untyped-def]
    bad = {"messages": [{"role": "user", "content": 42}, {"role": "assistant", "content": "yo"}]}
    report = validate_file(file_with(tmp_path, write_lines, {12: bad}), model=MODEL)
    assert problems_at(report, "content_not_string") == [12]


def test_missing_assistant_message(tmp_path: Path, write_lines) -> None:  # type: ignore[no-untyped-def]
    bad = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}]}
    report = validate_file(file_with(tmp_path, write_lines, {2: bad}), model=MODEL)
    assert problems_at(report, "missing_assistant") == [2]
    assert str(report.problems[0]) == ("line 2: assistant message missing; add the reply the "
                                       "model should learn")


def test_example_over_token_limit(tmp_path: Path, write_lines) -> None:  # type: ignore[no-untyped-def]
    long = {"messages": [{"role": "user", "content": "word " * 200},
                         {"role": "assistant", "content": "ok"}]}
    path = file_with(tmp_path, write_lines, {3: long})
    report = validate_file(path, model=MODEL, max_tokens_per_example=100)
    assert problems_at(report, "too_many_tokens") == [3]
    assert report.n_over_limit == 1
    # Billing counts the truncated example at the limit.
    assert report.billed_tokens_per_epoch == sum(min(t, 100) for t in report.tokens_per_example)
    assert validate_file(path, model=MODEL).ok  # default limit 65,536


def test_fewer_than_ten_examples(tmp_path: Path, write_lines) -> None:  # type: ignore[no-untyped-def]
    report = validate_file(file_with(tmp_path, write_lines, {}, n=9), model=MODEL)
    assert problems_at(report, "too_few_examples") == [None]
    assert "only 9 example(s)" in report.problems[-1].message


def test_exact_duplicate(tmp_path: Path, write_lines) -> None:  # type: ignore[no-untyped-def]
    report = validate_file(file_with(tmp_path, write_lines, {7: good(2)}), model=MODEL)
    assert problems_at(report, "duplicate") == [7]
    assert "duplicate of line 2" in report.problems[0].message


def test_blank_line(tmp_path: Path, write_lines) -> None:  # type: ignore[no-untyped-def]
    report = validate_file(file_with(tmp_path, write_lines, {4: ""}), model=MODEL)
    assert problems_at(report, "blank_line") == [4]


def test_bad_weight(tmp_path: Path, write_lines) -> None:  # type: ignore[no-untyped-def]
    bad = {"messages": [{"role": "user", "content": "hi"},
                        {"role": "assistant", "content": "yo", "weight": 2}]}
    report = validate_file(file_with(tmp_path, write_lines, {5: bad}), model=MODEL)
    assert problems_at(report, "bad_weight") == [5]


def test_raise_on_error_carries_every_problem(tmp_path: Path, write_lines) -> None:  # type: ignore[no-untyped-def]
    path = file_with(tmp_path, write_lines, {2: "nope", 5: {"messages": []}, 7: good(1)})
    with pytest.raises(TrainingDataError) as err:
        validate_file(path, model=MODEL, raise_on_error=True)
    assert [(p.line, p.code) for p in err.value.problems] == [
        (2, "invalid_json"), (5, "messages_not_list"), (7, "duplicate")]
    assert "line 2:" in str(err.value)


def test_validate_examples_in_memory() -> None:
    report = validate_examples([good(1), {"messages": [{"role": "user", "content": "x"}]}],
                               model=MODEL, min_examples=1)
    assert problems_at(report, "missing_assistant") == [2]


def test_missing_system_is_a_warning_not_a_problem(tmp_path: Path, write_lines, chat) -> None:  # type: ignore[no-untyped-def]
    path = write_lines(tmp_path / "t.jsonl", [chat(f"q{i}", "a", system=None) for i in range(10)])
    report = validate_file(path, model=MODEL)
    assert report.ok
    assert [w.code for w in report.warnings] == ["missing_system"]


# --------------------------------------------------------------------------- estimates


@pytest.mark.parametrize(
    ("n", "epochs"),
    [(1, 25), (10, 10), (12, 9), (30, 4), (33, 4), (34, 3), (100, 3), (8333, 3), (8334, 2),
     (25_000, 1), (40_000, 1)],
)
def test_auto_epochs_rule(n: int, epochs: int) -> None:
    # n*3 < 100 -> min(25, ceil(100/n)); n*3 > 25,000 -> max(1, floor(25,000/n)); else 3.
    assert auto_epochs(n) == epochs


def _tiny(tmp_path: Path, write_lines) -> Path:  # type: ignore[no-untyped-def]
    ex = {"messages": [{"role": "user", "content": "hi"},
                       {"role": "assistant", "content": "hello"}]}
    return write_lines(tmp_path / "tiny.jsonl", [ex] * 12)


def test_estimate_matches_hand_computed_figure(tmp_path: Path, write_lines) -> None:  # type: ignore[no-untyped-def]
    path = _tiny(tmp_path, write_lines)
    for word in ("user", "hi", "assistant", "hello"):
        assert count_tokens(word, MODEL) == 1
    # Per example: 3 (reply priming) + 2 messages x 3 (framing) + 4 one-token strings = 13.
    # 12 examples -> 156 tokens/epoch. auto: 12 x 3 = 36 < 100 -> ceil(100 / 12) = 9 epochs.
    # Billed: 156 x 9 = 1,404 tokens. gpt-4o-mini trains at $3.00/1M -> $0.004212.
    est = estimate_training(path, model=MODEL, today=TODAY)
    assert (est.tokens_per_epoch, est.epochs, est.billed_tokens) == (156, 9, 1404)
    assert est.epochs_auto
    assert est.cost_usd == pytest.approx(0.004212)
    assert est.shutdown == dt.date(2027, 1, 14)
    assert "shuts down on 2027-01-14" in est.summary()


def test_estimate_caps_each_example_at_the_limit(tmp_path: Path, write_lines) -> None:  # type: ignore[no-untyped-def]
    path = _tiny(tmp_path, write_lines)
    # min(10, 13) = 10 per example -> 120/epoch; 2 epochs -> 240 tokens x $25/1M = $0.006.
    est = estimate_training(path, model="gpt-4.1", epochs=2, today=TODAY,
                            max_tokens_per_example=10)
    assert (est.tokens_per_epoch, est.billed_tokens, est.n_over_limit) == (120, 240, 12)
    assert est.cost_usd == pytest.approx(0.006)
    assert not est.epochs_auto


def test_estimate_from_examples_in_memory(tmp_path: Path, write_lines) -> None:  # type: ignore[no-untyped-def]
    from_file = estimate_training(_tiny(tmp_path, write_lines), model=MODEL, today=TODAY)
    in_memory = estimate_training(read_jsonl(tmp_path / "tiny.jsonl"), model=MODEL, today=TODAY)
    assert in_memory.billed_tokens == from_file.billed_tokens


def test_estimate_refuses_retired_model(tmp_path: Path, write_lines) -> None:  # type: ignore[no-untyped-def]
    path = _tiny(tmp_path, write_lines)
    with pytest.raises(ModelRetiredError, match="shut down on 2026-10-23") as err:
        estimate_training(path, model="gpt-4.1-nano", today=TODAY)
    assert "gpt-4o-mini" in str(err.value)  # suggests models still running
    with pytest.raises(ModelRetiredError):
        estimate_training(path, model="gpt-4o-mini-2024-07-18", today=dt.date(2027, 1, 14))


def test_estimate_refuses_unknown_or_untrainable_model(tmp_path: Path, write_lines) -> None:  # type: ignore[no-untyped-def]
    path = _tiny(tmp_path, write_lines)
    with pytest.raises(FineTuneError, match="unknown base model 'gpt-9'"):
        estimate_training(path, model="gpt-9", today=TODAY)
    with pytest.raises(FineTuneError, match="cannot be fine-tuned"):
        estimate_training(path, model="gpt-5", today=TODAY)
    with pytest.raises(ValueError, match="epochs"):
        estimate_training(path, model=MODEL, epochs=0, today=TODAY)


def test_estimate_local_models_cost_nothing(tmp_path: Path, write_lines) -> None:  # type: ignore[no-untyped-def]
    est = estimate_training(_tiny(tmp_path, write_lines), model="local/minilm", epochs=3)
    assert est.cost_usd == 0.0 and est.billed_tokens == 156 * 3


def test_report_to_dict_is_json(tmp_path: Path, write_lines) -> None:  # type: ignore[no-untyped-def]
    report = validate_file(file_with(tmp_path, write_lines, {3: "x"}), model=MODEL)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["problems"][0]["line"] == 3 and data["ok"] is False


def test_router_examples_do_not_repeat_the_label_list(many_label_rows) -> None:  # type: ignore[no-untyped-def]
    from ragft import prompts

    rows = many_label_rows(150, 2)
    labels = sorted({label for _, label in rows})
    examples = router_examples(rows, labels)
    systems = {ex["messages"][0]["content"] for ex in examples}
    assert systems == {prompts.ROUTER_SYSTEM}
    assert not any(label in prompts.ROUTER_SYSTEM for label in labels)
    # What is billed per example no longer grows with the number of labels (it was ~500 tokens
    # of label list per example over 150 labels).
    report = validate_examples(examples, model="gpt-4o-mini")
    assert report.tokens.max < 60
    assert detect_purpose(examples) == "router"
