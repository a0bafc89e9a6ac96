"""Argument types shared by several commands: each refuses bad input at the command line, with
the usage line, before any config, index or model is loaded."""

from __future__ import annotations

import argparse

__all__ = ["parse_count", "question_text"]

_SUFFIXES = {"k": 1_000, "m": 1_000_000}


def parse_count(text: str) -> int:
    """A non-negative count, allowing ``_``/``,`` separators and ``k``/``m`` suffixes
    (``10k`` -> 10000, ``1.5m`` -> 1500000)."""
    raw = text.strip().lower().replace("_", "").replace(",", "")
    scale = 1
    if raw and raw[-1] in _SUFFIXES:
        scale, raw = _SUFFIXES[raw[-1]], raw[:-1]
    try:
        value = float(raw) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count (e.g. 5000, 10k, 1.5m)") from None
    if value < 0 or value != int(value):
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number >= 0")
    return int(value)


def question_text(text: str) -> str:
    """A question or query: refuses empty text at the command line (the library would raise
    deep inside a strategy, after loading the index and models)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the question is empty; pass the text to answer, e.g. "
                                         "ragft ask \"How do I request a new laptop?\"")
    return text
