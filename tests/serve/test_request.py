"""Reading chat completion requests: the query, the limits and what is refused."""

from __future__ import annotations

import asyncio
import json

import pytest

from ragft import errors
from ragft.serve.api_errors import APIError, from_exception
from ragft.serve.request import parse_chat_request, read_body


def parse(body: object, limit: int = 100):  # type: ignore[no-untyped-def]
    return parse_chat_request(json.dumps(body).encode(), max_query_chars=limit)


def test_the_last_user_message_is_the_query() -> None:
    req = parse({
        "model": "rag",
        "messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "reply"},
            {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "text", "text": "part"}]},
            {"role": "tool", "content": None},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.2,
    })
    assert (req.model, req.query, req.stream, req.include_usage, req.ignored_messages) == (
        "rag", "second\npart", True, True, 3)


@pytest.mark.parametrize(
    "body, code",
    [
        ({"messages": [{"role": "user", "content": "q"}]}, "missing_model"),
        ({"model": "rag"}, "missing_messages"),
        ({"model": "rag", "messages": "q"}, "missing_messages"),
        ({"model": "rag", "messages": [{"role": "system", "content": "q"}]}, "missing_messages"),
        ({"model": "rag", "messages": [{"role": "user", "content": "x" * 101}]}, "query_too_long"),
        ({"model": "rag", "messages": [{"content": "q"}]}, None),
        ({"model": "rag", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, None),
        ({"model": "rag", "messages": [{"role": "user", "content": "q"}], "n": 2}, None),
        ({"model": "rag", "messages": [{"role": "user", "content": "q"}], "stream": "yes"}, None),
        ([1, 2], "invalid_json"),
    ],
)
def test_bad_requests_are_400(body: object, code: str | None) -> None:
    with pytest.raises(APIError) as exc:
        parse(body)
    assert exc.value.status == 400 and exc.value.code == code


def test_invalid_json_is_400() -> None:
    with pytest.raises(APIError, match="not valid JSON"):
        parse_chat_request(b"{nope", max_query_chars=10)


async def _chunks(*parts: bytes):  # type: ignore[no-untyped-def]
    for part in parts:
        yield part


def test_bodies_over_the_limit_are_413_declared_or_not() -> None:
    assert asyncio.run(read_body(_chunks(b"ab", b"cd"), "4", 4)) == b"abcd"
    for declared in ("5", None):
        with pytest.raises(APIError) as exc:
            asyncio.run(read_body(_chunks(b"ab", b"cde"), declared, 4))
        assert exc.value.status == 413


def test_library_errors_map_to_statuses() -> None:
    budget = errors.BudgetExceededError("spent", limit_usd=1, spent_usd=1, estimate_usd=0.1, scope="allowance")
    assert from_exception(budget).status == 429
    assert from_exception(errors.QueryError("empty")).status == 400
    down = from_exception(errors.ModelUnavailableError("http://10.0.0.5:8080 refused"))
    assert down.status == 503 and "10.0.0.5" not in down.message
    assert from_exception(errors.IndexStoreError("/srv/x corrupt")).status == 503
    internal = from_exception(ValueError("secret detail"))
    assert internal.status == 500 and "secret" not in internal.message
    assert from_exception(budget).headers() == {"x-should-retry": "false"}
    assert down.headers() == {}
