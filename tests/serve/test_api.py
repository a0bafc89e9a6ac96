"""The OpenAI-compatible API through the real ``openai`` SDK against uvicorn on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from ragft.serve import BackgroundServer


USER = "user"


def ask(client: openai.OpenAI, question: str, model: str = "rag", **kwargs):  # type: ignore[no-untyped-def]
    return client.chat.completions.create(model=model, messages=[{"role": USER, "content": question}], **kwargs)


def test_models_list_has_the_strategies_that_built(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"rag", "base", "gated"} <= ids
    # No trained models in this home: the strategies that need them are not offered.
    assert "finetuned" not in ids and "cascade" not in ids
    assert client.models.retrieve("rag").owned_by == "ragft"


def test_chat_answers_with_content_usage_and_sources(client: openai.OpenAI, home) -> None:
    completion = ask(client, "What is the meal per diem?")
    assert "$75" in completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "rag" and completion.id.startswith("chatcmpl-")
    extra = completion.model_extra["ragft"]
    assert extra["query"] == "What is the meal per diem?"
    route = extra["route"]
    assert route["text"].startswith("rag: ") and route["strategy"] == "rag" and route["inner"] is None
    assert extra["sources"][0]["document"] == "policies/travel.md"
    assert "$75" in extra["sources"][0]["snippet"]
    assert extra["abstained"] is False and extra["cost_usd"] == 0.0
    # usage sums every inner call: retrieval embedding, the reader and its own embeddings.
    calls = extra["calls"]
    assert len(calls) >= 2 and {c["kind"] for c in calls} >= {"chat", "embedding"}
    usage = completion.usage
    assert usage.prompt_tokens == sum(c["input_tokens"] + c["embedding_tokens"] for c in calls)
    assert usage.completion_tokens == sum(c["output_tokens"] for c in calls) > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    # Every call is in the ledger, tagged with the request and the caller's label.
    lines = [json.loads(line) for line in (home / "ledger.jsonl").read_text("utf-8").splitlines()]
    mine = [r for r in lines if r["tags"].get("query") == completion.id]
    assert len(mine) == len(calls)
    assert {(r["tags"]["key"], r["tags"]["strategy"]) for r in mine} == {("key-1", "rag")}


def test_earlier_turns_are_set_aside_and_counted(client: openai.OpenAI) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "How often must passwords be rotated?"},
        {"role": "assistant", "content": "Every 90 days."},
        {"role": "user", "content": [{"type": "text", "text": "What is the meal per diem?"}]},
    ]
    completion = client.chat.completions.create(model="rag", messages=messages)
    assert completion.model_extra["ragft"]["query"] == "What is the meal per diem?"
    assert completion.model_extra["ragft"]["ignored_messages"] == 3
    assert "$75" in completion.choices[0].message.content


def test_streaming_sends_deltas_then_usage_last(client: openai.OpenAI) -> None:
    whole = ask(client, "How long are failed webhook deliveries retried?")
    chunks = list(ask(client, "How long are failed webhook deliveries retried?", stream=True,
                      stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content and "24 hours" in text
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason == "stop"]
    assert len(finish) == 1
    assert finish[0].model_extra["ragft"]["sources"][0]["document"] == "product/webhooks.md"
    # The usage chunk is the last one, with no choices, as OpenAI sends it.
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])
    calls = finish[0].model_extra["ragft"]["calls"]
    assert chunks[-1].usage.prompt_tokens == sum(c["input_tokens"] + c["embedding_tokens"] for c in calls)


def test_streaming_without_include_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(ask(client, "What is the meal per diem?", stream=True))
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_wrong_or_missing_key_is_401_and_the_key_is_never_echoed_or_logged(
    server: BackgroundServer, caplog: pytest.LogCaptureFixture, keys: tuple[str, ...]
) -> None:
    wrong = "sk-wrong-key-" + "x" * 20
    caplog.set_level(logging.DEBUG)
    bad = openai.OpenAI(base_url=server.base_url, api_key=wrong, max_retries=2)
    with pytest.raises(openai.AuthenticationError) as exc:
        bad.chat.completions.create(model="rag", messages=[{"role": "user", "content": "hi"}])
    assert exc.value.status_code == 401 and exc.value.code == "invalid_api_key"
    assert wrong not in exc.value.response.text
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    # No header, and a scheme other than Bearer.
    for headers in ({}, {"Authorization": f"Basic {keys[0]}"}):
        r = httpx.get(f"{server.base_url}/models", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["type"] == "invalid_request_error"
    good = openai.OpenAI(base_url=server.base_url, api_key=keys[1], max_retries=0)
    ask(good, "What is the meal per diem?")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "caller=key-2" in logged  # callers are named by label ...
    for secret in (wrong, *keys):  # ... never by key
        assert secret not in logged


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as exc:
        ask(client, "What is the meal per diem?", model="gpt-4.1-mini")
    assert exc.value.code == "model_not_found"
    assert "rag" in exc.value.message  # says what exists
    with pytest.raises(openai.NotFoundError) as exc:
        ask(client, "What is the meal per diem?", model="finetuned")
    assert "could not be built" in exc.value.message
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_oversized_body_is_413(
    server: BackgroundServer, client: openai.OpenAI, keys: tuple[str, ...]
) -> None:
    with pytest.raises(openai.APIStatusError) as exc:
        ask(client, "x" * 10_000)
    assert exc.value.status_code == 413 and exc.value.code == "request_too_large"
    # A chunked body (no Content-Length) is cut off while it is read.
    def body():  # type: ignore[no-untyped-def]
        yield b'{"model": "rag", "messages": [{"role": "user", "content": "'
        for _ in range(20):
            yield b"y" * 1000
        yield b'"}]}'

    r = httpx.post(f"{server.base_url}/chat/completions", content=body(),
                   headers={"Authorization": f"Bearer {keys[0]}", "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


def test_malformed_json_and_missing_messages_are_400(
    server: BackgroundServer, client: openai.OpenAI, keys: tuple[str, ...]
) -> None:
    headers = {"Authorization": f"Bearer {keys[0]}", "Content-Type": "application/json"}
    r = httpx.post(f"{server.base_url}/chat/completions", content=b'{"model": "rag", "messages": [', headers=headers)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_json" and r.headers["x-should-retry"] == "false"
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="rag", messages=[])
    assert exc.value.code == "missing_messages"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="rag", messages=[{"role": "system", "content": "only a system turn"}])
    with pytest.raises(openai.BadRequestError) as exc:
        ask(client, "why " * 200)  # 800 characters, over max_query_chars = 500
    assert exc.value.code == "query_too_long"
    with pytest.raises(openai.BadRequestError):
        ask(client, "   ")


def test_unknown_routes_answer_in_openai_shape(server: BackgroundServer) -> None:
    r = httpx.get(f"{server.base_url}/embeddings")
    assert r.status_code == 404 and "error" in r.json()


def test_concurrent_requests_are_not_mixed_up(
    server: BackgroundServer, client: openai.OpenAI, questions: dict[str, str]
) -> None:
    asked = list(questions) * 5
    with ThreadPoolExecutor(8) as pool:
        completions = list(pool.map(lambda q: ask(client, q), asked))
    ids = set()
    for question, completion in zip(asked, completions, strict=True):
        assert completion.model_extra["ragft"]["query"] == question
        assert questions[question] in completion.choices[0].message.content
        ids.add(completion.id)
    assert len(ids) == len(asked)
    # The server's meter does not keep every call for its whole life (the ledger has them).
    assert server.app.state.ragft.meter.records == []


def test_a_slow_strategy_does_not_block_healthz_or_other_models(
    server: BackgroundServer, client: openai.OpenAI, gate
) -> None:
    result: dict[str, object] = {}

    def slow() -> None:
        result["completion"] = ask(client, "hold on", model="gated")

    thread = threading.Thread(target=slow)
    thread.start()
    try:
        assert gate.entered.wait(30)
        health = httpx.get(f"{server.url}/healthz", timeout=30).json()
        assert health["status"] == "ok" and health["in_flight"] == 1
        assert "$75" in ask(client, "What is the meal per diem?").choices[0].message.content
    finally:
        gate.release.set()
        thread.join(60)
    completion = result["completion"]
    assert completion.choices[0].message.content == "released: hold on"  # type: ignore[attr-defined]
    assert completion.model_extra["ragft"]["route"]["text"] == "gated: released by the test"  # type: ignore[attr-defined]


def test_metrics_count_requests_latency_and_tokens(
    server: BackgroundServer, client: openai.OpenAI, keys: tuple[str, ...]
) -> None:
    def value(text: str, series: str) -> float:
        for line in text.splitlines():
            if line.startswith(series + " "):
                return float(line.split()[-1])
        return 0.0

    before = httpx.get(f"{server.url}/metrics").text
    ask(client, "What is the meal per diem?")
    with pytest.raises(openai.NotFoundError):
        ask(client, "What is the meal per diem?", model="nope")
    after = httpx.get(f"{server.url}/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    text = after.text
    ok = 'ragft_requests_total{model="rag",status="200"}'
    assert value(text, ok) == value(before, ok) + 1
    assert value(text, 'ragft_requests_total{model="-",status="404"}') >= 1
    count = 'ragft_request_duration_seconds_count{model="rag"}'
    assert value(text, count) == value(before, count) + 1
    assert value(text, 'ragft_request_duration_seconds_bucket{model="rag",le="+Inf"}') == value(text, count)
    assert value(text, 'ragft_tokens_total{model="rag",kind="completion"}') > value(
        before, 'ragft_tokens_total{model="rag",kind="completion"}')
    assert "# TYPE ragft_request_duration_seconds histogram" in text
    assert keys[0] not in text and "meal" not in text


def test_healthz_needs_no_key_and_reports_the_index(server: BackgroundServer, keys: tuple[str, ...]) -> None:
    health = httpx.get(f"{server.url}/healthz").json()
    assert health["index_version"] and "rag" in health["models"]
    assert "finetuned" in health["unavailable"]
    assert json.dumps(health).count(keys[0]) == 0


def test_a_client_that_goes_away_mid_request_leaves_the_server_healthy(
    server: BackgroundServer, client: openai.OpenAI, gate, keys: tuple[str, ...]
) -> None:
    import time

    body = {"model": "gated", "messages": [{"role": "user", "content": "bye"}], "stream": True}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=httpx.Timeout(30, read=0.5),
                   headers={"Authorization": f"Bearer {keys[0]}"})
    assert gate.entered.wait(30)
    gate.release.set()
    deadline = time.monotonic() + 30
    while httpx.get(f"{server.url}/healthz").json()["in_flight"]:
        assert time.monotonic() < deadline, "a request stayed in flight after its client left"
        time.sleep(0.05)
    assert "$75" in ask(client, "What is the meal per diem?").choices[0].message.content
