"""``ragft cost``: estimate one-off costs (``estimate``) and project monthly costs (``compare``).

``ragft cost estimate corpus/docs`` prices embedding a corpus; ``ragft cost estimate
train.jsonl --epochs auto`` prices a fine-tuning job. ``ragft cost compare`` prints the monthly
cost of each strategy at several volumes and where they break even, from measured costs
(``--from-eval result.json``) and/or typed-in ones (``--strategy rag=0.15:100``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Literal

from ragft.cli._args import parse_count
from ragft.errors import EvaluationError
from ragft.metering.prices import PriceTable

__all__ = ["parse_strategy_spec", "register", "run_compare", "run_estimate"]

DEFAULT_VOLUMES = "1000,10000,100000,1000000"


def _volumes(text: str) -> list[int]:
    # Commas separate volumes here, so they cannot also be thousands separators.
    return [parse_count(v) for v in text.split(",") if v.strip()]


def parse_strategy_spec(spec: str) -> tuple[str, float | None, float | None, float | None]:
    """``NAME=COST_PER_QUERY[:FIXED_MONTHLY[:SETUP]]`` -> ``(name, cpq, fixed, setup)``.

    An empty field is ``None`` (keep the measured figure from ``--from-eval``), so
    ``finetuned=:100`` adds $100/month to the measured cost per query.
    """
    name, sep, values = spec.partition("=")
    name = name.strip()
    if not sep or not name:
        raise EvaluationError(
            f"--strategy {spec!r}: expected NAME=COST_PER_QUERY[:FIXED_MONTHLY[:SETUP]], "
            "e.g. rag=0.15:100 or finetuned=0.03:0:500"
        )
    parts = values.split(":")
    if len(parts) > 3:
        raise EvaluationError(f"--strategy {spec!r}: at most three numbers (per query, monthly, setup)")
    numbers: list[float | None] = []
    for part in parts + [""] * (3 - len(parts)):
        part = part.strip().lstrip("$")
        if not part:
            numbers.append(None)
            continue
        try:
            number = float(part)
        except ValueError:
            raise EvaluationError(f"--strategy {spec!r}: {part!r} is not a number") from None
        if number < 0:
            raise EvaluationError(f"--strategy {spec!r}: costs must be >= 0")
        numbers.append(number)
    return name, numbers[0], numbers[1], numbers[2]


def register(subparsers: Any) -> None:
    """Add the ``cost`` command with its ``estimate`` and ``compare`` subcommands."""
    p = subparsers.add_parser(
        "cost",
        help="estimate indexing/training costs and project monthly costs per strategy",
        description="Estimate one-off costs before paying them, and compare strategies' "
        "monthly costs at several query volumes.",
    )
    sub = p.add_subparsers(dest="cost_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), 1)[1])

    e = sub.add_parser(
        "estimate",
        help="cost of embedding a corpus directory or fine-tuning on a JSONL file",
        description="A directory is priced as embedding every document once; a .jsonl file as "
        "a fine-tuning job (chat-format examples, or raw question/answer, query/rewrite or "
        "query/label pairs).",
    )
    e.add_argument("path", help="corpus directory or training .jsonl file")
    e.add_argument("--model", "-m", help="embedding model (default text-embedding-3-small) or "
                   "base model to fine-tune (default gpt-4.1-mini)")
    e.add_argument("--epochs", default="auto", help="training epochs, or 'auto' (default)")
    e.add_argument("--backend", choices=("api", "lora"), default="api",
                   help="lora: price a self-hosted LoRA run as hours at the config's [prices] "
                   "gpu_usd_per_hour, from the training throughput measured by earlier LoRA "
                   "jobs in the home's ledger (or --tokens-per-second)")
    e.add_argument("--tokens-per-second", type=float,
                   help="LoRA training throughput to assume instead of the measured one")
    e.add_argument("--config", "-c", help="TOML config whose [prices] overrides apply")
    e.add_argument("--json", action="store_true", help="print the estimate as JSON")
    e.set_defaults(func=run_estimate)

    c = sub.add_parser(
        "compare",
        help="monthly cost per strategy at several volumes, and break-even volumes",
        description="monthly(v) = cost_per_query x v + fixed_monthly + setup / amortize_months. "
        "Costs per query come from an evaluation (--from-eval) or are given with --strategy.",
    )
    c.add_argument("--from-eval", metavar="RESULT_JSON", help="take measured costs per query from an eval result")
    c.add_argument("--strategy", "-s", action="append", default=[], metavar="NAME=CPQ[:FIXED[:SETUP]]",
                   help="a strategy's cost per query, fixed monthly cost and one-off setup cost "
                   "(repeatable); an empty CPQ keeps the measured one, e.g. finetuned=:100")
    c.add_argument("--volumes", default=DEFAULT_VOLUMES, type=_volumes,
                   help="comma-separated queries per month (default: %(default)s)")
    c.add_argument("--training-job", action="append", default=[], metavar="STRATEGY=JOB_ID",
                   help="take STRATEGY's setup cost from the ledger's record of that fine-tuning "
                   "job (tokens, and GPU time for LoRA runs) (repeatable; needs --config)")
    c.add_argument("--config", "-c", help="TOML config whose home holds the ledger")
    c.add_argument("--amortize-months", type=int, default=12, help="months over which setup is spread")
    c.add_argument("--update-frequency", metavar="daily|weekly|monthly|quarterly|static|N/month",
                   help="how often the knowledge changes: each strategy's cost per update is added "
                   "to every month (from --freshness, or --update-cost)")
    c.add_argument("--freshness", metavar="FRESHNESS_JSON",
                   help="measured cost per update from `ragft measure freshness` (RAG: re-index; "
                   "fine-tuned strategies: re-train; cascade and router: both)")
    c.add_argument("--update-cost", action="append", default=[], metavar="NAME=USD",
                   help="a strategy's cost per update (repeatable; overrides --freshness)")
    c.add_argument("--json", action="store_true", help="print the projection as JSON")
    c.set_defaults(func=run_compare)


def _prices(config: str | None) -> PriceTable:
    if not config:
        return PriceTable.load()
    from ragft.components import build_meter
    from ragft.config import load_config

    return build_meter(load_config(config), ledger=False).prices


def _epochs(text: str) -> int | Literal["auto"]:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise EvaluationError(f"--epochs must be 'auto' or a whole number, got {text!r}") from None


def run_estimate(args: argparse.Namespace) -> int:
    """Print what embedding the corpus or running the training job would cost."""
    from ragft.eval.cost import estimate_corpus_embedding, estimate_training_file

    path = Path(args.path)
    prices = _prices(args.config)
    if path.is_dir():
        est = estimate_corpus_embedding(path, model=args.model or "text-embedding-3-small", prices=prices)
    elif path.is_file() and args.backend == "lora":
        est = _estimate_lora(args, path, prices)
    elif path.is_file():
        est = estimate_training_file(
            path, model=args.model or "gpt-4.1-mini", epochs=_epochs(args.epochs), prices=prices
        )
    else:
        raise EvaluationError(f"{path} is neither a corpus directory nor a training file")
    print(json.dumps(est.to_dict(), indent=2) if args.json else est.summary())
    return 0


def _ledger_records(config: str | None) -> list[Any]:
    from ragft.components import build_meter
    from ragft.config import load_config

    ledger = build_meter(load_config(config)).ledger
    return ledger.read() if ledger is not None else []


def _estimate_lora(args: argparse.Namespace, path: Path, prices: PriceTable) -> Any:
    from ragft.eval.cost import estimate_lora_training, measured_training_throughput

    if args.tokens_per_second:
        speed, source = float(args.tokens_per_second), "given"
    else:
        measured = measured_training_throughput(_ledger_records(args.config))
        if measured is None:
            raise EvaluationError(
                "no LoRA training measured in this home's ledger yet: run a short job first "
                "(`ragft finetune start FILE --backend lora --model smollm2 --hp max_steps=5 "
                "--wait`) or pass --tokens-per-second"
            )
        speed, jobs = measured
        source = f"measured over {jobs} job(s) in the ledger"
    return estimate_lora_training(path, tokens_per_second=speed, epochs=_epochs(args.epochs),
                                  gpu_usd_per_hour=prices.gpu_usd_per_hour,
                                  throughput_source=source)


def _simulated(args: argparse.Namespace) -> dict[str, str]:
    """Which inputs carry simulated prices (``ragft eval/measure --price-as``), and as what."""
    from ragft.eval.freshness import FreshnessReport
    from ragft.eval.harness import EvalResult

    out = {}
    if args.from_eval and (label := EvalResult.from_json(args.from_eval).meta.get("simulated_prices")):
        out["costs per query"] = str(label)
    if getattr(args, "freshness", None) and (label := FreshnessReport.from_json(args.freshness).simulated_prices):
        out["costs per update"] = str(label)
    return out


def _with_updates(costs: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Add the per-update cost times the update frequency to each strategy."""
    from dataclasses import replace

    from ragft.eval.cost import update_costs_from_freshness
    from ragft.eval.freshness import FreshnessReport, parse_update_frequency
    from ragft.eval.harness import EvalResult

    if not args.update_frequency:
        if args.freshness or args.update_cost:
            raise EvaluationError("--freshness and --update-cost need --update-frequency (e.g. weekly)")
        return costs
    label, per_month = parse_update_frequency(args.update_frequency)
    per_update: dict[str, float] = {}
    if args.freshness:
        report = FreshnessReport.from_json(args.freshness)
        kinds = (EvalResult.from_json(args.from_eval).meta.get("strategy_kinds", {}) if args.from_eval else {})
        per_update = update_costs_from_freshness(report, {n: str(kinds.get(n, n)) for n in costs})
    for spec in args.update_cost:
        name, _, usd = spec.partition("=")
        try:
            per_update[name.strip()] = float(usd)
        except ValueError:
            raise EvaluationError(f"--update-cost {spec!r}: use NAME=USD, e.g. finetuned=25") from None
    unknown = sorted(set(per_update) - set(costs))
    if unknown:
        raise EvaluationError(f"--update-cost names {', '.join(unknown)}, which is not being compared")
    if not per_update:
        raise EvaluationError(f"--update-frequency {label}: say what an update costs with --freshness "
                              "FRESHNESS_JSON or --update-cost NAME=USD")
    return {n: replace(c, update_cost=per_update.get(n, 0.0), updates_per_month=per_month)
            for n, c in costs.items()}


def run_compare(args: argparse.Namespace) -> int:
    """Print the monthly cost table and break-even volumes."""
    from ragft.eval.cost import StrategyCost, costs_from_eval, project_monthly_costs

    costs: dict[str, StrategyCost] = {}
    if args.from_eval:
        costs = costs_from_eval(args.from_eval, amortize_months=args.amortize_months)
    for spec in args.strategy:
        name, cpq, fixed, setup = parse_strategy_spec(spec)
        measured = costs.get(name)
        if cpq is None and measured is None:
            raise EvaluationError(
                f"--strategy {spec!r}: no cost per query given and {name!r} is not in "
                f"{'the eval result' if args.from_eval else 'any --from-eval result'}"
            )
        costs[name] = StrategyCost(
            cost_per_query=cpq if cpq is not None else measured.cost_per_query,  # type: ignore[union-attr]
            fixed_monthly=fixed if fixed is not None else (measured.fixed_monthly if measured else 0.0),
            setup_cost=setup if setup is not None else (measured.setup_cost if measured else 0.0),
            amortize_months=args.amortize_months,
        )
    if args.training_job:
        from ragft.eval.cost import job_training_cost

        records = _ledger_records(args.config)
        for spec in args.training_job:
            name, sep, job_id = spec.partition("=")
            if not sep or name.strip() not in costs:
                raise EvaluationError(
                    f"--training-job {spec!r}: expected STRATEGY=JOB_ID with a strategy from "
                    f"--from-eval or --strategy (have: {', '.join(costs) or 'none'})"
                )
            base = costs[name.strip()]
            costs[name.strip()] = StrategyCost(
                cost_per_query=base.cost_per_query, fixed_monthly=base.fixed_monthly,
                setup_cost=base.setup_cost + job_training_cost(records, job_id.strip()),
                amortize_months=base.amortize_months)
    if not costs:
        raise EvaluationError(
            "nothing to compare: pass --from-eval result.json and/or --strategy NAME=COST_PER_QUERY, "
            "e.g. --strategy rag=0.15 --strategy finetuned=0.03:100"
        )
    costs = _with_updates(costs, args)
    projection = project_monthly_costs(costs, args.volumes)
    simulated = _simulated(args)
    if args.json:
        print(json.dumps({**projection.to_dict(), "simulated_prices": simulated}, indent=2))
    else:
        for what, label in simulated.items():
            print(f"SIMULATED PRICES in the {what}: local models charged as {label}; not real costs")
        print(projection.format())
    return 0
