"""Kept so existing imports keep working: the answer metrics live in :mod:`ragft.metrics`."""

from ragft.metrics import exact_match, normalize_answer, token_f1

__all__ = ["exact_match", "normalize_answer", "token_f1"]
