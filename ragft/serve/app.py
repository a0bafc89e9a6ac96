"""The OpenAI-compatible ASGI app: strategies as models behind ``/v1``.

Routes::

    POST /v1/chat/completions   the last user message answered by the strategy named ``model``
    GET  /v1/models             the strategies served (``/v1/models/{id}`` for one)
    GET  /healthz               liveness and what is loaded (no key needed; nothing secret)
    GET  /metrics               Prometheus text (no key needed; no key or query in it)

Built on Starlette, not FastAPI: every response here must be in OpenAI's shapes — errors
included — where FastAPI's request validation answers 422 in its own shape, and the body has
to be read under a size limit before anything parses it. The app needs routing, a lifespan
and streaming responses, which is Starlette (FastAPI is those plus the parts not wanted).

Every ``/v1`` request needs ``Authorization: Bearer <key>`` when keys are configured (see
:mod:`ragft.serve.auth`). Each key is charged through its own
:class:`~ragft.metering.meter.Allowance` (``[serve] key_budget_usd``), on top of the config's
``[budget]``, whose ``total_usd`` here spans the server's life.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ragft.answer import Answer
from ragft.components import build_meter
from ragft.config import RagftConfig
from ragft.metering.meter import Allowance, Budget, Meter
from ragft.serve.api_errors import APIError, from_exception
from ragft.serve.auth import ANONYMOUS, KeyRing
from ragft.serve.metrics import ServerMetrics
from ragft.serve.request import parse_chat_request, read_body
from ragft.serve.response import completion
from ragft.serve.runtime import Runtime, RuntimeSlot
from ragft.serve.streaming import SSEResponse, sse_body, stream_events
from ragft.serve.workers import StrategyWorkers

__all__ = ["create_app"]

log = logging.getLogger("ragft.serve")


def _error_response(error: APIError, request_id: str | None = None) -> JSONResponse:
    headers = error.headers()
    if request_id:
        headers["x-request-id"] = request_id
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


class _Server:
    """The app's state and handlers (one per app: nothing module-global)."""

    def __init__(self, cfg: RagftConfig, meter: Meter, strategies: Sequence[str]):
        self.cfg = cfg
        self.settings = cfg.serve
        self.meter = meter
        self.keys = KeyRing(cfg.serve_api_keys)
        budget = Budget(total_usd=self.settings.key_budget_usd)
        self.allowances = {label: Allowance(label, budget) for label in self.keys.labels or (ANONYMOUS,)}
        self.slot = RuntimeSlot(cfg, meter, strategies or self.settings.strategies)
        self.metrics = ServerMetrics()
        self.workers: StrategyWorkers | None = None
        self._closing: set[asyncio.Task[None]] = set()  # retired runtimes waiting to be closed

    # -- lifecycle ------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await asyncio.to_thread(self.slot.load)
        self.workers = StrategyWorkers(self.meter, self.settings.workers, self.settings.timeout_s)
        watcher = None
        if self.settings.reload_interval_s > 0:
            watcher = asyncio.create_task(self._watch_index(self.settings.reload_interval_s))
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            for task in list(self._closing):  # retired runtimes: no request is left to use them
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            # uvicorn has already waited for in-flight requests; this waits for any thread
            # still finishing an answer whose client gave up.
            await asyncio.to_thread(self.workers.shutdown)
            await asyncio.to_thread(self.slot.current.close)

    async def _watch_index(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                result = await asyncio.to_thread(self.slot.reload_if_stale)
            except Exception:  # noqa: BLE001 - the watcher must outlive one bad check
                log.exception("index version check failed")
                continue
            if result is not None:
                self.metrics.reload("ok" if result else "error")
            retired, self.slot.retired = self.slot.retired, None
            if retired is not None:
                task = asyncio.create_task(self._close_later(retired))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    async def _close_later(self, runtime: Runtime) -> None:
        # Requests that started on it end within their deadline: close it after that.
        try:
            await asyncio.sleep(self.settings.timeout_s + 1)
        finally:
            await asyncio.to_thread(runtime.close)

    # -- auth -----------------------------------------------------------------------------
    def _caller(self, request: Request) -> str:
        label = self.keys.identify(request.headers.get("authorization"))
        if label is None:
            raise APIError(
                401,
                "missing or incorrect API key: send 'Authorization: Bearer <key>' with a key "
                "this server accepts",
                code="invalid_api_key",
            )
        return label

    # -- routes ---------------------------------------------------------------------------
    async def healthz(self, request: Request) -> Response:
        runtime = self.slot.current
        return JSONResponse(
            {
                "status": "ok",
                "models": sorted(runtime.strategies),
                "unavailable": sorted(runtime.unavailable),
                "index_version": runtime.index_version,
                "index_loaded_at": runtime.built_at,
                "last_reload_error": self.slot.last_error is not None,
                "in_flight": self.metrics.in_flight,
            }
        )

    async def metrics_text(self, request: Request) -> Response:
        return PlainTextResponse(self.metrics.render(), media_type="text/plain; version=0.0.4")

    def _model_object(self, name: str, created: float) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": int(created), "owned_by": "ragft"}

    async def list_models(self, request: Request) -> Response:
        self._caller(request)
        runtime = self.slot.current
        data = [self._model_object(n, runtime.built_at) for n in sorted(runtime.strategies)]
        return JSONResponse({"object": "list", "data": data})

    async def get_model(self, request: Request) -> Response:
        self._caller(request)
        runtime = self.slot.current
        name = request.path_params["model"]
        if name not in runtime.strategies:
            raise self._unknown_model(name)
        return JSONResponse(self._model_object(name, runtime.built_at))

    def _unknown_model(self, name: str) -> APIError:
        runtime = self.slot.current
        if name in runtime.unavailable:
            why = f"the model '{name}' is configured but could not be built; the server log says why"
        else:
            why = f"the model '{name}' does not exist; available: {', '.join(sorted(runtime.strategies)) or 'none'}"
        return APIError(404, why, code="model_not_found", param="model")

    async def chat_completions(self, request: Request) -> Response:
        started = time.monotonic()
        deadline = started + self.settings.timeout_s
        request_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.metrics.request_started()
        model, caller, status, streaming = "-", "-", 500, False
        try:
            caller = self._caller(request)
            body = await read_body(
                request.stream(), request.headers.get("content-length"), self.settings.max_body_bytes
            )
            chat = parse_chat_request(body, max_query_chars=self.settings.max_query_chars)
            strategy = self.slot.current.strategies.get(chat.model)
            if strategy is None:
                raise self._unknown_model(chat.model)
            model = chat.model
            assert self.workers is not None
            allowance = self.allowances[caller]
            if chat.stream:
                events = stream_events(
                    self.workers, strategy, chat.query, allowance=allowance, request_id=request_id,
                    deadline=deadline,
                )
                # Wait for the first event: a failure before any text (budget, backend down)
                # still gets its own HTTP status instead of a 200 stream with an error in it.
                first = await anext(events)
                if first[0] == "error":
                    await events.aclose()
                    raise first[1]
                streaming = True
                counted = False

                def end(code: int) -> None:
                    nonlocal counted
                    if not counted:  # once: at the stream's end, or when it never started
                        counted = True
                        self._finish(request_id, chat.model, caller, code, started)

                async def close() -> None:
                    await events.aclose()  # type: ignore[attr-defined]
                    end(499)  # the client left before the body began

                chunks = sse_body(
                    chat, request_id, first, events,
                    on_answer=lambda answer: self._count_usage(chat.model, answer),
                    on_end=end,
                )
                return SSEResponse(
                    chunks, on_close=close, headers={"x-request-id": request_id, "cache-control": "no-cache"}
                )
            answer = await self.workers.answer(
                strategy, chat.query, allowance=allowance, request_id=request_id, deadline=deadline
            )
            self._count_usage(model, answer)
            status = 200
            return JSONResponse(
                completion(request_id, chat.model, answer, chat.ignored_messages),
                headers={"x-request-id": request_id},
            )
        except Exception as exc:  # noqa: BLE001 - every failure becomes an OpenAI-shaped error
            error = from_exception(exc)
            status = error.status
            if error.status >= 500 and not isinstance(exc, APIError):
                log.error("%s %s failed: %s: %s", request_id, model, type(exc).__name__, exc,
                          exc_info=exc if error.code == "internal_error" else None)
            return _error_response(error, request_id)
        finally:
            if not streaming:  # a stream is counted when it ends
                self._finish(request_id, model, caller, status, started)

    def _count_usage(self, model: str, answer: Answer) -> None:
        calls = [c.usage for c in answer.calls]
        self.metrics.usage(
            model,
            prompt=sum(u.input_tokens for u in calls),
            completion=sum(u.output_tokens for u in calls),
            embedding=sum(u.embedding_tokens for u in calls),
            cost_usd=answer.cost_usd,
        )

    def _finish(self, request_id: str, model: str, caller: str, status: int, started: float) -> None:
        seconds = time.monotonic() - started
        self.metrics.request_finished(model, status, seconds)
        # The caller's label, never its key.
        log.info("%s model=%s caller=%s status=%d %.3fs", request_id, model, caller, status, seconds)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return _error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error_response(
        APIError(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", code="not_found"
                 if exc.status_code == 404 else None)
    )


def create_app(
    cfg: RagftConfig,
    *,
    meter: Meter | None = None,
    strategies: Sequence[str] = (),
    build_now: bool = False,
) -> Starlette:
    """The ASGI app serving ``cfg``'s strategies (``strategies`` overrides ``[serve]
    strategies``; both empty: every registered one that builds). ``meter`` defaults to the
    config's (ledger under ``home``, ``[budget]`` over the server's life, calls not kept in
    memory beyond their request). Strategies are built when the app starts (its lifespan) —
    or here with ``build_now``, so an unusable index fails before a port is bound — and are
    rebuilt when the index is saved anew."""
    server = _Server(cfg, meter or build_meter(cfg, keep_records=False), strategies)
    if build_now:
        server.slot.load()
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", server.chat_completions, methods=["POST"]),
            Route("/v1/models", server.list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", server.get_model, methods=["GET"]),
            Route("/healthz", server.healthz, methods=["GET"]),
            Route("/metrics", server.metrics_text, methods=["GET"]),
        ],
        exception_handlers={APIError: _api_error, HTTPException: _http_error},
        lifespan=server.lifespan,
    )
    app.state.ragft = server
    return app
