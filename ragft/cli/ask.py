"""``ragft ask``: answer one question with the configured (or named) strategy."""

from __future__ import annotations

import argparse
import sys

from ragft.cli._args import question_text
from ragft.cli._output import answer_json, format_answer
from ragft.config import load_config

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``ask`` command."""
    p = sub.add_parser("ask", help="answer a question", description="Answer a question and show sources, route and cost.")
    p.add_argument("question", type=question_text, help="the question to answer")
    p.add_argument("--config", "-c", help="TOML config file (default: built-in defaults)")
    p.add_argument("--strategy", "-s", help="strategy name, overriding the config's [strategy] name")
    p.add_argument("--json", action="store_true", help="print the full answer as JSON")
    p.add_argument("--stream", action="store_true", help="print the answer as it is generated")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the strategy, answer, print."""
    from ragft.strategies import from_config

    cfg = load_config(args.config)
    with from_config(cfg, strategy=args.strategy) as strategy:
        if args.stream and not args.json:
            stream = strategy.stream(args.question)
            for delta in stream:
                sys.stdout.write(delta)
                sys.stdout.flush()
            sys.stdout.write("\n\n")
            answer = stream.answer
            assert answer is not None
        else:
            answer = strategy.answer(args.question)
    print(answer_json(answer) if args.json else format_answer(answer))
    return 0
