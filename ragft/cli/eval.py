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

from ragft.cli._meter import add_price_as, measuring_meter, simulated_label
from ragft.config import RagftConfig, load_config
from ragft.errors import EvaluationError
from ragft.eval.questions import KINDS, Question, load_questions

__all__ = ["register", "run"]

RESULT_FILE = "result.json"
CSV_FILE = "results.csv"
PLOT_FILE = "quality_vs_cost.png"
LEDGER_FILE = "ledger.jsonl"
FAILURE_CSV_FILE = "failure_modes.csv"


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
    p.add_argument("--training-data", metavar="JSONL",
                   help="the fine-tuned model's training data (chat JSONL or question/answer JSONL): "
                   "answers too close to it on out-of-scope prompts count as overfitting")
    p.add_argument("--no-probes", action="store_true",
                   help="skip the greeting and general-knowledge probes (overfitting, forgetting)")
    add_price_as(p)
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
    """Build the strategies on shared parts and one ledger-backed meter, run them, then the
    probes, and classify every answer's failure modes."""
    from ragft.components import Components
    from ragft.eval.failure_modes import analyze, load_training_answers
    from ragft.eval.harness import run_eval
    from ragft.eval.judge import LLMJudge
    from ragft.eval.probes import run_probes
    from ragft.strategies import build_strategy

    training = load_training_answers(args.training_data) if args.training_data else []
    meter = measuring_meter(cfg, out / LEDGER_FILE, args)
    simulated = simulated_label(meter)
    tags = {"simulated_prices": simulated} if simulated else {}
    # Components are closed after the run (models may hold servers); every ledger line of a
    # simulated run says so.
    with Components(cfg, meter) as parts, meter.collect(**tags):
        strategies = {n: build_strategy(cfg, strategy=n, meter=meter, parts=parts) for n in names}
        judge = LLMJudge(parts.base_chat(), meter=meter) if args.judge else None
        result = run_eval(
            strategies, questions, meter=meter, concurrency=args.concurrency,
            progress=not args.no_progress, judge=judge, meta={**meta, "simulated_prices": simulated},
        )
        probes = {}
        if not args.no_probes:
            probed = dict(strategies)
            if "base" not in probed:  # the reference for catastrophic forgetting
                probed["base"] = build_strategy(cfg, strategy="base", meter=meter, parts=parts)
            probes = run_probes(probed, meter=meter, run_id=result.run_id)
    analyze(result, threshold=cfg.strategy.cascade.threshold, training_answers=training, probes=probes)
    result.meta["probes"] = {n: [p.to_dict() for p in answers] for n, answers in probes.items()}
    return result


def _write(result: Any, out: Path, metric: str) -> list[Path]:
    from ragft.eval.failure_modes import write_failure_modes_csv
    from ragft.eval.plots import plot_quality_vs_cost

    written = [result.to_json(out / RESULT_FILE), result.to_csv(out / CSV_FILE),
               write_failure_modes_csv(result, out / FAILURE_CSV_FILE)]
    try:
        written.append(plot_quality_vs_cost(result, out / PLOT_FILE, metric=metric,
                                            simulated=result.meta.get("simulated_prices")))
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


def _answered_nothing(result: Any) -> list[str]:
    """Strategies that answered none of their questions (every one failed or was skipped)."""
    return [n for n in result.strategies if all(r.error for r in result.records_for(n))]


def _remove_if_empty(created: list[Path]) -> None:
    """Remove the folders this run created if a failure left them empty (deepest first)."""
    for folder in reversed(created):
        try:
            folder.rmdir()  # only succeeds on an empty directory
        except OSError:
            pass


def _mkdir(path: Path, created: list[Path]) -> None:
    missing = [p for p in (path, *path.parents) if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EvaluationError(f"cannot create the output directory {path}: {exc}; pass another "
                              "--out") from exc
    created.extend(reversed(missing))


def run(args: argparse.Namespace) -> int:
    """Run the evaluation (and the A/B comparison with ``--ab``), print, write the files.

    Exit code 3 means the run finished but some strategy's cost did not match its ledger
    roll-up (a metering bug worth reporting); the table says which. Exit code 4 means some
    strategy's scores are not a measurement: it answered no question at all (every one failed),
    or it hit a fatal error (rejected key, unknown model, spent run budget) and its remaining
    questions were skipped. A run that fails before writing anything leaves no folder behind.
    """
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
    created: list[Path] = []
    _mkdir(out, created)
    try:
        return _run_in(args, cfg, names, questions, kinds, out, created)
    except BaseException:
        _remove_if_empty(created)
        raise


def _run_in(args: argparse.Namespace, cfg: RagftConfig, names: list[str], questions: list[Question],
            kinds: list[str] | None, out: Path, created: list[Path]) -> int:
    from ragft.eval.failure_modes import format_failure_modes
    from ragft.eval.harness import format_table

    meta = {
        "config": str(args.config) if args.config else None, "questions": str(args.questions),
        "kinds": kinds, "limit": args.limit, "provider": cfg.provider,
        "chat_model": cfg.chat_model, "embedding_model": cfg.embedding_model,
    }
    result = _evaluate(cfg, names, questions, out, args, meta)
    print(format_table(result))
    print()
    print(format_failure_modes(result))
    _explain_errors(result)
    written = [out / LEDGER_FILE, *_write(result, out, args.metric)]
    results = [result]

    if args.ab:
        from ragft.eval.ab import compare_ab, save_ab_reports

        cfg_b = load_config(args.ab)
        out_b = out / "b"
        _mkdir(out_b, created)
        meta_b = {**meta, "config": str(args.ab), "provider": cfg_b.provider,
                  "chat_model": cfg_b.chat_model, "embedding_model": cfg_b.embedding_model}
        result_b = _evaluate(cfg_b, names, questions, out_b, args, meta_b)
        results.append(result_b)
        print(f"\nB: {args.ab}")
        print(format_table(result_b))
        print()
        print(format_failure_modes(result_b))
        _explain_errors(result_b)
        written += [out_b / LEDGER_FILE, *_write(result_b, out_b, args.metric)]
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

    # The ledger file exists only once a call was metered (an API that was down leaves none).
    print("\nwrote " + ", ".join(str(p) for p in written if p.exists()))
    if not all(r.costs_traced for r in results):
        return 3
    silent = [n for r in results for n in _answered_nothing(r)]
    for name in dict.fromkeys(silent):
        print(f"ragft: error: {name} answered none of its questions; its scores are not a "
              "measurement (the errors are listed above)", file=sys.stderr)
    skipped = any((rec.error or "").startswith("skipped after a fatal error")
                  for r in results for rec in r.records)
    return 4 if silent or skipped else 0
