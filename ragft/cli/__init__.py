"""The ``ragft`` command line: one module per noun, each a thin layer over library calls.

Library errors (:class:`~ragft.errors.RagftError`) become a one-line message and exit code 2
here, at the edge, and nowhere else.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ragft.errors import RagftError

__all__ = ["main"]

#: Command modules under ``ragft.cli``; each defines ``register(subparsers)`` and sets
#: ``func`` on its parsers. Order here is the order in ``ragft --help``.
COMMAND_MODULES: tuple[str, ...] = (
    "quickstart",
    "index",
    "ask",
    "finetune",
    "models",
    "eval",
    "cost",
    "decide",
    "serve",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every command registered."""
    parser = argparse.ArgumentParser(
        prog="ragft",
        description="Question answering over your documents with RAG, fine-tuning or both, "
        "with measured quality, latency and cost.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"ragft.cli.{name}")
        module.register(sub)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"ragft {version('ragft')}"
    except PackageNotFoundError:
        return "ragft (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ragft`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except RagftError as exc:
        print(f"ragft: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ragft: interrupted", file=sys.stderr)
        return 130
