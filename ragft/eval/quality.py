"""Kept so existing imports keep working: per-question scoring lives in :mod:`ragft.metrics`."""

from ragft.metrics import (
    AnswerScores,
    Outcome,
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

__all__ = [
    "AnswerScores",
    "Outcome",
    "abstention_outcome",
    "answer_parts",
    "best_exact_match",
    "best_token_f1",
    "citation_scores",
    "contains_answer",
    "doc_path",
    "retrieval_recall",
    "score_answer",
    "strip_citations",
]
