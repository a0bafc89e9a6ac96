"""Answer-quality metrics against hand-computed values."""

from __future__ import annotations

import pytest

from ragft.eval.judge import JudgeVerdict, parse_judge_score
from ragft.metrics import (
    abstention_outcome,
    answer_parts,
    best_exact_match,
    best_token_f1,
    citation_scores,
    contains_answer,
    doc_path,
    retrieval_recall,
    score_answer,
    strip_citations,
)


def test_exact_match_takes_the_best_alias() -> None:
    golds = ["2,000 credits per month", "2,000", "2000 credits"]
    # "2000 Credits." normalises to "2000 credits" == the third alias.
    assert best_exact_match("2000 Credits.", golds) == 1.0
    assert best_exact_match("two thousand", golds) == 0.0
    assert best_exact_match("anything", []) == 0.0


def test_token_f1_takes_the_best_alias() -> None:
    # pred tokens [2000, credits]; vs "2,000 credits per month" -> [2000, credits, per, month]:
    # overlap 2, P = 2/2, R = 2/4, F1 = 2*1*0.5/1.5 = 2/3.  vs "2,000" -> [2000]: P=1/2, R=1, F1=2/3.
    assert best_token_f1("2,000 credits", ["2,000 credits per month", "2,000"]) == pytest.approx(2 / 3)
    # The article and punctuation vanish: "The net 45." == "net 45".
    assert best_token_f1("The net 45.", ["net 45"]) == 1.0


def test_contains_answer_whole_phrase_at_word_boundaries() -> None:
    assert contains_answer("The Business plan includes 2,000 credits per month.", ["2,000 credits per month"]) == 1.0
    assert contains_answer("Payment is due in 145 days", ["45 days"]) == 0.0  # not inside "145"
    assert contains_answer("", ["x"]) == 0.0
    assert contains_answer("net 45", ["", "net 45"]) == 1.0


def test_contains_answer_accepts_every_part_of_a_multi_part_gold_in_any_order() -> None:
    gold = "CEO Mara Okafor; CTO Dev Lindqvist; CFO Priya Raman"
    assert answer_parts(gold) == ["CEO Mara Okafor", "CTO Dev Lindqvist", "CFO Priya Raman"]
    table = "| CFO | Priya Raman |\n| CEO | Mara Okafor |\n| CTO | Dev Lindqvist |"
    assert contains_answer("- CFO Priya Raman\n- CEO Mara Okafor\n- CTO Dev Lindqvist", [gold]) == 1.0
    # Pipes are punctuation, so a Markdown table row normalises to "cfo priya raman" too.
    assert contains_answer(table, [gold]) == 1.0
    assert contains_answer("CEO Mara Okafor; CTO Dev Lindqvist", [gold]) == 0.0  # a part missing
    assert contains_answer("They are 2026-10-09 and 2026-05-22.", ["2026-05-22 and 2026-10-09"]) == 1.0


def test_strip_citations() -> None:
    assert strip_citations("$75 per day [1]") == "$75 per day"
    assert strip_citations("A [1][2] and B [2, 3].") == "A and B."


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        ("records/office_locations.jsonl#austin", "records/office_locations.jsonl"),
        ("./policies/travel.md", "policies/travel.md"),
        ("policies\\travel.md", "policies/travel.md"),
    ],
)
def test_doc_path(doc: str, path: str) -> None:
    assert doc_path(doc) == path


def test_citation_precision_and_recall() -> None:
    cited = ["policies/travel.md", "records/office_locations.jsonl#austin", "org/teams.md",
             "records/office_locations.jsonl#dublin"]
    gold = ["records/office_locations.jsonl", "org/leadership.md"]
    # distinct cited files: travel, office_locations, teams = 3; 1 is gold -> P = 1/3.
    # gold files: 2; office_locations was cited -> R = 1/2.
    p, r = citation_scores(cited, gold)
    assert p == pytest.approx(1 / 3) and r == pytest.approx(1 / 2)


def test_citations_match_under_a_parent_folder_but_not_a_lookalike() -> None:
    assert citation_scores(["docs/policies/travel.md"], ["policies/travel.md"]) == (1.0, 1.0)
    assert citation_scores(["xpolicies/travel.md"], ["policies/travel.md"]) == (0.0, 0.0)


def test_citation_scores_undefined_parts_are_none() -> None:
    assert citation_scores([], ["a.md"]) == (None, 0.0)
    assert citation_scores(["a.md"], []) == (0.0, None)


def test_retrieval_recall_over_the_answers_documents() -> None:
    # gold {c, d}; among the 3 retrieved only c -> recall@3 = 1/2.
    assert retrieval_recall(["a.md", "b.md", "c.md#1"], ["c.md", "d.md"]) == pytest.approx(0.5)
    assert retrieval_recall([], ["c.md"]) is None  # nothing retrieved: n/a, not 0
    assert retrieval_recall(["a.md"], []) is None


@pytest.mark.parametrize(
    ("answerable", "abstained", "outcome"),
    [
        (False, True, "correct_abstention"),
        (False, False, "hallucination"),
        (True, True, "false_abstention"),
        (True, False, "answered"),
    ],
)
def test_abstention_outcomes(answerable: bool, abstained: bool, outcome: str) -> None:
    assert abstention_outcome(answerable, abstained) == outcome


def test_score_answer_out_of_scope_has_no_quality_metrics() -> None:
    s = score_answer(answerable=False, golds=(), gold_sources=(), prediction="I don't know.", abstained=True)
    assert s.outcome == "correct_abstention"
    assert (s.exact_match, s.f1, s.contains, s.citation_precision) == (None, None, None, None)


def test_score_answer_abstention_on_answerable_scores_zero_even_with_overlap() -> None:
    # The refusal shares the token "documents" with the gold, yet scores 0: it is not an answer.
    s = score_answer(answerable=True, golds=["the documents"], gold_sources=["a.md"],
                     prediction="I don't know: the documents do not say.", abstained=True)
    assert s.outcome == "false_abstention"
    assert (s.exact_match, s.f1, s.contains) == (0.0, 0.0, 0.0)
    assert s.recall_at_k is None


def test_score_answer_answered_with_citations() -> None:
    s = score_answer(answerable=True, golds=["$75 per day"], gold_sources=["policies/travel.md"],
                     prediction="$75 per day [1]", abstained=False,
                     documents=["policies/travel.md", "policies/leave.md"])
    # Citation marker stripped -> exact. One of two cited files is gold -> P 1/2, R 1.
    assert (s.exact_match, s.f1, s.contains) == (1.0, 1.0, 1.0)
    assert s.citation_precision == pytest.approx(0.5) and s.citation_recall == 1.0
    assert s.recall_at_k == 1.0


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("Score: 4 - one step missing", 4),
        ("**5**/5", 5),
        ("I would give it 3.", 3),
        ("4 out of 5", 4),
        ("Rating: 2/5. Misses 3 of 7 steps", 2),
        ("Score 10", None),
        ("no idea", None),
    ],
)
def test_parse_judge_score(reply: str, score: int | None) -> None:
    assert parse_judge_score(reply) == score


def test_judge_verdict_normalised_to_unit_interval() -> None:
    assert JudgeVerdict(1, "").normalized == 0.0
    assert JudgeVerdict(4, "").normalized == 0.75  # (4 - 1) / 4
    assert JudgeVerdict(None, "").normalized is None


def test_recall_at_k_is_measured_on_everything_retrieved_not_only_the_cited() -> None:
    from ragft.metrics import score_answer

    # Cited only b.md, but retrieval also found the gold a.md at rank 3: recall@3 = 1.
    scores = score_answer(answerable=True, golds=["x"], gold_sources=["a.md"], prediction="x",
                          abstained=False, documents=["b.md"], retrieved=["b.md", "c.md", "a.md"])
    assert scores.recall_at_k == 1.0 and scores.citation_recall == 0.0
    cited_only = score_answer(answerable=True, golds=["x"], gold_sources=["a.md"], prediction="x",
                              abstained=False, documents=["b.md"])
    assert cited_only.recall_at_k == 0.0


def test_normalisation_is_the_official_squad_one_unicode_punctuation_kept() -> None:
    from ragft.metrics import normalize_answer, token_f1

    # evaluate-v1.1.py removes only string.punctuation: curly quotes and dashes stay.
    # (and "the" after a curly quote is still an article: \b sees the word boundary)
    assert normalize_answer("\u201cThe Manning\u2019s\u201d  drive!") == "\u201c manning\u2019s\u201d drive"
    assert normalize_answer("1990\u20131995") == "1990\u20131995"
    assert normalize_answer("An apple, the pear.") == "apple pear"
    # So a curly-quoted prediction does not match the bare gold token exactly, as in the script.
    assert token_f1("\u201cDenver\u201d", "Denver") == 0.0


@pytest.mark.parametrize(
    ("prediction", "gold"),
    [
        ("Gostkowski kicked a 24-yard field goal.", "24"),
        ("It was Manning's second title.", "Manning"),
        ("The Six-time Pro Bowler retired.", "Six"),
        ("Peyton Manning\u2019s pass", "Manning"),
        ("a 24-yard field goal", "24-yard"),
        ("a 24 yard field goal", "24-yard"),
    ],
)
def test_contains_answer_finds_golds_glued_by_hyphens_or_apostrophes(prediction: str, gold: str) -> None:
    assert contains_answer(prediction, [gold]) == 1.0


def test_contains_answer_still_respects_word_and_number_boundaries() -> None:
    assert contains_answer("Lumen 4.5 shipped", ["5"]) == 0.0  # a dot is not a word break
    assert contains_answer("a 124-yard drive", ["24"]) == 0.0
    assert contains_answer("Manningham's catch", ["Manning"]) == 0.0
