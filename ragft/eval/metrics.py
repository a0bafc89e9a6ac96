"""Kept so existing imports keep working: the retrieval metrics live in :mod:`ragft.metrics`."""

from ragft.metrics import mean_metric, mrr, ndcg_at_k, recall_at_k

__all__ = ["mean_metric", "mrr", "ndcg_at_k", "recall_at_k"]
