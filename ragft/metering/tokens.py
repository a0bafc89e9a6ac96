"""Moved to :mod:`ragft.tokens` (token counting sits below both ``models`` and ``metering``).

This name stays importable for code written before the move; new code imports
``ragft.tokens``.
"""

from __future__ import annotations

from ragft.tokens import *  # noqa: F403
from ragft.tokens import __all__  # noqa: F401
