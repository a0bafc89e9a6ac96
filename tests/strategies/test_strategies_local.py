"""Every strategy answers offline with real parts; routes say what happened; usage adds up."""

from __future__ import annotations

import pytest

from ragft.errors import ConfigError, ModelTimeoutError
from ragft.metering.meter import RollUp
from ragft.models.local import ABSTAIN_TEXT
from ragft.strategies import (
    RAG,
    REFUSAL_TEXT,
    BaseChat,
    Cascade,
    FineTuned,
    FineTunedGeneratorRAG,
    RewriteRAG,
    Router,
    RulesClassifier,
    is_abstention,
)
from ragft.models.grounded import GroundedGenerator
from ragft.rag.retriever import Retriever
from ragft.strategies.router import Classification


def test_rag_answers_with_citations_and_exact_usage(retriever, reader, meter) -> None:
    rag = RAG(retriever, reader, meter=meter)
    a = rag.answer("What is the meal per diem?")
    assert "$75" in a.text and not a.abstained
    assert a.sources and a.sources[0].document == "policies/travel_expenses.md"
    assert str(a.route).startswith("rag: ") and "-> local/extractive-reader" in str(a.route)
    # Everything retrieval returned is kept for recall@k; sources are what the answer cites.
    assert len(a.retrieved) == 4 and set(a.sources) <= set(a.retrieved)
    purposes = [c.purpose for c in a.calls]
    assert "generate" in purposes and "embed_query" in purposes
    assert a.cost_usd == 0.0 and a.input_tokens > 0
    assert RollUp.of(a.calls).calls == len(meter.records)  # nothing metered outside the answer
    assert all(c.tags["strategy"] == "rag" for c in a.calls)


def test_rag_abstains_without_a_model_call_when_nothing_is_retrieved(kb, reader, meter) -> None:
    strict = Retriever(kb.index, meter.embedder(kb.embedder), mode="dense", top_k=3, min_score=0.99)
    a = RAG(strict, reader, meter=meter).answer("Who painted the Mona Lisa?")
    assert a.abstained and a.text == ABSTAIN_TEXT and not a.sources
    assert "abstain" in str(a.route)
    assert [c.purpose for c in a.calls] == ["embed_query"]  # no generation call


def test_context_budget_limits_passages(retriever, reader, meter) -> None:
    rag = RAG(retriever, reader, meter=meter, context_tokens=50)
    passages, sources = rag.pack(retriever.retrieve("meal per diem"))
    assert len(passages) == 1 and len(sources) == 1  # the first always fits, the next would not


def test_finetuned_alone_answers_known_and_abstains_on_unknown(memory, meter) -> None:
    ft = FineTuned(memory, meter=meter)
    known = ft.answer("how do i request a new laptop")
    assert "Hardware Request" in known.text and known.confidence > 0.5 and not known.sources
    unknown = ft.answer("What is the capital of Australia?")
    assert unknown.abstained and unknown.confidence < 0.5


def test_cascade_keeps_confident_and_falls_back_otherwise(memory, retriever, reader, meter) -> None:
    cascade = Cascade(FineTuned(memory, meter=meter), RAG(retriever, reader, meter=meter), meter=meter, threshold=0.8)
    kept = cascade.answer("How do I request a new laptop?")
    assert str(kept.route).startswith("cascade: finetuned confidence") and ">= 0.80 -> finetuned" in str(kept.route)
    assert [c.purpose for c in kept.calls] == ["generate"]
    assert kept.retrieved == ()  # the fine-tuned model retrieved nothing
    fell = cascade.answer("What is the meal per diem?")
    assert len(fell.retrieved) == 4  # the fallback's retrieval is reported
    assert "-> rag |" in str(fell.route) and ("abstained" in str(fell.route) or "< 0.80" in str(fell.route))
    assert "$75" in fell.text
    # Both attempts were metered and are in the answer.
    models = [c.usage.model for c in fell.calls if c.purpose == "generate"]
    assert models == ["local-ft:generator:test:job1", "local/extractive-reader"]


def test_cascade_falls_back_on_model_errors(retriever, reader, meter) -> None:
    class Broken:
        name = "ft:gpt-4.1-mini-2025-04-14:acme::x"

        def complete(self, messages, **kw):
            raise ModelTimeoutError("request timed out after 2 retries", model=self.name)

    cascade = Cascade(FineTuned(Broken(), meter=meter), RAG(retriever, reader, meter=meter), meter=meter, threshold=0.5)
    a = cascade.answer("What is the meal per diem?")
    assert "finetuned failed (ModelTimeoutError" in str(a.route) and "$75" in a.text


def test_cascade_threshold_is_validated(memory, retriever, reader, meter) -> None:
    with pytest.raises(ConfigError):
        Cascade(FineTuned(memory, meter=meter), RAG(retriever, reader, meter=meter), meter=meter, threshold=1.2)


class FixedClassifier:
    labels = ("factual", "procedural", "creative", "out_of_scope")

    def __init__(self, verdicts):
        self.verdicts = verdicts

    def classify(self, query):
        return self.verdicts[query]


def test_router_dispatches_each_class_and_reports_it(memory, retriever, reader, meter) -> None:
    rag = RAG(retriever, reader, meter=meter)
    ft = FineTuned(memory, meter=meter)
    base = BaseChat(reader, meter=meter)
    verdicts = {
        "What is the meal per diem?": Classification("factual", 0.93, "factual"),
        "How do I request a new laptop?": Classification("procedural", 0.88, "procedural"),
        "Write a haiku about Mondays": Classification("creative", 0.71, "creative"),
        "Who won the 1998 World Cup?": Classification("out_of_scope", 0.97, "out_of_scope"),
        "gibberish": Classification(None, None, "I think it is a cat"),
        "low": Classification("procedural", 0.2, "procedural"),
    }
    router = Router(
        FixedClassifier(verdicts),
        {"factual": rag, "procedural": ft, "creative": base, "out_of_scope": "refuse"},
        meter=meter,
        default_route="rag",
        min_score=0.5,
    )
    a = router.answer("What is the meal per diem?")
    assert str(a.route).startswith("router: factual (0.93) -> rag | rag:") and "$75" in a.text
    b = router.answer("How do I request a new laptop?")
    assert str(b.route).startswith("router: procedural (0.88) -> finetuned") and "Hardware Request" in b.text
    c = router.answer("Write a haiku about Mondays")
    assert str(c.route).startswith("router: creative (0.71) -> base")
    d = router.answer("Who won the 1998 World Cup?")
    assert d.text == REFUSAL_TEXT and d.abstained and d.calls == ()
    e = router.answer("gibberish")
    assert str(e.route).startswith("router: unparsable label 'I think it is a cat' -> default rag")
    f = router.answer("low")
    assert "procedural (0.20) < min score 0.50 -> default rag" in str(f.route)


def test_router_config_errors(retriever, reader, meter) -> None:
    rag = RAG(retriever, reader, meter=meter)
    with pytest.raises(ConfigError, match="default_route"):
        Router(RulesClassifier(), {"factual": rag}, meter=meter, default_route="finetuned")
    with pytest.raises(ConfigError, match="give a strategy"):
        Router(RulesClassifier(), {"factual": "rag"}, meter=meter, default_route="refuse")


def test_rules_classifier() -> None:
    rules = RulesClassifier()
    assert rules.classify("Write a haiku about Mondays").label == "creative"
    assert rules.classify("How do I rotate an API key?").label == "procedural"
    assert rules.classify("What is the meal per diem?").label == "factual"
    assert rules.classify("blorp").label == "out_of_scope"


def test_rewrite_rag_shows_the_rewrite_and_answers_the_original(retriever, reader, meter) -> None:
    class Rewriter:
        name = "local-ft:rewriter:test:job2"

        def complete(self, messages, **kw):
            from ragft.answer import Usage
            from ragft.models.base import Completion

            return Completion("travel meal per diem daily allowance", Usage(model=self.name, input_tokens=9, output_tokens=6), self.name)

    rr = RewriteRAG(Rewriter(), RAG(retriever, reader, meter=meter), meter=meter)
    a = rr.answer("food money on trips?")
    assert str(a.route).startswith("rewrite_rag: 'food money on trips?' -> 'travel meal per diem daily allowance' -> rag")
    assert "$75" in a.text
    assert [c.purpose for c in a.calls][0] == "rewrite"
    assert sum(1 for c in a.calls if c.purpose == "embed_query") == 2  # rewrite + original, fused


def test_ft_generator_over_context_uses_memory_or_reads(memory, retriever, reader, meter) -> None:
    ftrag = FineTunedGeneratorRAG(retriever, GroundedGenerator(memory, reader), meter=meter)
    known = ftrag.answer("How do I request a new laptop?")
    assert "Hardware Request ticket" in known.text and str(known.route).startswith("ft_rag: ")
    read = ftrag.answer("What is the meal per diem?")
    assert "$75" in read.text and read.sources


def test_answer_many_keeps_order_and_separates_usage(retriever, reader, meter) -> None:
    rag = RAG(retriever, reader, meter=meter)
    qs = ["What is the meal per diem?", "How many PTO days do employees get?", "What is LUM-4031?"]
    serial = rag.answer_many(qs)
    threaded = rag.answer_many(qs, concurrency=3)
    assert [a.query for a in threaded] == qs
    assert [a.text for a in serial] == [a.text for a in threaded]
    for a in threaded:
        assert {c.tags["query"] for c in a.calls} == {a.query}


def test_async_and_streaming(retriever, reader, meter) -> None:
    import asyncio

    rag = RAG(retriever, reader, meter=meter)
    answers = asyncio.run(rag.aanswer_many(["What is the meal per diem?", "What is LUM-4031?"], concurrency=2))
    assert "$75" in answers[0].text
    stream = rag.stream("What is the meal per diem?")
    text = "".join(stream)
    assert stream.answer is not None and stream.answer.text == text and "$75" in text


def test_empty_query_is_rejected(retriever, reader, meter) -> None:
    from ragft.errors import QueryError

    rag = RAG(retriever, reader, meter=meter)
    with pytest.raises(QueryError, match="empty"):
        rag.answer("   ")
    with pytest.raises(QueryError, match="empty"):
        rag.stream("")
    assert meter.records == []  # nothing was called


def test_abstention_detection() -> None:
    assert is_abstention(ABSTAIN_TEXT) and is_abstention("I don't know.") and is_abstention(REFUSAL_TEXT)
    assert not is_abstention("The per diem is $75. I don't know about taxis.")


def test_citations_are_renumbered_to_the_listed_sources() -> None:
    from ragft.answer import Source

    shown = [Source(f"c{i}", f"doc{i}.md", 1.0 - i / 10, "") for i in range(4)]
    text, cited = RAG._cited("Per diem is $75 [3], receipts needed [1] and [3].", (), shown)
    assert [s.document for s in cited] == ["doc2.md", "doc0.md"]
    assert text == "Per diem is $75 [1], receipts needed [2] and [1]."
    same, everything = RAG._cited("No markers here.", (), shown)
    assert same == "No markers here." and len(everything) == 4
