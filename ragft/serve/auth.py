"""API keys for ``ragft serve``: who may call the API, and under which label they are counted.

Keys are never kept as given: each is reduced to its SHA-256 digest when the :class:`KeyRing`
is built (a config may list the digest itself as ``"sha256:<hex>"``), and a presented key is
hashed and compared with *every* digest using :func:`hmac.compare_digest`, so neither the
comparison nor the loop ends early on a partial or an earlier match. Callers are identified
by a label (``key-1``, ``key-2`` … in configuration order) derived from the position, never
from the secret, so logs, metrics and the ledger can name a caller without holding its key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence

from ragft.errors import ConfigError

__all__ = ["ANONYMOUS", "KeyRing"]

#: The label of every caller when no key is configured (the API is open).
ANONYMOUS = "anonymous"
_DIGEST = re.compile(r"^sha256:([0-9a-fA-F]{64})$")


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class KeyRing:
    """The accepted API keys, as digests, each with a label.

    >>> ring = KeyRing(["k1", "sha256:" + hashlib.sha256(b"k2").hexdigest()])
    >>> ring.identify("Bearer k2"), ring.identify("Bearer nope"), ring.identify(None)
    ('key-2', None, None)
    """

    def __init__(self, keys: Sequence[str]):
        entries: list[tuple[str, bytes]] = []
        for position, key in enumerate(keys, start=1):
            if not key or key != key.strip():
                raise ConfigError(
                    f"API key {position} is empty or has surrounding spaces; check RAGFT_API_KEYS "
                    f"and [serve] api_keys (comma-separated, no spaces inside a key)"
                )
            match = _DIGEST.match(key)
            digest = bytes.fromhex(match.group(1)) if match else _digest(key)
            entries.append((f"key-{position}", digest))
        self._entries = tuple(entries)

    @property
    def enabled(self) -> bool:
        """Whether any key is configured (otherwise every request is let in)."""
        return bool(self._entries)

    @property
    def labels(self) -> tuple[str, ...]:
        """The callers' labels, in configuration order."""
        return tuple(label for label, _ in self._entries)

    def identify(self, authorization: str | None) -> str | None:
        """The label of the key in an ``Authorization: Bearer <key>`` header value, or
        ``None`` when it is missing, malformed or matches no key. Always :data:`ANONYMOUS`
        when no key is configured."""
        if not self._entries:
            return ANONYMOUS
        if not authorization:
            return None
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return None
        digest = _digest(presented.strip())
        found: str | None = None
        for label, expected in self._entries:
            # No early exit: the time taken does not depend on which key (if any) matched.
            if hmac.compare_digest(digest, expected):
                found = label
        return found

    def __repr__(self) -> str:  # never show digests either
        return f"<KeyRing {len(self._entries)} keys>"
