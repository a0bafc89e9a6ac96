"""Keep secrets out of everything ragft shows or writes.

A server (a proxy, an OpenAI-compatible server) may echo the API key it was sent back in an
error body — ``"Incorrect API key provided: sk-…"`` — and from there it would reach exception
messages, the terminal, the ledger and evaluation outputs. Every such text passes through
:func:`redact` first, which replaces

* every secret registered with :func:`register_secret` (``ragft.config`` registers the API
  key it reads; the HTTP server registers its client keys), wherever it appears, and
* anything shaped like a key even if it was never registered: ``sk-…`` tokens (OpenAI,
  Anthropic and most proxies use the prefix) and ``Bearer …`` credentials.

The set of registered secrets is process-wide on purpose: a key can surface in any layer
(an exception raised deep in the SDK, a traceback printed by the CLI), and each of those places
must be able to scrub it without the key being passed down to it. It only ever grows, is
guarded by a lock, and holds nothing but the strings to hide.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any

__all__ = ["MASK", "redact", "redact_data", "register_secret", "registered_count"]

#: What a secret is replaced with.
MASK = "***"

# Shorter values are too likely to occur by chance in normal text (and too weak to be keys).
_MIN_SECRET_LENGTH = 8

_KEY_SHAPED = re.compile(
    r"""
    \b(?:sk|rk|pk)-[A-Za-z0-9][A-Za-z0-9_\-]{6,}     # sk-..., sk-proj-..., rk-...
    | (?<=\bBearer\s)[^\s"',;]{4,}                    # Authorization: Bearer <token>
    """,
    re.VERBOSE | re.IGNORECASE,
)

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()


def register_secret(value: str | None) -> None:
    """Hide ``value`` from every text ragft shows or writes from now on.

    Values shorter than 8 characters are ignored (they would mask ordinary words); the
    surrounding whitespace is stripped, since that is how a key is sent.
    """
    if not value:
        return
    value = value.strip()
    if len(value) < _MIN_SECRET_LENGTH:
        return
    global _secrets
    with _lock:
        if value not in _secrets:
            # Longest first, so a key that contains another registered key is masked whole.
            _secrets = tuple(sorted((*_secrets, value), key=len, reverse=True))


def registered_count() -> int:
    """How many secrets are registered (for diagnostics; never the secrets themselves)."""
    return len(_secrets)


def redact(text: str) -> str:
    """``text`` with registered secrets and key-shaped tokens replaced by :data:`MASK`."""
    if not text:
        return text
    for secret in _secrets:  # a tuple snapshot: safe without the lock
        if secret in text:
            text = text.replace(secret, MASK)
    return _KEY_SHAPED.sub(_mask_match, text)


def _mask_match(match: re.Match[str]) -> str:
    token = match.group(0)
    # Keep the visible prefix ("sk-") so a reader still knows what kind of value was there.
    head, sep, _ = token.partition("-")
    if sep and head.lower() in {"sk", "rk", "pk"}:
        return f"{head}-{MASK}"
    return MASK


def redact_data(value: Any) -> Any:
    """A copy of a JSON-like value (dicts, lists, tuples, strings) with every string redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(k) if isinstance(k, str) else k: redact_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items: Iterable[Any] = (redact_data(v) for v in value)
        return list(items) if isinstance(value, list) else tuple(items)
    return value
