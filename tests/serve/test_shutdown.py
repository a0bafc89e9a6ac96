"""``ragft serve`` as a process: SIGTERM lets the request in flight finish, then it exits 0."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import openai

ROOT = Path(__file__).resolve().parents[2]

# The entry point with one extra strategy registered: it waits for a file the test creates.
SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from ragft.cli import main
    from ragft.route import Route
    from ragft.strategies import Draft, Strategy, register_strategy

    entered, release = Path(sys.argv[1]), Path(sys.argv[2])

    class FileGated(Strategy):
        kind = "file_gated"

        def _draft(self, query):
            entered.touch()
            while not release.exists():
                time.sleep(0.02)
            return Draft(text=f"finished: {query}", route=Route("file_gated", detail="released"))

    register_strategy("file_gated", lambda ctx: FileGated(meter=ctx.meter))
    sys.exit(main(sys.argv[3:]))
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sigterm_finishes_the_request_in_flight_then_exits(tmp_path: Path, make_config, keys: tuple[str, ...]) -> None:
    make_config()  # writes serve.toml next to the test's files
    script = tmp_path / "serve_gated.py"
    script.write_text(SCRIPT, "utf-8")
    entered, release = tmp_path / "entered", tmp_path / "release"
    port = _free_port()
    env = {**os.environ, "RAGFT_API_KEYS": keys[0], "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(entered), str(release), "serve", "--config",
         str(tmp_path / "serve.toml"), "--port", str(port), "--strategies", "file_gated,rag",
         "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=keys[0], max_retries=0, timeout=120)
        result: dict[str, object] = {}

        def call() -> None:
            try:
                result["completion"] = client.chat.completions.create(
                    model="file_gated", messages=[{"role": "user", "content": "in flight"}]
                )
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                result["error"] = exc

        thread = threading.Thread(target=call)
        thread.start()
        while not entered.exists():
            assert time.monotonic() < deadline and proc.poll() is None, "the request never started"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        # Shutdown has begun once new connections are refused; the process waits on.
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            except httpx.TransportError:
                break
            assert time.monotonic() < deadline, "the server kept accepting connections"
            time.sleep(0.05)
        assert proc.poll() is None and thread.is_alive()  # still waiting for the request in flight
        release.touch()
        thread.join(120)
        assert "error" not in result, result.get("error")
        assert result["completion"].choices[0].message.content == "finished: in flight"  # type: ignore[attr-defined]
        assert proc.wait(120) == 0
    finally:
        release.touch()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
