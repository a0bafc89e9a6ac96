"""Calibrate the local extractive reader's abstention threshold on data the evaluation set
does not contain: answerable questions from corpus/finetune/qa_train.jsonl and the
out-of-scope queries of corpus/finetune/routes.jsonl.

    python benchmarks/reader_threshold.py [--home DIR]

Prints, per threshold, the share of answerable questions still answered and the share of
out-of-scope queries refused, and their mean (balanced accuracy). The reader's default
``min_confidence`` is the middle of the best plateau here; corpus/questions.jsonl stays
untouched for evaluation.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragft.config import load_config  # noqa: E402
from ragft.components import Components, build_meter  # noqa: E402
from ragft.models.local import ExtractiveReader  # noqa: E402
from ragft.strategies import RAG  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", help="ragft home with an index of corpus/docs (default: a temp dir)")
    args = ap.parse_args()
    home = args.home or tempfile.mkdtemp(prefix="ragft-threshold-")
    cfg = load_config(env={"RAGFT_HOME": home}, overrides={"index.corpus": str(ROOT / "corpus" / "docs")})
    meter = build_meter(cfg, ledger=False)
    parts = Components(cfg, meter)
    parts.knowledge_base().sync(cfg.corpus_path, progress=False)
    # min_confidence=0: keep every answer and look at the confidence it would be judged by.
    rag = RAG(parts.retriever(), ExtractiveReader(parts.local_embedder(), min_confidence=0.0), meter=meter)
    read = lambda name: [json.loads(x) for x in (ROOT / "corpus" / "finetune" / name).read_text().splitlines() if x.strip()]  # noqa: E731
    answerable = [r["question"] for r in read("qa_train.jsonl")]
    out_of_scope = [r["query"] for r in read("routes.jsonl") if r["label"] == "out_of_scope"]
    ca = np.array([rag.answer(q).confidence or 0.0 for q in answerable])
    co = np.array([rag.answer(q).confidence or 0.0 for q in out_of_scope])
    print(f"{len(answerable)} answerable, {len(out_of_scope)} out-of-scope queries")
    print("threshold  answered  refused-oos  balanced")
    best = max(np.arange(0.25, 0.60, 0.025), key=lambda t: ((ca >= t).mean() + (co < t).mean()))
    for t in np.arange(0.25, 0.60, 0.025):
        kept, refused = (ca >= t).mean(), (co < t).mean()
        mark = "  <- best" if abs(t - best) < 1e-9 else ""
        print(f"   {t:5.3f}     {kept:5.2f}        {refused:5.2f}     {(kept + refused) / 2:5.3f}{mark}")


if __name__ == "__main__":
    main()
