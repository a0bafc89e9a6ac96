"""Whether a training process recorded by its pid is still running (shared by the backends)."""

from __future__ import annotations

import os

__all__ = ["pid_alive"]


def pid_alive(pid: int) -> bool:
    """True when a process with ``pid`` exists (signal 0: nothing is sent). A process we may
    not signal (another user's) exists too."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
