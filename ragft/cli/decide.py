"""``ragft decide``: recommend RAG, fine-tuning or a hybrid from five questions, optionally
checked against an evaluation result.

Questions not given as options are asked interactively when stdin is a terminal; otherwise
(scripts, CI) they stay unknown, the tree assumes its documented defaults and the output lists
them under "Assumed".
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any, TextIO, TypeVar

from ragft.cli._args import parse_count
from ragft.eval.decide import SITUATIONS

__all__ = ["fill_in", "parse_yes_no", "register", "run"]

T = TypeVar("T")

_YES = {"y", "yes", "true", "1"}
_NO = {"n", "no", "false", "0"}
_UNKNOWN = {"?", "unknown", "dont-know", "don't know", ""}

#: (option dest, prompt, parser) in the order the tree asks them.
QUESTIONS: tuple[tuple[str, str, str], ...] = (
    ("knowledge_changes", "Does the knowledge change often (weekly or faster)?", "bool"),
    ("citations", "Must answers cite their sources?", "bool"),
    ("volume", "How many queries per month (e.g. 20000, 150k)?", "count"),
    ("format_critical", "Is a consistent format or house style critical?", "bool"),
    ("examples", "How many training examples (question/answer pairs) do you have?", "count"),
)


def parse_yes_no(text: str) -> bool | None:
    """``yes``/``no`` (and y/n/true/false/1/0) -> bool; ``unknown`` or ``?`` -> ``None``."""
    value = text.strip().lower()
    if value in _YES:
        return True
    if value in _NO:
        return False
    if value in _UNKNOWN:
        return None
    raise argparse.ArgumentTypeError(f"{text!r}: answer yes, no or unknown")


def register(subparsers: Any) -> None:
    """Add the ``decide`` command."""
    p = subparsers.add_parser(
        "decide",
        help="recommend rag, finetuned or a hybrid for your situation",
        description="Walk the RAG / fine-tuning / hybrid decision tree. Unanswered questions are "
        "asked when run in a terminal, otherwise assumed (and listed). With --eval the pick is "
        "checked against measured quality, cost and hallucination rates.",
    )
    p.add_argument("--knowledge-changes", type=parse_yes_no, metavar="yes/no", help="does the knowledge change often?")
    p.add_argument("--citations", type=parse_yes_no, metavar="yes/no", help="must answers cite sources?")
    p.add_argument("--volume", type=parse_count, metavar="N", help="queries per month (e.g. 150k)")
    p.add_argument("--format-critical", type=parse_yes_no, metavar="yes/no",
                   help="is format/style consistency critical?")
    p.add_argument("--examples", type=parse_count, metavar="N", help="training examples available")
    p.add_argument("--situation", choices=sorted(SITUATIONS),
                   help="use the guide's quick decision table instead of the flowchart questions")
    p.add_argument("--update-frequency", metavar="daily|weekly|monthly|quarterly|static|N/month",
                   help="how often the knowledge changes; answers 'knowledge changes frequently?' from "
                   "the measured update times of --freshness (else from the guide's table)")
    p.add_argument("--freshness", metavar="FRESHNESS_JSON",
                   help="measured update times from `ragft measure freshness`")
    p.add_argument("--eval", metavar="RESULT_JSON", help="back the pick with an eval result.json")
    p.add_argument("--metric", choices=("f1", "contains", "exact_match", "judge"), default="f1",
                   help="quality measure used with --eval (default: %(default)s)")
    p.add_argument("--no-input", action="store_true", help="never prompt, even in a terminal")
    p.add_argument("--json", action="store_true", help="print the decision as JSON")
    p.set_defaults(func=run)


def _prompt(question: str, parse: Callable[[str], T], stdin: TextIO, stdout: TextIO) -> T | None:
    while True:
        stdout.write(f"{question} [? = don't know] ")
        stdout.flush()
        line = stdin.readline()
        if not line:  # EOF: stop asking
            return None
        if line.strip() in _UNKNOWN:
            return None
        try:
            return parse(line)
        except argparse.ArgumentTypeError as exc:
            stdout.write(f"  {exc}\n")


def fill_in(args: argparse.Namespace, *, stdin: TextIO | None = None, stdout: TextIO | None = None) -> list[str]:
    """Ask for the missing answers when ``stdin`` is a terminal (and ``--no-input`` is not
    set); returns the names still unanswered."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stderr  # prompts on stderr keep stdout clean for --json
    interactive = not args.no_input and stdin.isatty()
    missing = []
    for dest, question, kind in QUESTIONS:
        if getattr(args, dest) is not None:
            continue
        if dest == "knowledge_changes" and getattr(args, "update_frequency", None):
            continue  # answered by the update frequency (and measured update times)
        if interactive:
            parser: Callable[[str], Any] = parse_yes_no if kind == "bool" else parse_count
            setattr(args, dest, _prompt(question, parser, stdin, stdout))
        if getattr(args, dest) is None:
            missing.append(dest)
    return missing


def run(args: argparse.Namespace) -> int:
    """Collect the answers, walk the tree, print the decision."""
    from ragft.eval.decide import DecisionInputs, decide
    from ragft.eval.freshness import FreshnessReport
    from ragft.eval.harness import EvalResult

    if args.situation:  # the table is the whole question; ask nothing else
        args.no_input = True
    missing = [] if args.situation else fill_in(args)
    if missing and not args.json:
        why = "--no-input" if args.no_input else "stdin is not a terminal"
        print(f"note: {why}; not answered: {', '.join(m.replace('_', '-') for m in missing)} "
              "(the defaults assumed are listed below)", file=sys.stderr)
    inputs = DecisionInputs(
        knowledge_changes=args.knowledge_changes,
        citations=args.citations,
        volume=args.volume,
        format_critical=args.format_critical,
        examples=args.examples,
        update_frequency=args.update_frequency,
    )
    evaluation = EvalResult.from_json(args.eval) if args.eval else None
    freshness = FreshnessReport.from_json(args.freshness) if args.freshness else None
    decision = decide(inputs, situation=args.situation, evaluation=evaluation, freshness=freshness,
                      metric=args.metric)
    if args.json:
        print(json.dumps(decision.to_dict(), indent=2))
    else:
        print(decision.summary())
    return 0
