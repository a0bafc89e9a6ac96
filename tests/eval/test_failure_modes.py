"""Each failure-mode rule on hand-built answers, and the per-strategy counts."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from ragft.eval.failure_modes import DEEP_RANK, OVERFIT_F1, analyze, classify, format_failure_modes, gold_rank
from ragft.eval.harness import EvalResult, QuestionRecord, summarize
from ragft.eval.probes import ProbeAnswer

TRAINING = ["Open ServiceHub, go to Hardware > Request equipment and submit the form.",
            "The meal per diem is $75 per day."]


def rec(qid: str = "q", *, kind: str = "factual", answer: str = "The meal per diem is $75 per day.",
        gold: str = "$75 per day", gold_sources: tuple[str, ...] = ("policies/travel.md",),
        retrieved: tuple[str, ...] = ("policies/travel.md",), documents: tuple[str, ...] | None = None,
        contains: float | None = 1.0, abstained: bool = False, confidence: float | None = None,
        packed: int | None = None, error: str | None = None, strategy: str = "s",
        f1: float = 0.0) -> QuestionRecord:
    answerable = kind != "out_of_scope"
    outcome = ("false_abstention" if abstained else "answered") if answerable else (
        "correct_abstention" if abstained else "hallucination")
    return QuestionRecord(
        strategy=strategy, qid=qid, kind=kind, question=f"question {qid}?", gold=gold, answer=answer,
        route="", route_key="", outcome="error" if error else outcome, abstained=abstained,
        confidence=confidence, documents=retrieved[:1] if documents is None else documents,
        exact_match=0.0 if answerable else None, f1=f1 if answerable else None,
        contains=(0.0 if abstained else contains) if answerable else None, citation_precision=None,
        citation_recall=None, recall_at_k=None, cost_usd=0.0, unpriced_calls=0, calls=1, input_tokens=0,
        output_tokens=0, embedding_tokens=0, total_tokens=0, latency_s=0.01, error=error,
        gold_sources=gold_sources if answerable else (), retrieved=retrieved, packed=packed,
    )


def modes(record: QuestionRecord, **kw: Any) -> tuple[str, ...]:
    return classify(record, threshold=kw.pop("threshold", 0.8), **kw)


def test_a_correct_grounded_answer_has_no_failure_mode() -> None:
    assert modes(rec()) == ()


def test_retrieval_miss_when_no_gold_document_was_retrieved() -> None:
    assert modes(rec(retrieved=("org/teams.md", "product/pricing.md"), contains=0.0)) == ("retrieval_miss",)
    assert modes(rec(retrieved=(), documents=(), abstained=True)) == ("retrieval_miss", "false_abstention")
    # A gold document under a parent folder is still the gold document.
    assert "retrieval_miss" not in modes(rec(retrieved=("docs/policies/travel.md",)))
    # Not for a strategy that does not retrieve.
    assert modes(rec(retrieved=(), documents=(), contains=0.0), retrieves=False) == ()


def test_wrong_context_when_gold_was_retrieved_but_the_answer_is_wrong_or_cites_another_document() -> None:
    assert modes(rec(contains=0.0)) == ("wrong_context",)
    right_but_miscited = rec(retrieved=("policies/travel.md", "org/teams.md"), documents=("org/teams.md",))
    assert modes(right_but_miscited) == ("wrong_context",)
    # Citing the gold among others is fine; an abstention is not "wrong context".
    assert modes(rec(documents=("org/teams.md", "policies/travel.md"))) == ()
    assert "wrong_context" not in modes(rec(abstained=True))


def test_buried_when_the_gold_passage_is_deep_or_outside_the_packed_context() -> None:
    deep = tuple(f"other/{i}.md" for i in range(DEEP_RANK)) + ("policies/travel.md",)
    assert gold_rank(rec(retrieved=deep)) == DEEP_RANK + 1
    assert modes(rec(retrieved=deep, contains=0.0)) == ("wrong_context", "buried")
    assert modes(rec(retrieved=deep, abstained=True)) == ("buried", "false_abstention")
    # Rank 2 but only one passage fitted in the context: outside it.
    assert "buried" in modes(rec(retrieved=("other/a.md", "policies/travel.md"), contains=0.0, packed=1))
    # At rank 2 within the context, or deep but answered right: not buried.
    assert "buried" not in modes(rec(retrieved=("other/a.md", "policies/travel.md"), contains=0.0, packed=5))
    assert "buried" not in modes(rec(retrieved=deep, documents=("policies/travel.md",)))


def test_a_paraphrase_close_to_the_gold_is_not_wrong() -> None:
    # The laptop procedure in other words: no exact phrase, but token F1 0.64 >= WRONG_F1.
    close = rec(contains=0.0, f1=0.64, confidence=0.96)
    assert modes(close) == ()
    assert modes(replace(close, f1=0.3)) == ("wrong_context", "confident_hallucination")


def test_false_abstention_on_answerable_questions_only() -> None:
    assert modes(rec(abstained=True, answer="I don't know")) == ("false_abstention",)
    assert modes(rec(kind="out_of_scope", abstained=True, answer="I don't know")) == ()


def test_confident_hallucination_at_or_above_the_threshold() -> None:
    wrong = rec(retrieved=(), documents=(), contains=0.0, confidence=0.8)
    assert modes(wrong, retrieves=False) == ("confident_hallucination",)
    assert modes(replace(wrong, confidence=0.79), retrieves=False) == ()
    oos = rec(kind="out_of_scope", answer="Dogs are welcome on Fridays.", confidence=0.95, retrieved=())
    assert modes(oos, retrieves=False) == ("confident_hallucination",)
    # Right answers and abstentions are not hallucinations, however confident.
    assert modes(rec(confidence=0.99)) == ()
    assert modes(rec(kind="out_of_scope", abstained=True, confidence=0.99, retrieved=())) == ()


def test_overfitting_out_of_scope_answered_with_training_content() -> None:
    parroted = rec(kind="out_of_scope", answer="Open ServiceHub, go to Hardware > Request equipment.", retrieved=())
    assert modes(parroted, training_answers=TRAINING, retrieves=False) == ("overfitting",)
    # Without training answers the rule cannot apply; an unrelated answer is not overfitting.
    assert modes(parroted, retrieves=False) == ()
    unrelated = replace(parroted, answer="Mongolia's capital is Ulaanbaatar.")
    assert modes(unrelated, training_answers=TRAINING, retrieves=False) == ()
    assert OVERFIT_F1 == 0.5


def test_errors_are_not_a_failure_mode() -> None:
    assert modes(rec(error="RuntimeError: boom", contains=0.0, retrieved=())) == ()


def _result(records: list[QuestionRecord]) -> EvalResult:
    names = tuple(dict.fromkeys(r.strategy for r in records))
    return EvalResult(run_id="r", created_at="", strategies=names,
                      question_ids=tuple(dict.fromkeys(r.qid for r in records)), records=records,
                      summaries={n: summarize(n, [r for r in records if r.strategy == n]) for n in names})


def test_counts_per_strategy_with_examples_probes_and_forgetting() -> None:
    deep = ("a.md", "b.md", "c.md", "d.md", "policies/travel.md")
    records = [
        rec("q1", strategy="rag"),
        rec("q2", strategy="rag", retrieved=("org/teams.md",), contains=0.0),
        rec("q3", strategy="rag", retrieved=deep, contains=0.0),
        rec("q4", strategy="rag", kind="out_of_scope", abstained=True, answer="I don't know", retrieved=()),
        rec("q1", strategy="ft", retrieved=(), documents=(), contains=0.0, confidence=0.9),
        rec("q2", strategy="ft", retrieved=(), documents=(), abstained=True, confidence=0.1),
        rec("q3", strategy="ft", retrieved=(), documents=(), confidence=0.95),
        rec("q4", strategy="ft", kind="out_of_scope", answer=TRAINING[0], retrieved=(), confidence=0.5),
    ]
    result = _result(records)

    def probe(kind: str, prompt: str, answer: str, correct: bool | None) -> ProbeAnswer:
        return ProbeAnswer(kind, prompt, answer, answer == "I don't know", correct)  # type: ignore[arg-type]

    probes = {
        "base": [probe("general", "capital of France?", "Paris", True), probe("general", "7 days?", "7", True)],
        "ft": [probe("greeting", "Hello!", TRAINING[1], None), probe("general", "capital of France?", "Paris", True),
               probe("general", "7 days?", "I don't know", False)],
        "rag": [probe("greeting", "Hello!", "I don't know", None)],
    }
    out = analyze(result, threshold=0.8, training_answers=TRAINING, probes=probes)
    rag, ft = out["rag"], out["ft"]
    assert (rag.get("retrieval_miss").count, rag.get("retrieval_miss").of) == (1, 3)
    assert (rag.get("wrong_context").count, rag.get("wrong_context").of) == (1, 2)
    assert rag.get("buried").count == 1 and rag.get("buried").detail == {"positions": {"5": 1}}
    assert rag.get("buried").examples[0]["qid"] == "q3"
    assert rag.get("confident_hallucination").count is None  # no confidences reported
    assert rag.get("catastrophic_forgetting").count is None  # no general probes
    assert ft.get("retrieval_miss").count is None and ft.get("false_abstention").count == 1
    assert (ft.get("confident_hallucination").count, ft.get("confident_hallucination").of) == (1, 4)
    # q4 (out of scope, parroting training) and the "Hello!" probe: 2 of 1 oos + 1 greeting.
    assert (ft.get("overfitting").count, ft.get("overfitting").of) == (2, 2)
    forgetting = ft.get("catastrophic_forgetting")
    assert (forgetting.count, forgetting.of) == (1, 2)
    assert forgetting.detail["drop_points"] == 50.0 and forgetting.examples[0]["question"] == "7 days?"
    # Per question on the records, and in result.json form.
    assert next(r for r in result.records if r.strategy == "rag" and r.qid == "q3").failure_modes == (
        "wrong_context", "buried")
    assert result.failure_modes["ft"]["modes"]["overfitting"]["rate"] == pytest.approx(1.0)
    table = format_failure_modes(result)
    assert "retrieval miss [rag]" in table and "-50 pts" in table and "n/a" in table
    round_trip = EvalResult.from_dict(result.to_dict())
    assert round_trip.failure_modes == result.failure_modes
    assert round_trip.records[2].failure_modes == ("wrong_context", "buried")


def test_rag_rules_apply_only_to_answers_that_went_through_retrieval() -> None:
    from ragft.eval.harness import answered_by
    from ragft.route import Route

    # A router sending the question to the fine-tuned model, a cascade keeping its first answer
    # and a refusal did not retrieve; a router or cascade handing over to rag did.
    to_ft = Route("router", "procedural", "procedural (0.9) -> finetuned", inner=Route("finetuned"))
    to_rag = Route("cascade", "fallback", "abstained -> rag", inner=Route("rag", detail="5 passages"))
    assert [answered_by(r) for r in (to_ft, to_rag, Route("cascade", "kept"), Route("router", "out_of_scope"))] == [
        "finetuned", "rag", "cascade", "router"]
    unretrieved = rec(retrieved=(), documents=(), abstained=True)
    assert modes(replace(unretrieved, answered_by="finetuned")) == ("false_abstention",)
    assert modes(replace(unretrieved, answered_by="router")) == ("false_abstention",)
    assert modes(replace(unretrieved, answered_by="rag")) == ("retrieval_miss", "false_abstention")


def test_forgetting_is_not_applicable_when_the_base_model_knows_nothing() -> None:
    result = _result([rec("q1", strategy="ft", retrieved=(), documents=())])
    probe = ProbeAnswer("general", "capital of France?", "I don't know", True, False)
    out = analyze(result, threshold=0.8, probes={"base": [probe], "ft": [probe]})
    forgetting = out["ft"].get("catastrophic_forgetting")
    assert forgetting.count is None and "nothing to forget" in forgetting.why


def test_a_result_written_before_failure_modes_still_loads() -> None:
    data = _result([rec("q1", strategy="rag")]).to_dict()
    del data["failure_modes"]
    for r in data["records"]:
        for key in ("packed", "failure_modes", "answered_by"):
            del r[key]
    old = EvalResult.from_dict(data)
    assert old.failure_modes == {} and old.records[0].failure_modes == () and old.records[0].answered_by == ""
