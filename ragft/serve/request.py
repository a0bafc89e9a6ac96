"""Reading a ``POST /v1/chat/completions`` body: size limit, JSON, and the fields ragft uses.

**Conversation turns.** ragft's strategies answer one question against the documents, so the
*last user message* is the query. Earlier turns (user, assistant, system, tool) are not sent
to the strategy and cost nothing; the response says how many were set aside
(``ragft.ignored_messages``). A follow-up such as "and for contractors?" is therefore answered
on its own words: clients that need the thread's context must fold it into the last message.

Only text content is accepted (a string, or ``{"type": "text"}`` parts, which are joined).
``model``, ``messages``, ``stream`` and ``stream_options.include_usage`` are honoured; ``n``
must be 1; sampling options (``temperature``, ``max_tokens``, ``top_p`` …) are accepted and
ignored, because each strategy's generation settings come from the server's config.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ragft.serve.api_errors import APIError

__all__ = ["ChatRequest", "parse_chat_request", "read_body"]


@dataclass(frozen=True)
class ChatRequest:
    """The parts of a chat completion request a strategy needs."""

    model: str
    query: str
    stream: bool = False
    include_usage: bool = False
    ignored_messages: int = 0


async def read_body(chunks: AsyncIterator[bytes], declared: str | None, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes:
    from ``Content-Length`` before anything is read, or while reading a chunked body."""
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise APIError(400, "Content-Length is not a number", code="invalid_request") from None
        if size > limit:
            raise _too_large(limit)
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def _too_large(limit: int) -> APIError:
    return APIError(
        413,
        f"request body is larger than this server accepts ({limit:,} bytes)",
        code="request_too_large",
    )


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise APIError(400, f"{where}: only text content parts are supported", param="messages")
            parts.append(part["text"])
        return "\n".join(parts)
    if content is None:
        return ""
    raise APIError(400, f"{where}.content must be a string or a list of text parts", param="messages")


def parse_chat_request(body: bytes, *, max_query_chars: int) -> ChatRequest:
    """Validate a chat completion body (400 for anything malformed or unsupported)."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise APIError(400, f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise APIError(400, "request body must be a JSON object", code="invalid_json")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise APIError(400, "'model' is required: the name of a strategy (GET /v1/models lists them)",
                       param="model", code="missing_model")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise APIError(400, "'messages' is required: a non-empty list of chat messages",
                       param="messages", code="missing_messages")
    query: str | None = None
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise APIError(400, f"messages[{i}] must be an object with a 'role'", param="messages")
        if message["role"] == "user":
            query = _text(message.get("content"), f"messages[{i}]")
    if query is None or not query.strip():
        raise APIError(400, "'messages' has no user message with text: the last user message is "
                       "the question", param="messages", code="missing_messages")
    if len(query) > max_query_chars:
        raise APIError(400, f"the question is {len(query):,} characters; this server accepts at "
                       f"most {max_query_chars:,}", param="messages", code="query_too_long")
    stream = data.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise APIError(400, "'stream' must be true or false", param="stream")
    options = data.get("stream_options") or {}
    if not isinstance(options, dict):
        raise APIError(400, "'stream_options' must be an object", param="stream_options")
    if data.get("n", 1) not in (1, None):
        raise APIError(400, "'n' must be 1: a strategy gives one answer", param="n")
    return ChatRequest(
        model=model,
        query=query,
        stream=stream,
        include_usage=bool(options.get("include_usage", False)),
        ignored_messages=len(messages) - 1,
    )
