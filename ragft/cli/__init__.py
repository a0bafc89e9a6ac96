"""The ``ragft`` command line: one module per noun, each a thin layer over library calls.

Library errors (:class:`~ragft.errors.RagftError`) become a one-line message and exit code 2
here, at the edge, and nowhere else. Everything the CLI prints goes through
:func:`ragft.redact.redact` (a server may echo an API key into any text), including the
traceback of an unexpected error. A closed output pipe (``ragft ... --json | head``) ends the
command quietly with the shell's SIGPIPE status, 141.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

from ragft.errors import RagftError
from ragft.redact import redact

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
    "measure",
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


#: Exit status after the reader of our output went away (128 + SIGPIPE, as a shell reports it).
EXIT_BROKEN_PIPE = 141


class _RedactingWriter:
    """A text stream that masks secrets in everything written through it."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)  # callers count what they passed, not what was shown

    def __getattr__(self, name: str) -> object:  # flush, fileno, isatty, encoding, ...
        return getattr(self._stream, name)


@contextmanager
def _redacted_output() -> Iterator[None]:
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _RedactingWriter(out), _RedactingWriter(err)  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err


def _silence_stdout() -> None:
    # Python flushes stdout again at exit; point it at /dev/null so that flush cannot raise a
    # second BrokenPipeError (the recipe in the `signal` module's documentation).
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: TextIO | None = None, line: str | None = None) -> None:
    # ragft's own warnings (a model trained on another corpus, a retired model, a skipped
    # document) are messages for the user: one line like the errors', not a source location.
    if category.__module__.startswith("ragft"):
        print(f"ragft: warning: {message}", file=sys.stderr)
    else:
        _default_show_warning(message, category, filename, lineno, file, line)


_default_show_warning = warnings.showwarning


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ragft`` console script; returns the exit code."""
    with _redacted_output(), warnings.catch_warnings():
        warnings.showwarning = _show_warning
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 1
        try:
            code = int(args.func(args) or 0)
            sys.stdout.flush()
            return code
        except BrokenPipeError:
            _silence_stdout()
            return EXIT_BROKEN_PIPE
        except RagftError as exc:
            print(f"ragft: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("ragft: interrupted", file=sys.stderr)
            return 130
        except Exception as exc:  # a bug or an untranslated failure: show it, masked
            print("".join(traceback.format_exception(exc)), end="", file=sys.stderr)
            return 1
