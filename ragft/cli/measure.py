"""``ragft measure``: the guide's trade-offs measured on your own setup.

* ``ragft measure freshness`` — how long until a new or changed fact is answered: RAG (index
  update + answer) and fine-tuning (data preparation + training + evaluation gate + promotion)
  on each ``--backend``; ``--job`` reads a past job's timings from its timestamps instead
  (OpenAI, where a new job costs hours and money). Runs in a scratch copy.
* ``ragft measure context`` — `rag`'s quality, tokens and cost as ``top_k`` grows, with the
  position of the gold passage; writes JSON and a PNG.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from ragft.cli._meter import add_price_as, measuring_meter, simulated_label
from ragft.config import RagftConfig, load_config
from ragft.errors import EvaluationError

__all__ = ["register", "run_context", "run_freshness"]

FRESHNESS_FILE = "freshness.json"
CONTEXT_FILE = "context_curve.json"
CONTEXT_PLOT = "context_curve.png"


def register(subparsers: Any) -> None:
    """Add the ``measure`` command group."""
    p = subparsers.add_parser(
        "measure", help="measure update time (freshness) and context-size effects",
        description="freshness: time until a new or changed fact is answered, RAG (index update + "
        "answer) vs fine-tuning (data preparation + training + evaluation gate + promotion). "
        "context: rag's quality, tokens and cost as top_k grows, with the gold passage's position.",
    )
    p.set_defaults(func=lambda args: (p.print_help(), 1)[1])
    sub = p.add_subparsers(dest="measure_command", metavar="WHAT")

    f = sub.add_parser("freshness", help="time until a new/changed fact is answered: RAG vs fine-tuning",
                       description="Add a synthetic fact document, then change it, and time how long "
                       "each approach takes to answer it correctly, in a scratch copy of the index.")
    f.add_argument("--config", "-c", help="TOML config file (default: built-in defaults)")
    f.add_argument("--backend", "-b", action="append", default=None,
                   help="fine-tuning backend to measure, as `ragft finetune start --backend` names it "
                   "(repeatable; default: local)")
    f.add_argument("--base-model", help="model the --backend fine-tunes (default: local for the local "
                   "backend, else the config's chat model)")
    f.add_argument("--training-data", metavar="JSONL",
                   help="question/answer JSONL the fine-tuned generator is retrained on with the fact "
                   "(e.g. corpus/finetune/qa_train.jsonl); default: the fact alone")
    f.add_argument("--job", metavar="JOB_ID",
                   help="also report a finished job's queue and training time from its own "
                   "timestamps (e.g. an OpenAI ftjob-... id from `ragft finetune list`)")
    f.add_argument("--out", "-o", help=f"output directory for {FRESHNESS_FILE} (default: <home>/measure/<timestamp>/)")
    f.add_argument("--json", action="store_true", help="print the report as JSON")
    add_price_as(f)
    f.set_defaults(func=run_freshness)

    c = sub.add_parser("context", help="rag quality and cost as top_k grows, with the gold passage's position",
                       description="Answer the questions with rag at several retrieval depths and report "
                       "quality, prompt tokens, cost and where the gold passage sat.")
    c.add_argument("--config", "-c", help="TOML config file (default: built-in defaults)")
    c.add_argument("--questions", "-q", default="corpus/questions.jsonl", help="question file (default: %(default)s)")
    c.add_argument("--depths", default="1,2,3,5,8,12,20", help="comma-separated top_k values (default: %(default)s)")
    c.add_argument("--context-tokens", type=int,
                   help="context budget in tokens (default: the config's [retrieval] context_tokens)")
    c.add_argument("--limit", type=int, help="only the first N questions")
    c.add_argument("--out", "-o", help="output directory (default: <home>/measure/<timestamp>/)")
    c.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_price_as(c)
    c.set_defaults(func=run_context)


def _out(cfg: RagftConfig, value: str | None) -> Path:
    out = Path(value) if value else cfg.home_path / "measure" / datetime.now().strftime("%Y%m%d-%H%M%S")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EvaluationError(f"cannot create the output directory {out}: {exc}; pass another --out") from exc
    return out


def _read_pairs(path: str) -> list[dict[str, Any]]:
    p = Path(path)
    try:
        rows = [json.loads(line) for line in p.read_text("utf-8").splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as exc:
        raise EvaluationError(f"cannot read the training data {p}: {exc}") from None
    bad = [i for i, r in enumerate(rows, start=1) if not (isinstance(r, dict) and r.get("question") and r.get("answer"))]
    if bad:
        raise EvaluationError(f"{p} line {bad[0]}: expected {{\"question\": ..., \"answer\": ...}}")
    return rows


def run_freshness(args: argparse.Namespace) -> int:
    """Measure and print the update times; write ``freshness.json``."""
    from ragft.components import backend_of_job, build_job_manager
    from ragft.eval.freshness import run_freshness as measure
    from ragft.eval.freshness import timings_from_job

    cfg = load_config(args.config)
    training = _read_pairs(args.training_data) if args.training_data else []
    meter = measuring_meter(cfg, None, args)
    print("measuring in a scratch copy of the index (your index, registry and models are not touched) ...",
          file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="ragft-freshness-") as scratch:
        report = measure(cfg, backends=args.backend or ["local"],
                         base_models={b: args.base_model for b in args.backend or ["local"]}
                         if args.base_model else None,
                         training=training, meter=meter, scratch=Path(scratch))
    if args.job:
        report.measurements.append(timings_from_job(build_job_manager(cfg, backend_of_job(args.job)), args.job))
    path = report.to_json(_out(cfg, args.out) / FRESHNESS_FILE)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.summary())
    print(f"\nwrote {path}", file=sys.stderr)
    return 0 if all(m.correct is not False for m in report.measurements) else 4


def run_context(args: argparse.Namespace) -> int:
    """Measure the context-size curve; write JSON and the PNG."""
    from ragft.components import Components
    from ragft.eval.context_size import measure_context_curve
    from ragft.eval.plots import plot_context_curve
    from ragft.eval.questions import load_questions
    from ragft.strategies import RAG

    cfg = load_config(args.config)
    try:
        depths = sorted({int(x) for x in args.depths.split(",") if x.strip()})
    except ValueError:
        raise EvaluationError(f"--depths {args.depths!r}: give comma-separated integers, e.g. 1,3,5,10") from None
    if not depths or depths[0] < 1 or depths[-1] > 100:
        raise EvaluationError(f"--depths {args.depths!r}: each depth must be between 1 and 100")
    questions = load_questions(args.questions, limit=args.limit)
    budget = args.context_tokens or cfg.retrieval.context_tokens
    out = _out(cfg, args.out)
    meter = measuring_meter(cfg, out / "ledger.jsonl", args)
    with Components(cfg, meter) as parts:  # closed after the run: models may hold servers
        retriever, chat = parts.retriever(), parts.base_chat()

        def build(k: int) -> RAG:
            return RAG(retriever, chat, meter=meter, top_k=k, context_tokens=budget,
                       max_tokens=cfg.strategy.max_tokens, min_confidence=cfg.strategy.min_confidence,
                       name=f"rag@{k}")

        label = simulated_label(meter)
        with meter.collect(**({"simulated_prices": label} if label else {})):  # marks every ledger line
            curve = measure_context_curve(build, questions, meter=meter, depths=depths,
                                          progress=not args.no_progress, context_budget=budget)
    print(curve.summary())
    written = [curve.to_json(out / CONTEXT_FILE), plot_context_curve(curve, out / CONTEXT_PLOT)]
    print("\nwrote " + ", ".join(str(p) for p in written if p.exists()), file=sys.stderr)
    return 0
