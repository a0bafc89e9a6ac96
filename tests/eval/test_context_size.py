"""The context-size curve on a real knowledge base: depth, gold position, tokens, the chart."""

from __future__ import annotations

from pathlib import Path

from ragft.eval.context_size import measure_context_curve, position_bucket
from ragft.eval.plots import plot_context_curve
from ragft.eval.questions import Question
from ragft.metering.meter import Meter
from ragft.models.local import ExtractiveReader
from ragft.rag.knowledge import KnowledgeBase
from ragft.strategies import RAG


def test_curve_over_depths_with_gold_positions(knowledge_base: KnowledgeBase, questions: list[Question],
                                               meter: Meter, tmp_path: Path) -> None:
    retriever = knowledge_base.retriever(mode="dense", top_k=3)
    reader = ExtractiveReader()

    def build(k: int) -> RAG:
        return RAG(retriever, reader, meter=meter, top_k=k, name=f"rag@{k}")

    curve = measure_context_curve(build, questions, meter=meter, depths=(1, 3))
    assert [p.top_k for p in curve.points] == [1, 3] and curve.n_questions == 3
    one, three = curve.points
    assert one.n == three.n == 3
    # More passages: the gold document is retrieved at least as often, and the prompt grows.
    assert three.gold_retrieved >= one.gold_retrieved > 0
    assert three.context_tokens > one.context_tokens
    assert one.mean_gold_rank == 1.0  # at depth 1 a gold passage in context is at rank 1
    assert set(curve.by_position) <= {"1", "2", "3"} and curve.by_position["1"]["n"] >= 1
    assert curve.simulated_prices is None
    assert "gold in context" in curve.summary()
    assert plot_context_curve(curve, tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_position_buckets() -> None:
    assert [position_bucket(r) for r in (1, 2, 3, 4, 5, 6, 10, 11, 40)] == [
        "1", "2", "3", "4-5", "4-5", "6-10", "6-10", "11+", "11+"]
