"""Running the app on uvicorn: in the foreground (``ragft serve``) or in a background thread
(:class:`BackgroundServer`, for examples, benchmarks and tests that need a real server).

On SIGTERM or Ctrl-C uvicorn stops accepting connections and waits for the requests in flight
— streams included — to finish (up to the per-request timeout plus a margin), then the app's
lifespan waits for its worker threads before the process exits.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from collections.abc import Sequence
from types import TracebackType

import uvicorn
from starlette.applications import Starlette

from ragft.config import RagftConfig
from ragft.serve.app import create_app

__all__ = ["BackgroundServer", "run_server"]

log = logging.getLogger("ragft.serve")
#: Extra seconds, beyond the per-request timeout, that shutdown waits for requests in flight.
SHUTDOWN_MARGIN_S = 5.0


def _uvicorn_config(app: Starlette, cfg: RagftConfig, log_level: str, **kwargs: object) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level=log_level,
        lifespan="on",
        timeout_graceful_shutdown=int(cfg.serve.timeout_s + SHUTDOWN_MARGIN_S),
        # The app logs one line per request with the caller's label; uvicorn's access log
        # would repeat it with the client's address.
        access_log=False,
        **kwargs,  # type: ignore[arg-type]
    )


def run_server(
    cfg: RagftConfig,
    *,
    host: str | None = None,
    port: int | None = None,
    strategies: Sequence[str] = (),
    log_level: str = "info",
) -> None:
    """Serve ``cfg`` until SIGTERM / SIGINT (host and port default to ``[serve]``)."""
    # Built before uvicorn starts: a corrupt index or a bad config is a one-line error here,
    # not a traceback from inside the ASGI lifespan.
    app = create_app(cfg, strategies=strategies, build_now=True)
    host = host or cfg.serve.host
    if not cfg.serve_api_keys and host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "serving on %s without API keys: anyone who can reach it can spend this server's "
            "budget. Set RAGFT_API_KEYS or [serve] api_keys.", host
        )
    config = _uvicorn_config(app, cfg, log_level, host=host, port=cfg.serve.port if port is None else port)
    server = uvicorn.Server(config)
    if threading.current_thread() is not threading.main_thread():
        server.run()
        return
    # After its graceful shutdown uvicorn raises the captured SIGTERM again under the handler
    # that was in place before it started: a no-op one makes that a normal return (exit 0)
    # instead of death by signal once everything in flight has finished.
    previous = signal.signal(signal.SIGTERM, _graceful_stop_done)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _graceful_stop_done(signum: int, frame: object) -> None:
    log.info("stopped after finishing the requests in flight")


class BackgroundServer:
    """The app on a real uvicorn in a daemon thread, on ``host`` and a free port.

    >>> with BackgroundServer(cfg) as server:             # doctest: +SKIP
    ...     OpenAI(base_url=server.base_url, api_key="k")
    """

    def __init__(
        self,
        cfg: RagftConfig,
        *,
        app: Starlette | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        strategies: Sequence[str] = (),
        log_level: str = "warning",
        startup_timeout_s: float = 120.0,
    ):
        self.cfg = cfg
        self.app = app if app is not None else create_app(cfg, strategies=strategies)
        self.host = host
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port: int = self._sock.getsockname()[1]
        self._server = uvicorn.Server(_uvicorn_config(self.app, cfg, log_level))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="ragft-serve", daemon=True
        )
        self._startup_timeout_s = startup_timeout_s

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (``…/v1``)."""
        return f"{self.url}/v1"

    def start(self) -> BackgroundServer:
        """Start and wait until the app has built its strategies and listens."""
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout_s
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("ragft serve failed to start; see the log above")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"ragft serve did not start within {self._startup_timeout_s:g} s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop gracefully (requests in flight finish) and wait for the thread."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join()
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
