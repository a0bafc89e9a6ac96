"""Streaming: a strategy's :meth:`~ragft.strategies.Strategy.stream` produced on a worker
thread and sent as OpenAI's server-sent events.

The stream is produced by one worker thread from start to end (its meter scopes live in one
thread and one context) and handed to the event loop through a queue. A client that
disconnects, or a deadline that passes, stops the producer at its next delta; closing the
strategy's generator runs its finally blocks, so what was used is still metered.

The SSE body: a first chunk with ``role``, one chunk per text delta, a ``finish_reason`` chunk
carrying the ``ragft`` object, then — with ``stream_options.include_usage`` — a chunk with
empty ``choices`` and the ``usage``, and ``data: [DONE]``. An error after the first byte can
no longer change the HTTP status, so it is sent as an ``{"error": ...}`` event, which the
openai SDK raises as an ``APIError``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ragft.answer import Answer
from ragft.metering.meter import Allowance
from ragft.serve.api_errors import from_exception
from ragft.serve.request import ChatRequest
from ragft.serve.response import chunk, ragft_object, usage_object
from ragft.serve.workers import StrategyWorkers
from ragft.strategies import Strategy

__all__ = ["SSEResponse", "StreamEvent", "sse", "sse_body", "stream_events"]

log = logging.getLogger("ragft.serve")

#: ``("delta", str)`` …, then ``("done", Answer)``; or ``("error", exception)`` at any point.
StreamEvent = tuple[str, Any]


async def stream_events(
    workers: StrategyWorkers,
    strategy: Strategy,
    query: str,
    *,
    allowance: Allowance,
    request_id: str,
    deadline: float,
) -> AsyncIterator[StreamEvent]:
    """The events of ``strategy.stream(query)`` as a worker produces them; an ``error`` event
    with a 504 once ``deadline`` (``time.monotonic()`` seconds) passes."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[StreamEvent] = asyncio.Queue()
    stop = threading.Event()

    def put(event: StreamEvent) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, event)
        except RuntimeError:  # the loop is gone (server shut down): nobody is listening
            pass

    def produce() -> None:
        try:
            stream = strategy.stream(query, query_id=request_id)
            deltas = iter(stream)
            try:
                for delta in deltas:
                    if stop.is_set():
                        return
                    if delta:
                        put(("delta", delta))
            finally:
                close = getattr(deltas, "close", None)
                if close is not None:
                    close()  # runs the strategy's finally blocks: abandoned calls are metered
            put(("done", stream.answer))
        except BaseException as exc:  # noqa: BLE001 - handed to the event loop to answer with
            put(("error", exc))

    producer = workers.submit(produce, allowance)
    try:
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                yield ("error", workers.timed_out())
                return
            yield event
            if event[0] != "delta":
                return
    finally:
        stop.set()
        producer.cancel()  # one still queued never starts; a running one stops at its next delta


def sse(data: dict[str, Any] | bytes | str) -> bytes:
    """One server-sent event: ``data: <payload>`` and a blank line."""
    if isinstance(data, dict):
        data = json.dumps(data, ensure_ascii=False)
    if isinstance(data, str):
        data = data.encode("utf-8")
    return b"data: " + data + b"\n\n"


async def sse_body(
    chat: ChatRequest,
    request_id: str,
    first: StreamEvent,
    events: AsyncIterator[StreamEvent],
    *,
    on_answer: Callable[[Answer], None],
    on_end: Callable[[int], None],
) -> AsyncIterator[bytes]:
    """The SSE bytes for ``first`` and the rest of ``events``. ``on_answer`` receives the
    finished answer; ``on_end`` the status to count (200, an error's, or 499 when the client
    went away first)."""
    created = int(time.time())
    usage_field = chat.include_usage
    status = 499
    try:
        yield sse(chunk(request_id, chat.model, created, delta={"role": "assistant", "content": ""},
                        with_usage_field=usage_field))
        event = first
        while True:
            kind, value = event
            if kind == "delta":
                yield sse(chunk(request_id, chat.model, created, delta={"content": value},
                                with_usage_field=usage_field))
            elif kind == "done":
                answer: Answer = value
                on_answer(answer)
                yield sse(chunk(request_id, chat.model, created, delta={}, finish_reason="stop",
                                with_usage_field=usage_field,
                                extra={"ragft": ragft_object(answer, chat.ignored_messages)}))
                if chat.include_usage:
                    yield sse(chunk(request_id, chat.model, created, usage=usage_object(answer)))
                yield sse("[DONE]")
                status = 200
                return
            else:
                error = from_exception(value)
                status = error.status
                if status >= 500:
                    log.error("%s %s failed mid-stream: %s: %s", request_id, chat.model, type(value).__name__, value)
                yield sse(error.encoded())
                return
            event = await anext(events)  # type: ignore[call-overload]
    finally:
        await events.aclose()  # type: ignore[attr-defined]
        on_end(status)


class SSEResponse(StreamingResponse):
    """A ``text/event-stream`` response that, however it ends — finished, the client gone
    before the first byte, a failed send — closes its body (running its finally blocks) and
    then awaits ``on_close``, so the stream's producer is stopped and the request counted."""

    def __init__(
        self,
        content: AsyncIterator[bytes],
        *,
        on_close: Callable[[], Awaitable[None]],
        headers: Mapping[str, str] | None = None,
    ):
        super().__init__(content, media_type="text/event-stream", headers=headers)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                await close()
            await self._on_close()
