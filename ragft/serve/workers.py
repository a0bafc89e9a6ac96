"""Running strategies off the event loop.

Strategies block (FAISS, onnxruntime, the SDK's synchronous calls), so each request's
strategy runs on a :class:`StrategyWorkers` thread — a pool sized by ``[serve] workers`` —
while the event loop keeps accepting connections and answering ``/healthz``. A request that
waits for a free thread waits inside its own deadline.

Each request runs in a copy of the caller's context, with the caller's
:class:`~ragft.metering.meter.Allowance` charged and its calls tagged with the key's label, so
concurrent requests never see each other's meter scopes. A stream is produced by one worker
thread from start to end (its meter scopes live in one thread) and handed to the event loop
through a queue; a client that disconnects, or a deadline that passes, stops the producer at
its next delta, and the stream's finally blocks still record what was used.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ragft.answer import Answer
from ragft.metering.meter import Allowance, Meter
from ragft.serve.api_errors import APIError
from ragft.strategies import Strategy

__all__ = ["StrategyWorkers", "StreamEvent"]

#: ``("delta", str)``, then ``("done", Answer)``; or ``("error", exception)`` at any point.
StreamEvent = tuple[str, Any]


def _timeout(seconds: float) -> APIError:
    return APIError(
        504,
        f"the answer took longer than this server's {seconds:g} s limit per request",
        type="server_error",
        code="timeout",
    )


class StrategyWorkers:
    """A sized thread pool answering with strategies on behalf of the event loop."""

    def __init__(self, meter: Meter, workers: int, timeout_s: float):
        self.meter = meter
        self.timeout_s = timeout_s
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ragft-serve")

    async def answer(
        self, strategy: Strategy, query: str, *, allowance: Allowance, request_id: str, deadline: float
    ) -> Answer:
        """``strategy.answer(query)`` on a worker; 504 :class:`APIError` past ``deadline``
        (``time.monotonic()`` seconds). A request still queued then never runs; one already
        running finishes on its thread (threads cannot be interrupted) and is metered."""

        def run() -> Answer:
            with self.meter.charging(allowance), self.meter.collect(key=allowance.name):
                return strategy.answer(query, query_id=request_id)

        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.pool, contextvars.copy_context().run, run)
        try:
            return await asyncio.wait_for(future, max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise _timeout(self.timeout_s) from None

    async def stream(
        self, strategy: Strategy, query: str, *, allowance: Allowance, request_id: str, deadline: float
    ) -> AsyncIterator[StreamEvent]:
        """The events of ``strategy.stream(query)`` as they are produced on a worker."""
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
                with self.meter.charging(allowance), self.meter.collect(key=allowance.name):
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

        producer = loop.run_in_executor(self.pool, contextvars.copy_context().run, produce)
        try:
            while True:
                remaining = deadline - time.monotonic()
                try:
                    event = await asyncio.wait_for(queue.get(), max(0.0, remaining))
                except TimeoutError:
                    yield ("error", _timeout(self.timeout_s))
                    return
                yield event
                if event[0] != "delta":
                    return
        finally:
            stop.set()
            producer.cancel()  # one still queued never starts; a running one stops at its next delta

    def shutdown(self) -> None:
        """Wait for the running answers to finish, then release the threads."""
        self.pool.shutdown(wait=True)
