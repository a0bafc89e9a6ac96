"""``ragft index`` (build/update the knowledge base) and ``ragft search`` (query it)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ragft.cli._args import question_text
from ragft.components import build_meter, build_retriever, open_knowledge_base
from ragft.config import RetrievalConfig, load_config
from ragft.errors import ConfigError, DocumentError
from ragft.metering.meter import RollUp

__all__ = ["register", "run_index", "run_search"]


def register(subparsers: Any) -> None:
    """Add the ``index`` and ``search`` commands."""
    p = subparsers.add_parser(
        "index",
        help="build or update the knowledge base from a corpus directory",
        description="Sync the index with a corpus directory: only added or changed documents "
        "are chunked and embedded (cached embeddings are reused), then the index is saved "
        "atomically. Unreadable files are skipped and listed; the exit status is then 1.",
    )
    p.add_argument("dir", nargs="?", help="corpus directory (default: the config's [index] corpus)")
    p.add_argument("--config", help="TOML config file (default: built-in defaults)")
    p.add_argument("--rebuild", action="store_true", help="start from an empty index")
    p.add_argument("--kind", choices=("auto", "flat", "hnsw"), help="vector index structure")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument(
        "--allow-removal",
        action="store_true",
        help="allow a sync that removes all indexed documents or more than half of them "
        "(refused otherwise: it is what a wrong or empty corpus directory looks like)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first unreadable file instead of skipping it",
    )
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="fail at once if another process is writing this index (default: wait for it)",
    )
    p.set_defaults(func=run_index)

    s = subparsers.add_parser(
        "search",
        help="show the passages retrieved for a query",
        description="Retrieve passages from the knowledge base (no model is asked to answer).",
    )
    s.add_argument("query", type=question_text, help="the question or keywords")
    s.add_argument("--config", help="TOML config file")
    s.add_argument("-k", "--top-k", type=int, default=None, help="number of hits (default: config)")
    s.add_argument("--mode", choices=("hybrid", "dense", "bm25"), help="retrieval mode")
    s.add_argument("--json", action="store_true", help="print hits as JSON")
    s.set_defaults(func=run_search)


def _format_cost(roll: RollUp) -> str:
    if roll.unpriced_calls:
        return "cost unknown: unpriced model"
    return f"${roll.cost_usd:.6f}"


def run_index(args: argparse.Namespace) -> int:
    """Sync the knowledge base and print what changed."""
    cfg = load_config(args.config)
    meter = build_meter(cfg)
    kb = open_knowledge_base(cfg, meter, rebuild=args.rebuild, kind=args.kind)
    corpus = cfg.path(args.dir) if args.dir else cfg.corpus_path
    if not args.dir and not corpus.is_dir():
        raise DocumentError(cfg.index_hint())
    report = kb.sync(
        corpus, progress=not args.quiet, strict=args.strict, allow_removal=args.allow_removal,
        wait=not args.no_wait,
    )
    roll = meter.rollup()["all"] if meter.records else RollUp()
    print(
        f"added {len(report.added)}, changed {len(report.changed)}, "
        f"removed {len(report.removed)}, unchanged {len(report.unchanged)} documents; "
        f"embedded {report.embedded_chunks} chunks ({report.usage.embedding_tokens} tokens, "
        f"{_format_cost(roll)})"
    )
    if not args.quiet:
        stats = kb.stats()
        where = (
            f"pgvector table {stats['table']!r} on {stats['server']}"
            if "server" in stats
            else str(stats["path"])
        )
        print(
            f"index: {stats['chunks']} chunks from {stats['documents']} documents, "
            f"{stats['kind']} ({stats['embedder']}) at {where}",
            file=sys.stderr,
        )
    for skip in report.skipped:
        print(f"skipped {skip.path}: {skip.reason}", file=sys.stderr)
    if report.problems:
        print(
            f"ragft: {len(report.problems)} file(s) could not be read (listed above); their "
            "previously indexed versions, if any, were kept",
            file=sys.stderr,
        )
        return 1
    return 0


def _top_k_bounds() -> tuple[int, int]:
    """The bounds of ``[retrieval] top_k``, read from the config model (defined once there)."""
    low, high = 1, 100
    for rule in RetrievalConfig.model_fields["top_k"].metadata:
        low = getattr(rule, "ge", low)
        high = getattr(rule, "le", high)
    return int(low), int(high)


def run_search(args: argparse.Namespace) -> int:
    """Print the ranked hits for a query."""
    cfg = load_config(args.config)
    meter = build_meter(cfg)
    kb = open_knowledge_base(cfg, meter, create=False)
    overrides: dict[str, Any] = {}
    if args.mode:
        overrides["mode"] = args.mode
    if args.top_k is not None:
        low, high = _top_k_bounds()
        if not low <= args.top_k <= high:
            raise ConfigError(
                f"-k/--top-k must be at least {low} and at most {high} (the limit of "
                f"[retrieval] top_k, which `ragft ask` uses), got {args.top_k}"
            )
        overrides["top_k"] = args.top_k
    retriever = build_retriever(cfg, kb, **overrides)
    hits = retriever.retrieve(args.query)
    if args.json:
        print(json.dumps([h.source.to_dict() for h in hits], indent=2, ensure_ascii=False))
        return 0
    if not hits:
        print("no passages found")
        return 0
    for rank, hit in enumerate(hits, start=1):
        src = hit.source
        where = f"{src.document}" + (f" ({hit.chunk.heading})" if hit.chunk.heading else "")
        print(f"{rank}. {where}  score={src.score:.4f}")
        print(f"   {src.snippet}")
    return 0
