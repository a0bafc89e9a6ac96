"""Answer-matching metrics as pure functions: SQuAD-style normalisation, exact match, token F1.

These are the standard extractive-QA metrics (Rajpurkar et al., SQuAD v1.1 ``evaluate-v1.1.py``):
both strings are lower-cased, punctuation and the articles *a/an/the* are removed and whitespace
is collapsed before comparing. Exact match is 1.0 when the normalised strings are equal; token
F1 is the harmonic mean of precision and recall over the bag of normalised tokens.

They live at the top of the package (not under ``eval`` or ``finetune``) because both the
fine-tuning evaluator and the evaluation harness score answers the same way.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter

__all__ = ["exact_match", "normalize_answer", "token_f1"]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
# Unicode punctuation as well as ASCII: curly quotes and dashes are common in model output.
_PUNCT = frozenset(string.punctuation)


def _is_punct(ch: str) -> bool:
    return ch in _PUNCT or unicodedata.category(ch).startswith("P")


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and the articles a/an/the, collapse whitespace.

    >>> normalize_answer("The  Refund-Policy, explained!")
    'refundpolicy explained'
    """
    text = text.lower()
    text = "".join(ch for ch in text if not _is_punct(ch))
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised strings are identical, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """Token-overlap F1 between normalised ``prediction`` and ``gold`` in ``[0, 1]``.

    Two empty answers agree (1.0); one empty and one not share nothing (0.0), as in SQuAD.
    """
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = Counter(pred_tokens) & Counter(gold_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)
