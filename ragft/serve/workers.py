"""Running strategies off the event loop.

Strategies block (FAISS, onnxruntime, the SDK's synchronous calls), so each request's
strategy runs on a :class:`StrategyWorkers` thread — a pool sized by ``[serve] workers`` —
while the event loop keeps accepting connections and answering ``/healthz``. A request that
waits for a free thread waits inside its own deadline.

Each request runs in a copy of the caller's context, with the caller's
:class:`~ragft.metering.meter.Allowance` charged and its calls tagged with the key's label, so
concurrent requests never see each other's meter scopes. (Streams run the same way; see
:mod:`ragft.serve.streaming`.)
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ragft.answer import Answer
from ragft.metering.meter import Allowance, Meter
from ragft.serve.api_errors import APIError
from ragft.strategies import Strategy

__all__ = ["StrategyWorkers"]

T = TypeVar("T")


class StrategyWorkers:
    """A sized thread pool answering with strategies on behalf of the event loop."""

    def __init__(self, meter: Meter, workers: int, timeout_s: float):
        self.meter = meter
        self.timeout_s = timeout_s
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ragft-serve")

    def timed_out(self) -> APIError:
        """The 504 a request past its deadline answers with."""
        return APIError(
            504,
            f"the answer took longer than this server's {self.timeout_s:g} s limit per request",
            type="server_error",
            code="timeout",
        )

    def submit(self, fn: Callable[[], T], allowance: Allowance) -> asyncio.Future[T]:
        """Run ``fn`` on a worker, in a copy of the current context, charging ``allowance``
        and tagging its calls ``key=<label>``."""

        def charged() -> T:
            with self.meter.charging(allowance), self.meter.collect(key=allowance.name):
                return fn()

        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self.pool, contextvars.copy_context().run, charged)

    async def answer(
        self, strategy: Strategy, query: str, *, allowance: Allowance, request_id: str, deadline: float
    ) -> Answer:
        """``strategy.answer(query)`` on a worker; 504 :class:`APIError` past ``deadline``
        (``time.monotonic()`` seconds). A request still queued then never runs; one already
        running finishes on its thread (threads cannot be interrupted) and is metered."""
        future = self.submit(lambda: strategy.answer(query, query_id=request_id), allowance)
        try:
            return await asyncio.wait_for(future, max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise self.timed_out() from None

    def shutdown(self) -> None:
        """Wait for the running answers to finish, then release the threads."""
        self.pool.shutdown(wait=True)
