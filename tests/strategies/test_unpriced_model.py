"""An unpriced model is refused before any call is made — retrieval's query embedding included.

A real OpenAI-shaped server on 127.0.0.1 counts the requests it receives: the index is built
through it (a priced embedding model), then a strategy whose chat model has no price must fail
with :class:`UnpricedModelError` without sending anything — not even the query embedding, which
would be a paid call made for nothing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from ragft.components import build_meter, open_knowledge_base
from ragft.config import load_config
from ragft.errors import UnpricedModelError
from ragft.strategies import build_strategy


class _Counting(BaseHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        type(self).requests.append(self.path)
        if self.path.endswith("/embeddings"):
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            rng = np.random.default_rng(len(inputs))
            data = [{"object": "embedding", "index": i, "embedding": rng.normal(size=1536).tolist()}
                    for i in range(len(inputs))]
            payload = {"object": "list", "data": data, "model": body["model"],
                       "usage": {"prompt_tokens": 5 * len(inputs), "total_tokens": 5 * len(inputs)}}
        else:
            payload = {"id": "c", "object": "chat.completion", "created": 0, "model": body["model"],
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": "$75 [1]"}}],
                       "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}}
        data_bytes = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data_bytes)))
        self.end_headers()
        self.wfile.write(data_bytes)


@pytest.fixture
def server() -> Iterator[str]:
    _Counting.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("strategy", ["rag", "base", "ft_rag"])
def test_unpriced_chat_model_is_refused_before_any_request(server: str, tmp_path: Path, strategy: str) -> None:
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "travel.md").write_text("# Travel\n\nThe meal per diem is $75 per day.\n")
    (tmp_path / "ragft.toml").write_text(
        f'home = "home"\n[backend]\nprovider = "openai"\nbase_url = "{server}"\nmax_retries = 0\n'
        '[models]\nchat = "mystery-llm-7b"\nembedding = "text-embedding-3-small"\nfinetuned = "mystery-llm-7b"\n'
        '[index]\ncorpus = "corpus"\n'
    )
    cfg = load_config(tmp_path / "ragft.toml", env={})
    open_knowledge_base(cfg, build_meter(cfg, ledger=False)).sync(cfg.corpus_path, progress=False)
    assert _Counting.requests and all(p.endswith("/embeddings") for p in _Counting.requests)
    _Counting.requests.clear()

    with pytest.raises(UnpricedModelError, match="mystery-llm-7b"):
        build_strategy(cfg, strategy=strategy).answer("What is the meal per diem?")
    assert _Counting.requests == []


def test_priced_chat_model_still_answers_through_the_same_server(server: str, tmp_path: Path) -> None:
    # The control: with a priced model the same set-up makes its calls and answers.
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "travel.md").write_text("# Travel\n\nThe meal per diem is $75 per day.\n")
    (tmp_path / "ragft.toml").write_text(
        f'home = "home"\n[backend]\nprovider = "openai"\nbase_url = "{server}"\nmax_retries = 0\n'
        '[models]\nchat = "gpt-4.1-mini"\nembedding = "text-embedding-3-small"\n[index]\ncorpus = "corpus"\n'
    )
    cfg = load_config(tmp_path / "ragft.toml", env={})
    open_knowledge_base(cfg, build_meter(cfg, ledger=False)).sync(cfg.corpus_path, progress=False)
    answer = build_strategy(cfg, strategy="rag").answer("What is the meal per diem?")
    assert "$75" in answer.text
    assert any(p.endswith("/chat/completions") for p in _Counting.requests)
