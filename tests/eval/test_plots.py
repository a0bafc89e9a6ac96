"""Charts: labels of tied points do not stack; the PNG renders."""

from __future__ import annotations

from pathlib import Path

from matplotlib.text import Text

from ragft.eval.harness import EvalResult, StrategySummary
from ragft.eval.plots import plot_quality_vs_cost, quality_cost_figure, spread_labels


def _result(scores: dict[str, float]) -> EvalResult:
    def summary(name: str, f1: float) -> StrategySummary:
        return StrategySummary(
            strategy=name, n=10, n_answerable=8, n_out_of_scope=2, errors=0, exact_match=0.0, f1=f1,
            contains=f1, judge=None, citation_precision=None, citation_recall=None, recall_at_k=None,
            mean_k=None, cost_total=0.0, cost_per_query=0.0, unpriced_calls=0, tokens_per_query=0.0,
            latency_p50=0.01, latency_p95=0.02, route_mix={}, abstention_rate_oos=None,
            hallucination_rate_oos=None, false_abstention_rate=None,
        )

    names = tuple(scores)
    return EvalResult(run_id="r", created_at="", strategies=names, question_ids=tuple(f"q{i}" for i in range(10)),
                      records=[], summaries={n: summary(n, f) for n, f in scores.items()})


def _overlaps(boxes: list) -> list[tuple[int, int]]:  # type: ignore[type-arg]
    return [(i, j) for i in range(len(boxes)) for j in range(i + 1, len(boxes)) if boxes[i].overlaps(boxes[j])]


def test_labels_of_tied_points_do_not_overlap_in_the_rendered_chart() -> None:
    # Offline every strategy costs $0; four of them also tie on quality.
    scores = {"rag": 0.3, "ft_rag": 0.3, "rewrite_rag": 0.3, "cascade": 0.3, "router": 0.31, "finetuned": 0.1}
    fig = quality_cost_figure(_result(scores))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    labels = [t for t in ax.texts if t.get_text() in scores]
    assert sorted(t.get_text() for t in labels) == sorted(scores)
    # the text itself, not the leader line an Annotation's extent includes
    assert _overlaps([Text.get_window_extent(t, renderer) for t in labels]) == []
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(scores)


def test_spread_labels_moves_only_labels_that_would_collide() -> None:
    offsets = spread_labels([(100, 100), (100, 100), (300, 100)], [40, 40, 40])
    assert offsets[0] == (6.0, 6.0) and offsets[2] == (6.0, 6.0)  # far apart: untouched
    assert offsets[1] == (6.0, 18.0)  # same point: one line up


def test_simulated_prices_are_marked_on_the_chart(tmp_path: Path) -> None:
    fig = quality_cost_figure(_result({"rag": 0.3}), simulated="gpt-4.1-mini")
    assert "SIMULATED" in fig.axes[0].get_xlabel()
    assert any("priced as gpt-4.1-mini" in t.get_text() for t in fig.axes[0].texts)
    assert plot_quality_vs_cost(_result({"rag": 0.3}), tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
