"""Behaviour of the ``ragft`` entry point itself: closed pipes and unexpected errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_closed_output_pipe_ends_quietly_with_sigpipe_status() -> None:
    # `ragft decide --json | head -0`: the reader is gone before ragft writes anything.
    proc = subprocess.Popen(
        [sys.executable, "-m", "ragft", "decide", "--no-input", "--json", "--knowledge-changes", "yes"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err
    assert err == ""
