"""PNG charts of evaluation results: quality vs cost per strategy, quality vs context size.

Matplotlib's Agg canvas is used directly, never pyplot, so the charts render headless and leave
global state alone. Labels of points that coincide (every strategy at $0 offline, equal scores)
are spread apart and tied to their point by a thin line, and a legend names every marker, so a
chart stays readable whatever the values.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragft.errors import EvaluationError
from ragft.storage import atomic_write_bytes

if TYPE_CHECKING:
    from ragft.eval.context_size import ContextCurve
    from ragft.eval.harness import EvalResult

__all__ = ["plot_context_curve", "plot_quality_vs_cost", "quality_cost_figure", "spread_labels"]

_MARKERS = "osD^vP*Xh<>p"
_METRIC_LABELS = {"f1": "token F1", "exact_match": "exact match", "contains": "contains answer",
                  "judge": "judge score (1-5)"}
#: Label box in points: text is 9 pt high; strategy names are rarely wider than 70 pt.
_LINE_PT = 12.0


def spread_labels(points: Sequence[tuple[float, float]], widths: Sequence[float],
                  *, height: float = _LINE_PT, start: float = 6.0) -> list[tuple[float, float]]:
    """Label offsets (in points) for points given in points (display units), so that no two
    label boxes overlap: each label starts ``start`` up and right of its point and moves up one
    line at a time past any label already placed over it. Pure, so it is tested on its own."""
    placed: list[tuple[float, float, float]] = []  # (left, bottom, width) of each placed label
    offsets: list[tuple[float, float]] = [(0.0, 0.0)] * len(points)
    order = sorted(range(len(points)), key=lambda i: (points[i][1], points[i][0]))
    for i in order:
        x, y = points[i]
        left, bottom = x + start, y + start
        moved = True
        while moved:
            moved = False
            for pl, pb, pw in placed:
                if left < pl + pw and pl < left + widths[i] and abs(bottom - pb) < height:
                    bottom = pb + height
                    moved = True
        placed.append((left, bottom, widths[i]))
        offsets[i] = (left - x, bottom - y)
    return offsets


def _figure() -> tuple[Any, Any]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - matplotlib is a dependency, but be clear if missing
        raise EvaluationError("plotting needs matplotlib: pip install matplotlib") from None
    fig = Figure(figsize=(7, 4.5), dpi=110)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _annotate(ax: Any, names: Sequence[str], xs: Sequence[float], ys: Sequence[float]) -> None:
    fig = ax.figure
    to_pt = 72.0 / fig.dpi
    disp = ax.transData.transform(list(zip(xs, ys, strict=True)))
    points = [(float(px) * to_pt, float(py) * to_pt) for px, py in disp]
    widths = [5.6 * len(n) + 4 for n in names]  # ~9 pt sans-serif
    for name, x, y, (dx, dy) in zip(names, xs, ys, spread_labels(points, widths), strict=True):
        moved = dy > 6.5
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=9,
                    va="bottom", arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.5"} if moved else None)


def quality_cost_figure(result: EvalResult, *, metric: str = "f1", simulated: str | None = None) -> Any:
    """The quality-vs-cost chart as a matplotlib ``Figure`` (see :func:`plot_quality_vs_cost`)."""
    names = list(result.strategies)
    xs = [result.summaries[n].cost_per_query for n in names]
    ys = [result.summaries[n].quality(metric) or 0.0 for n in names]
    fig, ax = _figure()
    fig.set_size_inches(8, 4.5)
    positive = [x for x in xs if x > 0]
    linthresh = min(positive) / 2 if positive else 1e-6
    ax.set_xscale("symlog", linthresh=linthresh)
    for i, (name, x, y) in enumerate(zip(names, xs, ys, strict=True)):
        ax.scatter([x], [y], s=60, zorder=3, marker=_MARKERS[i % len(_MARKERS)], label=name, alpha=0.85)
    # A little room left of $0 so free strategies' markers are not cut in half by the axis.
    ax.set_xlim(left=-linthresh * 0.4, right=max([*xs, linthresh]) * 3)
    ax.set_ylim(0.9, 5.1) if metric == "judge" else ax.set_ylim(-0.04, 1.05)
    ax.set_xlabel("cost per query (USD, symlog)" + (" - SIMULATED" if simulated else ""))
    if simulated:
        ax.text(0.5, 0.96, f"SIMULATED costs: local models priced as {simulated}", transform=ax.transAxes,
                ha="center", va="top", fontsize=9, color="darkred", weight="bold")
    ax.set_ylabel(_METRIC_LABELS[metric])
    ax.set_title(f"quality vs cost ({len(result.question_ids)} questions)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)  # beside, not over, the points
    if not positive:
        ax.text(0.5, 0.96, "all strategies ran locally: $0 per query", transform=ax.transAxes,
                ha="center", va="top", fontsize=9, style="italic")
    fig.tight_layout()
    _annotate(ax, names, xs, ys)
    return fig


def _save(fig: Any, path: str | Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def plot_quality_vs_cost(result: EvalResult, path: str | Path, *, metric: str = "f1",
                         simulated: str | None = None) -> Path:
    """A PNG scatter: cost per query (x) against ``metric`` (y), one labelled point per strategy.

    The x axis is symmetric-log so free ($0) local strategies sit on the axis next to priced
    ones; when every strategy is free the plot says so. ``simulated`` (the price table applied to
    local models, e.g. ``gpt-4.1-mini``) is printed on the axis: those costs are not real.
    """
    return _save(quality_cost_figure(result, metric=metric, simulated=simulated), path)


def plot_context_curve(curve: ContextCurve, path: str | Path) -> Path:
    """A PNG of answer quality and context tokens as retrieval depth (top_k) grows, with the
    share of questions whose gold passage was packed at all."""
    fig, ax = _figure()
    ks = [p.top_k for p in curve.points]
    ax.plot(ks, [p.contains for p in curve.points], marker="o", label="contains answer")
    ax.plot(ks, [p.f1 for p in curve.points], marker="s", label="token F1")
    ax.plot(ks, [p.gold_in_context for p in curve.points], marker="^", linestyle="--",
            label="gold passage in context")
    ax.set_xlabel("top_k (passages packed into the context)")
    ax.set_ylabel("share of answerable questions")
    ax.set_ylim(-0.04, 1.05)
    ax.grid(True, alpha=0.3)
    tokens = ax.twinx()
    tokens.plot(ks, [p.context_tokens for p in curve.points], color="0.4", marker="x", linestyle=":",
                label="prompt tokens / query (right axis)")
    tokens.set_ylabel("prompt tokens per query")
    ax.set_xticks(ks)
    lines = ax.get_legend_handles_labels()
    more = tokens.get_legend_handles_labels()
    # Below the axes: inside, the legend would hide some of the curves.
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper center", bbox_to_anchor=(0.5, -0.16),
              ncol=2, fontsize=8, frameon=False)
    ax.set_title(f"rag quality vs context size ({curve.n_questions} answerable questions)")
    fig.set_size_inches(7, 5.2)
    fig.tight_layout()
    return _save(fig, path)
