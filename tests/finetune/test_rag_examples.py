"""Training data for the generator over retrieved context: built from the same retrieval,
packing and fencing as the RAG strategy, so the tuned model is trained on exactly the prompt it
is later sent; cited answers where a passage holds the answer, the abstention sentence where
none does."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from ragft.answer import Usage
from ragft.errors import TrainingDataError
from ragft.finetune.rag_examples import citing_passage, rag_generator_examples
from ragft.metering.meter import Meter
from ragft.models.base import Completion, Message
from ragft.models.context import Passage, parse_context
from ragft.models.local import HashingEmbedder
from ragft.prompts import ABSTAIN_TEXT, RAG_SYSTEM
from ragft.rag.knowledge import KnowledgeBase
from ragft.strategies import RAG

DOCS = {
    "travel.md": "# Travel\nThe meal per diem is $75 per day for full travel days. Hotels are capped at $250 a night.",
    "laptops.md": "# Laptops\nRequest a new laptop in ServiceHub under Hardware. Standard models ship in 5 days.",
    "pto.md": "# Leave\nEmployees get 25 days of paid time off per year, plus public holidays.",
}


class RecordingModel:
    """A chat model that remembers the messages it was sent and answers a fixed text."""

    name = "gpt-4.1-mini"

    def __init__(self) -> None:
        self.sent: list[list[Message]] = []

    def complete(self, messages: Sequence[Message], *, max_tokens: int | None = None,
                 temperature: float = 0.0, logprobs: bool = False) -> Completion:
        self.sent.append([dict(m) for m in messages])
        return Completion(text="ok [1]", usage=Usage(model=self.name, input_tokens=1), model=self.name)


@pytest.fixture(scope="module")
def retriever(tmp_path_factory: pytest.TempPathFactory):
    docs = tmp_path_factory.mktemp("docs")
    for name, text in DOCS.items():
        (docs / name).write_text(text + "\n")
    kb = KnowledgeBase.open(tmp_path_factory.mktemp("kb") / "index", HashingEmbedder(256))
    kb.sync(docs, progress=False)
    return kb.retriever(top_k=2)


@pytest.mark.parametrize("context_tokens", [2000, 20])
def test_the_training_prompt_is_exactly_what_rag_sends(retriever, context_tokens: int) -> None:
    question = "What is the meal per diem when travelling?"
    examples, _ = rag_generator_examples(
        [{"question": question, "answer": "$75 per day"}], retriever,
        top_k=2, context_tokens=context_tokens, token_model="gpt-4.1-mini")
    model = RecordingModel()
    RAG(retriever, model, meter=Meter(), top_k=2, context_tokens=context_tokens).answer(question)
    assert examples[0]["messages"][:2] == model.sent[0]
    assert examples[0]["messages"][0] == {"role": "system", "content": RAG_SYSTEM}
    assert len(parse_context(examples[0]["messages"][1]["content"])) == (2 if context_tokens == 2000 else 1)


def test_answers_cite_the_passage_that_holds_them_and_abstain_otherwise(retriever) -> None:
    rows = [
        {"question": "How many days of paid time off do employees get?", "answer": "25 days"},
        {"question": "What is the hotel cap per night?", "answer": "$250 a night",
         "aliases": ["$250"]},
        {"question": "What is the meal per diem?", "answer": ""},  # unanswerable by label
        {"question": "What is the meal per diem?", "answer": "$80 per day"},  # not in any passage
        {"question": "How do I get a new laptop?", "answer": "Use ServiceHub. (See: laptops.md)"},
        {"question": "Who founded the company?", "answer": "Ada", "kind": "out_of_scope"},
    ]
    examples, stats = rag_generator_examples(rows, retriever, top_k=2)
    replies = [e["messages"][2]["content"] for e in examples]
    for reply, example in zip(replies[:2], examples[:2]):
        passages = parse_context(example["messages"][1]["content"])
        cited = int(reply.rsplit("[", 1)[1].rstrip("]"))
        assert reply.startswith(("25 days", "$250 a night"))
        assert any(g in passages[cited - 1].text for g in ("25 days", "$250 a night"))
    assert replies[2] == ABSTAIN_TEXT and replies[3] == ABSTAIN_TEXT and replies[5] == ABSTAIN_TEXT
    # A "(See: path)" answer is not verbatim in the docs: it cites its named source document.
    laptop = parse_context(examples[4]["messages"][1]["content"])
    assert replies[4].startswith("Use ServiceHub. [") and "(See:" not in replies[4]
    assert laptop[int(replies[4][-2]) - 1].source.endswith("laptops.md")
    assert (stats.answered, stats.unanswerable, stats.not_retrieved) == (3, 2, 1)
    assert stats.lines_not_retrieved == [4]


def test_matching_is_on_whole_normalised_words() -> None:
    passages = [Passage("1", "a.md", "It costs 100 dollars."), Passage("2", "b.md", "It costs 10 dollars.")]
    assert citing_passage(passages, ["10"]) == passages[1]
    assert citing_passage(passages, ["The 100 Dollars!"]) == passages[0]
    assert citing_passage(passages, ["1000"]) is None
    assert citing_passage(passages, ["nope"], sources=["b.md"]) == passages[1]


def test_bad_rows_are_named_by_line(retriever) -> None:
    with pytest.raises(TrainingDataError, match="line 2: 'question' is missing"):
        rag_generator_examples([{"question": "ok?", "answer": "x"}, {"answer": "y"}], retriever)
    with pytest.raises(TrainingDataError, match="line 1: 'answer' must be a string"):
        rag_generator_examples([{"question": "ok?", "answer": 3}], retriever)
    with pytest.raises(TrainingDataError, match="no rows"):
        rag_generator_examples([], retriever)
