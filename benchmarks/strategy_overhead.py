"""answer() overhead beyond model calls, per strategy (target < 5 ms).

    python benchmarks/strategy_overhead.py [--home DIR] [--repeats 3]

For every answer, overhead = wall time of ``answer()`` minus the summed latency of the model
calls it made (each call's latency is measured by the meter around the model alone). What is
left is ragft's own work: retrieval over FAISS and BM25 (not a model call), context packing,
token counting for the budget, prompt building, metering, route bookkeeping. Runs offline on
the sample corpus with the local backend, training the local fine-tunes if the home has none.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragft.components import REGISTRY_FILE, Components, build_meter  # noqa: E402
from ragft.config import load_config  # noqa: E402
from ragft.strategies import build_strategy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["rag", "finetuned", "ft_rag", "rewrite_rag", "router", "cascade"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", help="ragft home (default: a temp dir, indexed and trained here)")
    ap.add_argument("--repeats", type=int, default=3, help="passes over the questions")
    args = ap.parse_args()
    home = Path(args.home or tempfile.mkdtemp(prefix="ragft-overhead-"))
    cfg = load_config(env={"RAGFT_HOME": str(home)}, overrides={"index.corpus": str(ROOT / "corpus" / "docs")})
    meter = build_meter(cfg, ledger=False)
    parts = Components(cfg, meter)
    parts.knowledge_base().sync(cfg.corpus_path, progress=False)
    if not (home / REGISTRY_FILE).exists():
        subprocess.run([sys.executable, str(ROOT / "examples" / "finetune_local.py"), "--home", str(home)],
                       check=True, stdout=subprocess.DEVNULL)
    questions = [json.loads(x)["question"] for x in (ROOT / "corpus" / "questions.jsonl").read_text().splitlines()][:40]
    print(f"{len(questions)} questions x {args.repeats} passes (first pass warms caches, not counted)")
    print(f"{'strategy':12} {'answer p50':>10} {'model calls p50':>16} {'overhead p50':>13} {'overhead p95':>13}")
    results = {}
    for name in NAMES:
        strategy = build_strategy(cfg, strategy=name, meter=meter, parts=parts)
        for q in questions:  # warm-up: caches, lazy BM25 build, model loading
            strategy.answer(q)
        overheads, totals, models = [], [], []
        for _ in range(args.repeats):
            for q in questions:
                a = strategy.answer(q)
                model_s = a.model_latency_s
                totals.append(a.latency_s)
                models.append(model_s)
                overheads.append(a.latency_s - model_s)
        ov = sorted(overheads)
        p95 = ov[int(0.95 * (len(ov) - 1))]
        results[name] = {"answer_p50_ms": statistics.median(totals) * 1e3, "model_p50_ms": statistics.median(models) * 1e3,
                         "overhead_p50_ms": statistics.median(ov) * 1e3, "overhead_p95_ms": p95 * 1e3}
        r = results[name]
        print(f"{name:12} {r['answer_p50_ms']:8.2f}ms {r['model_p50_ms']:14.2f}ms {r['overhead_p50_ms']:11.2f}ms {r['overhead_p95_ms']:11.2f}ms")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "strategy_overhead.json").write_text(json.dumps(results, indent=2))
    print("target: overhead < 5 ms per answer")


if __name__ == "__main__":
    main()
