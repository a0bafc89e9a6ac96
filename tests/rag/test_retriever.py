"""Retrieval: modes, fusion, thresholds, batching, snippets, rerankers, and semantic search."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from ragft.answer import Usage
from ragft.errors import ConfigError, IndexStoreError
from ragft.models.base import Completion, Message
from ragft.models.local import HashingEmbedder
from ragft.rag.knowledge import KnowledgeBase
from ragft.rag.rerank import EmbeddingReranker, LLMReranker, parse_relevance
from ragft.rag.retriever import SNIPPET_CHARS, Hit, Retriever, make_snippet


@pytest.fixture
def kb(tmp_path, corpus_dir, embedder) -> KnowledgeBase:
    kb = KnowledgeBase.open(tmp_path / "kb", embedder, chunk_tokens=60, chunk_overlap=10)
    kb.sync(corpus_dir, progress=False)
    return kb


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_each_mode_finds_the_matching_section(kb, mode) -> None:
    hits = kb.retriever(mode=mode, top_k=3).retrieve("meal per diem")
    assert hits[0].chunk.document_id == "policies/travel.md"
    assert hits[0].chunk.heading == "Travel Policy > Meals"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len(hits) <= 3


def test_hybrid_hits_carry_both_scores_and_the_fused_score(kb) -> None:
    hits = kb.retriever(mode="hybrid", top_k=4, fusion="rrf", rrf_k=60).retrieve("parental leave weeks")
    top = hits[0]
    assert top.chunk.document_id == "policies/leave.md"
    assert top.dense_score is not None and top.lexical_score is not None
    assert top.score == pytest.approx(2 / 61)  # first in both rankings: 1/(60+1) twice
    weighted = kb.retriever(mode="hybrid", fusion="weighted", dense_weight=0.3).retrieve(
        "parental leave weeks"
    )
    assert weighted[0].chunk.id == top.chunk.id
    assert 0.0 <= weighted[-1].score <= weighted[0].score <= 1.0


def test_min_score_applies_to_the_dense_cosine_so_nothing_relevant_is_detectable(kb) -> None:
    query = "zebra migration serengeti"
    assert kb.retriever(mode="hybrid", min_score=0.0).retrieve(query) != []  # something ranks
    assert kb.retriever(mode="hybrid", min_score=0.2).retrieve(query) == []
    assert kb.retriever(mode="dense", min_score=0.2).retrieve(query) == []
    relevant = kb.retriever(mode="hybrid", min_score=0.2).retrieve("hotel rooms per night")
    assert relevant and all(h.dense_score >= 0.2 for h in relevant)


def test_retrieve_many_embeds_all_queries_in_one_call(kb, embedder) -> None:
    retriever = kb.retriever(mode="hybrid", top_k=2, fusion="rrf")
    before = len(embedder.calls)
    queries = ["meal per diem", "webhook retries", "vacation days"]
    many = retriever.retrieve_many(queries)
    assert embedder.calls[before:] == [("query", 3)]
    assert [hits[0].chunk.document_id for hits in many] == [
        "policies/travel.md",
        "product/webhooks.md",
        "policies/leave.md",
    ]
    assert [h.chunk.id for h in many[1]] == [h.chunk.id for h in retriever.retrieve(queries[1])]


def test_source_snippet_is_short_and_centred_on_the_best_sentence(kb) -> None:
    hit = kb.retriever(mode="bm25", top_k=1).retrieve("alcohol reimbursed")[0]
    src = hit.source
    assert src.document == "policies/travel.md" and src.chunk_id == hit.chunk.id
    assert "Alcohol is never reimbursed." in src.snippet
    assert len(src.snippet) <= SNIPPET_CHARS


def test_make_snippet_cuts_long_text_around_the_match() -> None:
    text = " ".join(f"Filler sentence {i} says nothing." for i in range(30))
    text += " The answer is forty two. " + " ".join(f"More filler {i}." for i in range(30))
    snip = make_snippet(text, "what is the answer")
    assert "The answer is forty two." in snip and len(snip) <= 240
    long_sentence = "word " * 100 + "needle here " + "word " * 100
    snip = make_snippet(long_sentence, "needle")
    assert "needle" in snip and len(snip) <= 240 and snip.startswith("…")


def test_a_retriever_refuses_an_index_built_by_another_embedder(kb) -> None:
    with pytest.raises(IndexStoreError, match="--rebuild"):
        Retriever(kb.index, HashingEmbedder(64), kb.bm25)
    with pytest.raises(ConfigError, match="BM25"):
        Retriever(kb.index, kb.embedder, None, mode="hybrid")


def test_embedding_reranker_reorders_by_cosine(kb) -> None:
    reranker = EmbeddingReranker(kb.embedder, weight=1.0)
    hits = kb.retriever(mode="bm25", top_k=5, reranker=reranker).retrieve("hotel rooms night")
    assert hits[0].chunk.heading == "Travel Policy > Hotels"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


class ScriptedChat:
    """A real ChatModel whose replies are given up front, one per call."""

    name = "test/scripted"

    def __init__(self, replies: Sequence[str]):
        self.replies = list(replies)
        self.prompts: list[Sequence[Message]] = []

    def complete(self, messages, *, max_tokens=None, temperature=0.0, logprobs=False) -> Completion:
        self.prompts.append(messages)
        text = self.replies.pop(0)
        usage = Usage(model=self.name, input_tokens=10, output_tokens=1)
        return Completion(text=text, usage=usage, model=self.name)


def test_llm_reranker_sorts_rated_hits_and_keeps_unparsable_in_place(kb) -> None:
    hits = kb.retriever(mode="hybrid", top_k=4, candidates=4).retrieve("travel policy")
    assert len(hits) == 4
    chat = ScriptedChat(["3", "I cannot say", "Score: 9", "7/10"])
    out = LLMReranker(chat).rerank("travel policy", hits, top_k=4)
    assert len(chat.prompts) == 4
    assert "<passage" in chat.prompts[0][1]["content"]  # the passage is fenced as data
    # Rated slots 0, 2, 3 receive the rated hits by rating (9, 7, 3); slot 1 keeps its hit.
    assert [h.chunk.id for h in out] == [hits[i].chunk.id for i in (2, 1, 3, 0)]
    assert [h.score for h in (out[0], out[2], out[3])] == [0.9, 0.7, 0.3]
    assert out[1].score == hits[1].score


@pytest.mark.parametrize(
    "reply, expected",
    [("7", 7.0), (" 10\n", 10.0), ("Score: 8", 8.0), ("relevance is 6.5", 6.5), ("3/10", 3.0),
     ("I'd rate it 4 out of 10", 4.0), ("**9**", 9.0), ("42", None), ("no idea", None), ("", None)],
)
def test_parse_relevance(reply, expected) -> None:
    assert parse_relevance(reply) == expected


def test_hit_is_a_frozen_value(kb) -> None:
    hit = kb.retriever(mode="dense", top_k=1).retrieve("webhooks")[0]
    assert isinstance(hit, Hit)
    with pytest.raises(AttributeError):
        hit.score = 1.0  # type: ignore[misc]


def test_semantic_retrieval_beats_lexical_on_a_paraphrase(tmp_path, make_corpus) -> None:
    pytest.importorskip("onnxruntime")
    from ragft.models.local import MiniLMEmbedder

    docs = make_corpus(
        tmp_path / "docs",
        {
            "pets.md": "# Pets\n\nDogs are not allowed in the office, except for guide dogs.",
            "cars.md": "# Parking\n\nCars must be parked in the underground garage at night.",
            "food.md": "# Kitchen\n\nThe office kitchen is cleaned every afternoon by staff.",
        },
    )
    query = "Can I bring my puppy to work?"  # shares no content word with pets.md
    semantic = KnowledgeBase.open(tmp_path / "minilm", MiniLMEmbedder())
    semantic.sync(docs, progress=False)
    lexical = KnowledgeBase.open(tmp_path / "hashing", HashingEmbedder(256))
    lexical.sync(docs, progress=False)
    top_semantic = semantic.retriever(mode="dense", top_k=1).retrieve(query)
    assert top_semantic[0].chunk.document_id == "pets.md"
    assert top_semantic[0].score > 0.3
    assert lexical.retriever(mode="bm25").retrieve(query) == []  # no shared term at all
    top_lexical = lexical.retriever(mode="dense", top_k=3).retrieve(query)
    assert all(h.score < 0.1 for h in top_lexical)  # hashing vectors share nothing either


def test_a_query_longer_than_the_embedders_window_is_truncated_with_a_warning(
    tmp_path, make_corpus
) -> None:
    pytest.importorskip("onnxruntime")
    from ragft.models.local import MiniLMEmbedder
    from ragft.rag.retriever import QueryTruncatedWarning

    minilm = MiniLMEmbedder()
    result = minilm.embed(["short", "word " * 400, "also short"], kind="query")
    assert result.truncated == (1,)  # the embedder says which inputs it cut
    docs = make_corpus(tmp_path / "docs", {"pets.md": "# Pets\n\nDogs are welcome on Fridays."})
    kb = KnowledgeBase.open(tmp_path / "kb", minilm)
    kb.sync(docs, progress=False)
    retriever = kb.retriever(mode="dense", top_k=1)
    with pytest.warns(QueryTruncatedWarning, match=r"longer than the 256-token window"):
        hits = retriever.retrieve("Are dogs welcome? " + "Please tell me more. " * 200)
    assert hits[0].chunk.document_id == "pets.md"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        retriever.retrieve("Are dogs welcome?")  # a short query warns about nothing
