"""``ragft eval``: run strategies side by side over a question set and report quality and cost.

Every strategy is built from one config with one shared set of components (index and models
load once) and one meter whose ledger is ``<out>/ledger.jsonl``, so each figure in the table
can be traced to the metered calls behind it. ``--ab OTHER_CONFIG`` runs the same strategies
under a second config and tests the difference per strategy.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from ragft.config import RagftConfig, load_config
from ragft.errors import EvaluationError
from ragft.eval.questions import KINDS, Question, load_questions

__all__ = ["register", "run"]

RESULT_FILE = "result.json"
CSV_FILE = "results.csv"
PLOT_FILE = "quality_vs_cost.png"
LEDGER_FILE = "ledger.jsonl"


def register(subparsers: Any) -> None:
    """Add the ``eval`` command."""
    p = subparsers.add_parser(
        "eval",
        help="compare strategies on a question set (quality, cost, latency)",
        description="Answer every question with every strategy and print a side-by-side table "
        "of exact match, F1, citations, abstention, cost per query and latency. Writes "
        f"{RESULT_FILE}, {CSV_FILE}, {PLOT_FILE} and the call ledger to --out.",
    )
    p.add_argument("--config", "-c", help="TOML config file (default: built-in defaults)")
    p.add_argument("--questions", "-q", default="corpus/questions.jsonl",
                   help="question file, JSONL (default: %(default)s)")
    p.add_argument("--strategies", "-s",
                   help="comma-separated strategy names, e.g. rag,finetuned,cascade "
                   "(default: the config's [strategy] name)")
    p.add_argument("--limit", type=int, help="evaluate only the first N questions (after --kinds)")
    p.add_argument("--kinds", help=f"comma-separated question kinds to keep ({', '.join(KINDS)})")
    p.add_argument("--out", "-o", help="output directory (default: <home>/eval/<timestamp>/)")
    p.add_argument("--concurrency", type=int, default=1, help="questions answered at once per strategy")
    p.add_argument("--ab", metavar="OTHER_CONFIG",
                   help="also run the strategies under this config and A/B-test each one")
    p.add_argument("--judge", action="store_true",
                   help="grade answers 1-5 with the config's chat model (OpenAI backend; costs calls)")
    p.add_argument("--metric", choices=("f1", "contains", "exact_match"), default="f1",
                   help="quality measure for the plot and the A/B test (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=run)


def _names(value: str | None, cfg: RagftConfig) -> list[str]:
    from ragft.strategies import available_strategies

    names = [n.strip() for n in (value or cfg.strategy.name).split(",") if n.strip()]
    unknown = [n for n in names if n not in available_strategies()]
    if unknown:
        raise EvaluationError(
            f"unknown strateg{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}; "
            f"available: {', '.join(available_strategies())}"
        )
    if len(set(names)) != len(names):
        raise EvaluationError(f"--strategies lists a name twice: {value}")
    return names


def _evaluate(cfg: RagftConfig, names: list[str], questions: list[Question], out: Path,
              args: argparse.Namespace, meta: dict[str, Any]) -> Any:
    """Build the strategies on shared parts and one ledger-backed meter, then run them."""
    from ragft.components import Components, build_meter
    from ragft.eval.harness import run_eval
    from ragft.eval.judge import LLMJudge
    from ragft.metering.meter import Ledger, Meter
    from ragft.strategies import build_strategy

    base = build_meter(cfg, ledger=False)  # the config's prices and budget ...
    meter = Meter(base.prices, ledger=Ledger(out / LEDGER_FILE), budget=base.budget)  # ... our ledger
    with Components(cfg, meter) as parts:  # closed after the run: models may hold servers
        strategies = {n: build_strategy(cfg, strategy=n, meter=meter, parts=parts) for n in names}
        judge = LLMJudge(parts.base_chat(), meter=meter) if args.judge else None
        return run_eval(
            strategies, questions, meter=meter, concurrency=args.concurrency,
            progress=not args.no_progress, judge=judge, meta=meta,
        )


def _write(result: Any, out: Path, metric: str) -> list[Path]:
    from ragft.eval.harness import plot_quality_vs_cost

    written = [result.to_json(out / RESULT_FILE), result.to_csv(out / CSV_FILE)]
    try:
        written.append(plot_quality_vs_cost(result, out / PLOT_FILE, metric=metric))
    except EvaluationError as exc:  # matplotlib missing: the numbers matter more than the picture
        print(f"ragft: warning: no plot: {exc}", file=sys.stderr)
    return written


def _explain_errors(result: Any) -> None:
    """Say why questions failed: the table only counts them, and a broken backend (bad key,
    unreachable server) otherwise looks like a strategy that scores zero."""
    for name in result.strategies:
        records = result.records_for(name)
        errors = [r.error for r in records if r.error]
        if not errors:
            continue
        print(f"ragft: warning: {name}: {len(errors)} of {len(records)} questions failed; "
              "the table's scores count them as wrong. Errors:", file=sys.stderr)
        for message in list(dict.fromkeys(errors))[:3]:
            print(f"  {message}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Run the evaluation (and the A/B comparison with ``--ab``), print, write the files.

    Exit code 3 means the run finished but some strategy's cost did not match its ledger
    roll-up (a metering bug worth reporting); the table says which. Exit code 4 means a
    strategy hit a fatal error (rejected key, unknown model, spent run budget) and its
    remaining questions were skipped: its scores are not a measurement.
    """
    from ragft.eval.harness import format_table

    cfg = load_config(args.config)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()] if args.kinds else None
    questions = load_questions(args.questions, kinds=kinds, limit=args.limit)
    names = _names(args.strategies, cfg)
    for c in (cfg, load_config(args.ab) if args.ab else None):
        if args.judge and c is not None and c.provider != "openai":
            # The offline reader cannot grade free text; fail before any strategy runs.
            raise EvaluationError(
                "--judge needs a real chat model: set OPENAI_API_KEY (or [backend] provider = "
                "\"openai\" with a base_url) so the config's chat model can grade answers"
            )
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else cfg.home_path / "eval" / stamp
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EvaluationError(f"cannot create the output directory {out}: {exc}; pass another "
                              "--out") from exc
    meta = {
        "config": str(args.config) if args.config else None, "questions": str(args.questions),
        "kinds": kinds, "limit": args.limit, "provider": cfg.provider,
        "chat_model": cfg.chat_model, "embedding_model": cfg.embedding_model,
    }
    result = _evaluate(cfg, names, questions, out, args, meta)
    print(format_table(result))
    _explain_errors(result)
    written = _write(result, out, args.metric)

    if args.ab:
        from ragft.eval.ab import compare_ab, save_ab_reports

        cfg_b = load_config(args.ab)
        out_b = out / "b"
        out_b.mkdir(parents=True, exist_ok=True)
        meta_b = {**meta, "config": str(args.ab), "provider": cfg_b.provider,
                  "chat_model": cfg_b.chat_model, "embedding_model": cfg_b.embedding_model}
        result_b = _evaluate(cfg_b, names, questions, out_b, args, meta_b)
        print(f"\nB: {args.ab}")
        print(format_table(result_b))
        _explain_errors(result_b)
        written += [*_write(result_b, out_b, args.metric), out_b / LEDGER_FILE]
        config_a = Path(args.config).name if args.config else "defaults"
        reports = [
            compare_ab(result, result_b, strategy_a=n, strategy_b=n, metric=args.metric,
                       labels=(f"{n} @ {config_a}", f"{n} @ {Path(args.ab).name}"))
            for n in names
        ]
        for report in reports:
            print()
            print(report.summary())
        written.append(save_ab_reports(reports, out / "ab.json", meta={"a": args.config, "b": args.ab}))

    written.insert(0, out / LEDGER_FILE)
    print("\nwrote " + ", ".join(str(p) for p in written))
    if not result.costs_traced:
        return 3
    skipped = any((r.error or "").startswith("skipped after a fatal error") for r in result.records)
    return 4 if skipped else 0
