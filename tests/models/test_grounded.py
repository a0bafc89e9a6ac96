"""The local fine-tuned generator over retrieved context: it answers what it was trained on
(citing the retrieved passage of the document its answer names), and reads the passages with
the extractive reader otherwise. Real local models on the hashing embedder."""

from __future__ import annotations

import pytest

from ragft.models.base import follows_prompts
from ragft.models.context import Passage, format_context
from ragft.models.grounded import GroundedGenerator
from ragft.models.local import ExtractiveReader, HashingEmbedder
from ragft.models.local_ft import LocalGeneratorModel
from ragft.prompts import ABSTAIN_TEXT, RAG_SYSTEM

ANSWER = "Open a Hardware Request ticket in the IT portal. (See: procedures/request_hardware.md)"
PASSAGES = [
    Passage("1", "policies/travel.md", "The meal per diem is 75 dollars per day when travelling."),
    Passage("2", "procedures/request_hardware.md", "To request a new laptop, open a Hardware Request ticket in the portal."),
]


@pytest.fixture(scope="module")
def embedder() -> HashingEmbedder:
    return HashingEmbedder(256)


@pytest.fixture(scope="module")
def memory(embedder: HashingEmbedder) -> LocalGeneratorModel:
    questions = ["How do I request a new laptop?", "How do I rotate an API key?"]
    answers = [ANSWER, "Create a new key, then revoke the old one. (See: procedures/rotate_api_keys.md)"]
    return LocalGeneratorModel("local-ft:generator:test:job1", embedder, embedder.embed(questions).vectors,
                               questions, answers, slope=12.0, intercept=-9.0)


def grounded(memory: LocalGeneratorModel, embedder: HashingEmbedder, threshold: float = 0.5) -> GroundedGenerator:
    return GroundedGenerator(memory, ExtractiveReader(embedder), threshold=threshold)


def ask(question: str, passages: list[Passage]) -> list[dict[str, str]]:
    return [{"role": "system", "content": RAG_SYSTEM},
            {"role": "user", "content": format_context(passages, question)}]


def test_a_trained_question_is_answered_from_memory_citing_the_retrieved_passage(memory, embedder) -> None:
    model = grounded(memory, embedder)
    out = model.complete(ask("How do I request a new laptop?", PASSAGES))
    assert out.text == ANSWER
    assert out.citations == ("2",)  # the passage from the document the answer names
    assert out.score is not None and out.score >= 0.5
    assert out.model == memory.name == model.name and out.usage.model == memory.name
    assert out.usage.input_tokens > 0 and out.usage.output_tokens > 0


def test_an_unknown_question_is_read_from_the_passages(memory, embedder) -> None:
    out = grounded(memory, embedder).complete(ask("What is the meal per diem when travelling?", PASSAGES))
    assert "75 dollars" in out.text and out.citations == ("1",)
    assert out.model == memory.name  # one call, billed as the fine-tuned model


def test_the_threshold_decides_when_memory_is_trusted(memory, embedder) -> None:
    out = grounded(memory, embedder, threshold=1.01).complete(ask("How do I request a new laptop?", PASSAGES))
    assert out.text != ANSWER and "Hardware Request ticket" in out.text and out.citations == ("2",)


def test_without_passages_memory_answers_or_abstains(memory, embedder) -> None:
    model = grounded(memory, embedder)
    assert model.complete(ask("How do I request a new laptop?", [])).text == ANSWER
    unknown = model.complete(ask("What is the CEO's salary?", []))
    assert unknown.text == ABSTAIN_TEXT and unknown.citations == ()


def test_it_declares_it_does_not_follow_arbitrary_prompts(memory, embedder) -> None:
    assert not follows_prompts(grounded(memory, embedder))
    assert not follows_prompts(memory) and not follows_prompts(ExtractiveReader(embedder))
