"""``ragft quickstart``: the main job in one command — index the corpus, answer a question."""

from __future__ import annotations

import argparse

from ragft.cli._output import format_answer, format_usage
from ragft.config import load_config

__all__ = ["DEFAULT_QUESTION", "register"]

DEFAULT_QUESTION = "What is the daily meal allowance when travelling?"


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``quickstart`` command."""
    p = sub.add_parser(
        "quickstart",
        help="index the corpus and answer a question (offline with no API key)",
        description="Index the corpus (only what changed since last time) and answer a question "
        "with the configured strategy, printing sources, route and cost.",
    )
    p.add_argument("question", nargs="?", default=DEFAULT_QUESTION, help=f"default: {DEFAULT_QUESTION!r}")
    p.add_argument("--config", "-c", help="TOML config file (default: built-in defaults)")
    p.add_argument("--strategy", "-s", default=None, help="strategy name (default: the config's, 'rag')")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Sync the index, then answer."""
    from ragft.components import Components, build_meter
    from ragft.metering.meter import RollUp
    from ragft.strategies import build_strategy

    cfg = load_config(args.config)
    meter = build_meter(cfg)
    print(f"Backend: {cfg.provider} (chat {cfg.chat_model}, embeddings {cfg.embedding_model})")
    print(f"Indexing {cfg.corpus_path} -> {cfg.index_path}")
    with Components(cfg, meter) as parts:  # closed at the end: models may hold servers
        with meter.collect(step="index") as indexing:
            report = parts.knowledge_base().sync(cfg.corpus_path, progress=not args.quiet)
        print(
            f"  added {len(report.added)}, changed {len(report.changed)}, removed {len(report.removed)}, "
            f"unchanged {len(report.unchanged)} documents; {report.embedded_chunks} chunks embedded"
        )
        print("  " + format_usage(RollUp.of(indexing.records)))
        strategy = build_strategy(cfg, strategy=args.strategy, meter=meter, parts=parts)
        print(f"\nQuestion: {args.question}  [strategy: {strategy.name}]")
        print(format_answer(strategy.answer(args.question)))
    return 0
