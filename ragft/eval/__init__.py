"""Evaluation: metrics, side-by-side runs, cost projections and the decision framework."""
