"""``ragft serve``: the configured strategies as models behind an OpenAI-compatible API."""

from __future__ import annotations

import argparse
import logging

from ragft.config import load_config
from ragft.errors import ConfigError

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``serve`` command."""
    p = sub.add_parser(
        "serve",
        help="serve strategies on an OpenAI-compatible HTTP API",
        description="Serve every strategy as a model on /v1/chat/completions (plus /v1/models, "
        "/healthz, /metrics). API keys come from RAGFT_API_KEYS (comma-separated) or [serve] "
        "api_keys; with none set the API is open, so it binds to 127.0.0.1 by default. "
        "The index is reloaded when `ragft index` saves a new version.",
    )
    p.add_argument("--config", "-c", help="TOML config file (default: built-in defaults)")
    p.add_argument("--host", help="address to bind (default: [serve] host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: [serve] port, 8000)")
    p.add_argument("--workers", type=int, help="threads answering requests (default: [serve] workers, 4)")
    p.add_argument("--strategies", help="comma-separated strategies to serve (default: all that build)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the config and serve until SIGTERM / Ctrl-C."""
    from ragft.serve import run_server

    overrides = {}
    if args.workers is not None:
        overrides["serve.workers"] = args.workers
    if args.port is not None and not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, got {args.port}")
    cfg = load_config(args.config, overrides=overrides)
    strategies = [s.strip() for s in (args.strategies or "").split(",") if s.strip()]
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_server(cfg, host=args.host, port=args.port, strategies=strategies, log_level=args.log_level)
    return 0
