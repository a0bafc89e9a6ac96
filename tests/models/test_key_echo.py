"""An API key echoed back by a server never leaks (issue: hardening, security).

A real HTTP server on 127.0.0.1 answers every request with an error whose text contains the key
it was sent (as some proxies and OpenAI-compatible servers do) plus another key-shaped token.
Each error path — 400/401/403/404/429/500, an error inside a stream, a timeout, an embedding
failure — must leave no trace of either in exception texts and tracebacks, and the CLI must
print none and write none into the ledger or evaluation outputs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ragft.errors import RagftError
from ragft.models.openai import OpenAIChatModel, OpenAIEmbedder, make_client

#: The configured key: deliberately not shaped like "sk-…", so only registration can mask it.
KEY = "proxy-token-Zq81mK03vX5"
#: A key-shaped token the server adds on its own (someone else's key in a proxy's message).
OTHER = "sk-live-9fH2kLmN0pQrStUvWx"
MESSAGES = [{"role": "user", "content": "What is the meal per diem?"}]


class _EchoHandler(BaseHTTPRequestHandler):
    """The first path segment chooses the behaviour: a status code, ``stream`` or ``slow``."""

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        sent = self.headers.get("authorization", "").removeprefix("Bearer ")
        echo = f"Incorrect API key provided: {sent}. Also tried {OTHER}; header was Bearer {sent}"
        mode = self.path.strip("/").split("/")[0]
        if mode == "slow":
            time.sleep(1.5)
            return self._json(200, {})
        if mode == "stream" and body.get("stream"):
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.end_headers()
            chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "m",
                     "choices": [{"index": 0, "delta": {"content": "The"}, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            error = {"error": {"message": echo, "type": "server_error"}}
            self.wfile.write(f"data: {json.dumps(error)}\n\n".encode())
            self.wfile.flush()
            return
        status = int(mode) if mode.isdigit() else 500
        code = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}.get(status)
        self._json(status, {"error": {"message": echo, "type": "invalid_request_error", "code": code}})

    def _json(self, status: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def echo_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _shown(exc: BaseException) -> str:
    """Everything a person or a log could see of an exception: text, repr, args, traceback."""
    return "".join(traceback.format_exception(exc)) + repr(exc) + repr(exc.args)


def _assert_clean(text: str) -> None:
    assert KEY not in text
    assert OTHER not in text


def _chat(url: str, timeout: float = 10.0) -> OpenAIChatModel:
    client = make_client(api_key=KEY, base_url=url, max_retries=0, timeout=timeout)
    return OpenAIChatModel("gpt-4.1-mini", client=client)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500])
def test_chat_error_paths_do_not_leak_the_key(echo_server: str, status: int) -> None:
    with pytest.raises(RagftError) as info:
        _chat(f"{echo_server}/{status}/v1").complete(MESSAGES)
    shown = _shown(info.value)
    _assert_clean(shown)
    assert "Incorrect API key provided" in shown  # the server's message itself is kept


def test_streaming_error_does_not_leak_the_key(echo_server: str) -> None:
    stream = _chat(f"{echo_server}/stream/v1").stream(MESSAGES)
    with pytest.raises(RagftError) as info:
        list(stream)
    _assert_clean(_shown(info.value))


def test_timeout_does_not_leak_the_key(echo_server: str) -> None:
    with pytest.raises(RagftError) as info:
        _chat(f"{echo_server}/slow/v1", timeout=0.3).complete(MESSAGES)
    _assert_clean(_shown(info.value))


def test_embedding_failure_does_not_leak_the_key(echo_server: str) -> None:
    client = make_client(api_key=KEY, base_url=f"{echo_server}/401/v1", max_retries=0)
    with pytest.raises(RagftError) as info:
        OpenAIEmbedder("text-embedding-3-small", client=client).embed(["a passage"])
    _assert_clean(_shown(info.value))


def _project(tmp_path: Path, base_url: str) -> Path:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "travel.md").write_text("# Travel\n\nThe meal per diem is $75 per day.\n")
    (tmp_path / "q.jsonl").write_text(json.dumps(
        {"id": "q1", "question": "What is the meal per diem?", "answer": "$75", "sources": ["travel.md"]}) + "\n")
    (tmp_path / "ragft.toml").write_text(
        f'home = "home"\n[backend]\nprovider = "openai"\nbase_url = "{base_url}"\nmax_retries = 0\n'
        '[models]\nchat = "gpt-4.1-mini"\nembedding = "local/hashing-256"\n'
        '[index]\ncorpus = "corpus"\nchunk_tokens = 64\nchunk_overlap = 8\n'
    )
    return tmp_path


def _ragft(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"OPENAI_API_KEY": KEY, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[2])}
    return subprocess.run([sys.executable, "-m", "ragft", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("status", [401, 500])
def test_cli_ask_and_eval_leak_nothing(echo_server: str, tmp_path: Path, status: int) -> None:
    project = _project(tmp_path, f"{echo_server}/{status}/v1")
    index = _ragft(["index", "--config", "ragft.toml"], project)
    assert index.returncode == 0, index.stderr
    ask = _ragft(["ask", "--config", "ragft.toml", "What is the meal per diem?"], project)
    assert ask.returncode == 2  # a clear error, not a traceback
    assert "ragft: error:" in ask.stderr
    _assert_clean(ask.stdout + ask.stderr)
    run = _ragft(["eval", "--config", "ragft.toml", "--questions", "q.jsonl", "--strategies", "rag",
                  "--out", "out", "--no-progress"], project)
    _assert_clean(run.stdout + run.stderr)
    written = [p for p in project.rglob("*") if p.is_file() and p.suffix in {".json", ".jsonl", ".csv", ".txt"}]
    assert any(p.name == "result.json" for p in written), run.stderr
    for path in written:
        _assert_clean(path.read_text(errors="replace"))
    assert "Incorrect API key provided" in (project / "out" / "result.json").read_text()
