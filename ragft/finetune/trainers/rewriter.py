"""The local *rewriter*: query-word → rewrite-term associations plus a nearest-neighbour vote
of similar training queries' rewrites; mixing weight and threshold are tuned for token F1 on
validation data (or leave-one-out)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ragft.metrics import token_f1
from ragft.errors import TrainingDataError
from ragft.finetune.data import message_text
from ragft.finetune.learners.progress import StepCallback
from ragft.finetune.trainers.base import TrainedModel, TrainingRun, embed_texts
from ragft.models.base import Embedder
from ragft.models.local_ft import rewrite_query
from ragft.textutil import content_words

__all__ = ["train", "train_rewriter"]


def _rewriter_stats(
    pairs: Sequence[tuple[str, str]],
) -> tuple[dict[str, dict[str, float]], dict[str, float], list[list[str]]]:
    df: Counter[str] = Counter()
    kept: Counter[str] = Counter()
    co: dict[str, Counter[str]] = defaultdict(Counter)
    terms: list[list[str]] = []
    for query, rewrite in pairs:
        q = list(dict.fromkeys(content_words(query)))
        r = list(dict.fromkeys(content_words(rewrite)))
        terms.append(r)
        rset = set(r)
        for t in q:
            df[t] += 1
            if t in rset:
                kept[t] += 1
            for u in r:
                if u not in q:
                    co[t][u] += 1
    # Add-one smoothing: a word seen once with a term gets P = 0.5, not a certain 1.0.
    assoc = {
        t: {u: c / (df[t] + 1) for u, c in counts.most_common(25) if c / (df[t] + 1) >= 0.2}
        for t, counts in co.items()
    }
    keep = {t: (kept[t] + 1) / (df[t] + 2) for t in df}
    return {t: a for t, a in assoc.items() if a}, keep, terms


def train_rewriter(
    train: Sequence[Mapping[str, Any]],
    validation: Sequence[Mapping[str, Any]],
    embedder: Embedder,
    *,
    max_terms: int = 12,
    neighbours: int = 5,
    on_step: StepCallback | None = None,
) -> TrainedModel:
    """Learn query-word associations and tune (alpha, threshold) for token F1.

    Tuned on ``validation`` when it has at least 5 examples, else by leave-one-out over the
    training pairs (each pair rewritten by a model built from all the others).
    """
    pairs = [(message_text(ex, "user"), message_text(ex, "assistant", last=True)) for ex in train]
    if len(pairs) < 2:
        raise TrainingDataError("the local rewriter needs at least 2 training examples")
    assoc, keep, terms = _rewriter_stats(pairs)
    vectors = embed_texts(embedder, [q for q, _ in pairs])
    val_pairs = [(message_text(ex, "user"), message_text(ex, "assistant", last=True)) for ex in validation]
    use_val = len(val_pairs) >= 5
    cases: list[tuple[str, str, Any, dict[str, dict[str, float]], dict[str, float], int | None]]
    if use_val:
        val_vecs = embed_texts(embedder, [q for q, _ in val_pairs])
        cases = [(q, g, vec, assoc, keep, None) for (q, g), vec in zip(val_pairs, val_vecs,
                                                                         strict=True)]
    else:
        cases = []
        for i, (q, g) in enumerate(pairs):
            a_i, k_i, _ = _rewriter_stats(pairs[:i] + pairs[i + 1 :])
            cases.append((q, g, vectors[i], a_i, k_i, i))
    alphas = (0.0, 0.25, 0.5, 0.75, 1.0)
    thresholds = tuple(round(0.05 * k, 2) for k in range(2, 15))
    best = (-1.0, 0.5, 0.3)
    for step, alpha in enumerate(alphas, start=1):
        for threshold in thresholds:
            f1 = float(np.mean([
                token_f1(rewrite_query(q, vec, vectors, terms, a, k, alpha=alpha,
                                       threshold=threshold, max_terms=max_terms,
                                       neighbours=neighbours, exclude=ex)[0], g)
                for q, g, vec, a, k, ex in cases
            ]))
            if f1 > best[0] + 1e-9:
                best = (f1, alpha, threshold)
        if on_step:
            on_step(step, len(alphas), {"best_f1": best[0], "alpha": alpha})
    f1, alpha, threshold = best
    identity = float(np.mean([token_f1(c[0], c[1]) for c in cases]))
    metrics = {
        "valid_f1" if use_val else "loo_f1": f1,
        "identity_f1": identity,
        "tuned_on_examples": float(len(cases)),
    }
    return TrainedModel(
        arrays={"queries": vectors},
        data={"rewrite_terms": terms, "associations": assoc, "keep": keep},
        manifest={"params": {"alpha": alpha, "threshold": threshold, "max_terms": max_terms,
                             "neighbours": neighbours}},
        metrics=metrics,
    )


def train(run: TrainingRun) -> TrainedModel:
    """:func:`train_rewriter` for a job (epochs and seed do not apply: the fit is a search)."""
    return train_rewriter(run.train, run.validation, run.embedder, on_step=run.on_step)
