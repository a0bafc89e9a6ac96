"""Run every strategy side by side on the sample question set and print the comparison table
(quality, citations, abstention vs hallucination, cost per query, latency, route mix).

    python examples/compare_strategies.py [--limit 30]

The same as `ragft eval --config examples/configs/rag.toml --questions corpus/questions.jsonl`.
"""

import argparse
import sys

from _setup import ready

from ragft.components import Components, build_meter
from ragft.eval.harness import format_table, run_eval
from ragft.eval.questions import load_questions
from ragft.strategies import build_strategy

ap = argparse.ArgumentParser()
ap.add_argument("--limit", type=int, default=30, help="questions to use (default 30; 0 = all)")
args = ap.parse_args()

cfg = ready("rag.toml", need_finetuned=True)
meter = build_meter(cfg, ledger=False)
parts = Components(cfg, meter)
names = ["rag", "finetuned", "ft_rag", "rewrite_rag", "router", "cascade"]
strategies = {n: build_strategy(cfg, strategy=n, meter=meter, parts=parts) for n in names}
questions = load_questions(cfg.path("../../corpus/questions.jsonl"), limit=args.limit or None)
result = run_eval(strategies, questions, meter=meter, progress=sys.stderr.isatty())
print(format_table(result))
