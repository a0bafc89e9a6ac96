"""Budgets per key, the per-request timeout and a backend that is down, each on its own server."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import httpx
import openai
import pytest

from ragft.serve import BackgroundServer


def _priced(tmp: Path) -> str:
    """A price table that charges for the local models (they are free by default), so the
    budgets have something to count: about $0.1 per question at these rates."""
    table = {
        "free_prefixes": [],
        "models": {
            "local/extractive-reader": {"input": 100.0, "output": 100.0},
            "local/hashing-256": {"embedding": 100.0},
        },
    }
    path = tmp / "prices.json"
    path.write_text(json.dumps(table), "utf-8")
    return f"[prices]\nfile = {json.dumps(str(path))}\n"


def test_a_key_over_its_budget_gets_429_and_other_keys_keep_working(
    tmp_path: Path, make_config, keys: tuple[str, ...]
) -> None:
    cfg = make_config(key_budget_usd=0.5, _extra=_priced(tmp_path))
    with BackgroundServer(cfg, strategies=["rag"]) as server:
        # max_retries=2: the 429 says not to retry, so the SDK must not.
        first = openai.OpenAI(base_url=server.base_url, api_key=keys[0], max_retries=2)
        spent, answered = 0.0, 0
        with pytest.raises(openai.RateLimitError) as exc:
            for _ in range(20):
                completion = first.chat.completions.create(
                    model="rag", messages=[{"role": "user", "content": "What is the meal per diem?"}]
                )
                spent += completion.model_extra["ragft"]["cost_usd"]
                answered += 1
        assert answered >= 1 and 0 < spent <= 0.5
        assert exc.value.status_code == 429 and exc.value.code == "budget_exceeded"
        assert "key-1" in exc.value.message and keys[0] not in exc.value.message
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'ragft_requests_total{model="rag",status="429"} 1' in metrics  # not retried
        # Streaming is refused the same way, with a status rather than a broken stream.
        with pytest.raises(openai.RateLimitError):
            list(first.chat.completions.create(
                model="rag", messages=[{"role": "user", "content": "What is the meal per diem?"}], stream=True
            ))
        second = openai.OpenAI(base_url=server.base_url, api_key=keys[1], max_retries=0)
        completion = second.chat.completions.create(
            model="rag", messages=[{"role": "user", "content": "What is the meal per diem?"}]
        )
        assert "$75" in completion.choices[0].message.content
        assert completion.model_extra["ragft"]["cost_usd"] > 0


def test_a_request_over_the_time_limit_gets_504(make_config, keys: tuple[str, ...], gate) -> None:
    cfg = make_config(timeout_s=0.5)
    with BackgroundServer(cfg, strategies=["gated", "rag"]) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key=keys[0], max_retries=0)
        with pytest.raises(openai.APIStatusError) as exc:
            client.chat.completions.create(model="gated", messages=[{"role": "user", "content": "slow"}])
        assert exc.value.status_code == 504 and exc.value.code == "timeout"
        with pytest.raises(openai.APIStatusError) as exc:
            list(client.chat.completions.create(
                model="gated", messages=[{"role": "user", "content": "slow"}], stream=True
            ))
        assert exc.value.status_code == 504
        gate.release.set()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_backend_that_is_down_is_503(make_config, keys: tuple[str, ...]) -> None:
    base_url = f"http://127.0.0.1:{_closed_port()}/v1"
    extra = (
        "[backend]\nprovider = \"openai\"\nmax_retries = 0\ntimeout_s = 5\n"
        f"base_url = {json.dumps(base_url)}\n"
    )
    cfg = make_config(_extra=extra)
    with BackgroundServer(cfg, strategies=["base"]) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key=keys[0], max_retries=0)
        with pytest.raises(openai.InternalServerError) as exc:
            client.chat.completions.create(model="base", messages=[{"role": "user", "content": "hello"}])
        assert exc.value.status_code == 503 and exc.value.code == "backend_unavailable"
        assert base_url not in exc.value.message  # details stay in the server log


def test_requests_queue_for_a_free_worker(make_config, keys: tuple[str, ...], gate) -> None:
    """With one worker, a second request waits for the first instead of failing."""
    cfg = make_config(workers=1)
    with BackgroundServer(cfg, strategies=["gated"]) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key=keys[0], max_retries=0)
        results: list[str] = []

        def call(text: str) -> None:
            completion = client.chat.completions.create(model="gated", messages=[{"role": "user", "content": text}])
            results.append(completion.choices[0].message.content or "")

        threads = [threading.Thread(target=call, args=(f"q{i}",)) for i in range(2)]
        for t in threads:
            t.start()
        assert gate.entered.wait(30)
        health = httpx.get(f"{server.url}/healthz", timeout=30).json()
        assert health["in_flight"] >= 1
        gate.release.set()
        for t in threads:
            t.join(60)
        assert sorted(results) == ["released: q0", "released: q1"]
