"""SQuAD 2.0 files as corpus, questions and training rows, split by article."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragft.errors import TrainingDataError
from ragft.eval.questions import load_questions
from ragft.finetune.squad import (
    load_squad,
    paragraph_path,
    question_record,
    split_by_article,
    write_squad_corpus,
)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "squad2-sample" / "squad2-sample.json"


def squad_file(path: Path) -> Path:
    def qa(qid: str, question: str, answers: list[str], impossible: bool = False) -> dict:
        return {"id": qid, "question": question, "is_impossible": impossible,
                "answers": [{"text": a, "answer_start": 0} for a in answers],
                "plausible_answers": [{"text": "x", "answer_start": 0}] if impossible else []}

    data = {"version": "v2.0", "data": [
        {"title": "Normans", "paragraphs": [
            {"context": "The Normans gave their name to Normandy in the 10th century.",
             "qas": [qa("n1", "When? ", ["10th century", "10th century", "the 10th century"]),
                     qa("n2", "Who conquered Mars?", [], impossible=True)]}]},
        {"title": "Sky (UK)", "paragraphs": [
            {"context": "Sky launched in 1989.", "qas": [qa("s1", "When did Sky launch?", ["1989"])]},
            {"context": "Sky is owned by Comcast.", "qas": [qa("s2", "Who owns Sky?", ["Comcast"])]}]},
    ]}
    path.write_text(json.dumps(data))
    return path


def test_articles_load_with_their_answers_and_paragraphs(tmp_path: Path) -> None:
    articles = load_squad(squad_file(tmp_path / "s.json"))
    assert [a.title for a in articles] == ["Normans", "Sky (UK)"]
    when, mars = articles[0].questions
    assert when.question == "When?" and when.answers == ("10th century", "the 10th century")
    assert when.answerable and not mars.answerable and mars.answers == ()
    assert articles[1].questions[1].paragraph == 1
    assert articles[1].questions[1].document == "Sky_UK/p01.txt" == paragraph_path("Sky (UK)", 1)


def test_the_split_keeps_every_test_article_out_of_training(tmp_path: Path) -> None:
    split = split_by_article(load_squad(squad_file(tmp_path / "s.json")), ["Sky (UK)"])
    assert [a.title for a in split.train] == ["Normans"] and [a.title for a in split.test] == ["Sky (UK)"]
    assert {q.id for q in split.questions("train")} == {"n1", "n2"}
    assert {q.id for q in split.questions("test")} == {"s1", "s2"}
    with pytest.raises(TrainingDataError, match=r"no article titled \['Skye'\]"):
        split_by_article(split.train + split.test, ["Skye"])
    with pytest.raises(TrainingDataError, match="at least one"):
        split_by_article(split.train + split.test, ["Sky (UK)", "Normans"])


def test_the_corpus_and_questions_are_what_ragft_indexes_and_evaluates(tmp_path: Path) -> None:
    split = split_by_article(load_squad(squad_file(tmp_path / "s.json")), ["Sky (UK)"])
    docs, qpath = write_squad_corpus(split.train, tmp_path / "train")
    assert (docs / "Normans" / "p00.txt").read_text().startswith("The Normans gave")
    questions = load_questions(qpath)
    assert [(q.id, q.kind, q.answerable) for q in questions] == [("n1", "factual", True), ("n2", "out_of_scope", False)]
    assert questions[0].golds == ("10th century", "the 10th century")
    assert questions[0].sources == ("Normans/p00.txt",)
    assert question_record(split.test[0].questions[0])["sources"] == ["Sky_UK/p00.txt"]


def test_malformed_files_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"data": [{"title": "T", "paragraphs": [{"qas": []}]}]}))
    with pytest.raises(TrainingDataError, match="not in SQuAD 2.0 layout.*context"):
        load_squad(bad)
    with pytest.raises(TrainingDataError, match="cannot read"):
        load_squad(tmp_path / "missing.json")


@pytest.mark.skipif(not SHARED.is_file(), reason="../shared/datasets/squad2-sample not present")
def test_the_shared_sample_splits_by_article() -> None:
    articles = load_squad(SHARED)
    assert sum(len(a.questions) for a in articles) == 1206
    assert sum(not q.answerable for a in articles for q in a.questions) == 599
    split = split_by_article(articles, ["Southern_California", "Sky_(United_Kingdom)"])
    train_docs = {q.document for q in split.questions("train")}
    test_docs = {q.document for q in split.questions("test")}
    assert train_docs and test_docs and not train_docs & test_docs
