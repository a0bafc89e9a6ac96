"""LoRA training throughput and memory for SmolLM2-135M-Instruct on this machine.

    nice python benchmarks/lora_training.py [--ranks 8,16] [--steps 4] [--batch 4]

For each rank, a fresh process loads SmolLM2-135M-Instruct from the installed GGUF
(de-quantized to float32 by transformers), trains a LoRA on all linear projections for
``--steps`` measured optimizer steps after one warm-up step, on P1-style examples (a document
of the sample corpus as context, a question, the answer; ~256 tokens each) and prints:
training tokens/s (tokens read, padding excluded, over the measured steps), seconds per step,
the load time and the process's RSS (after loading, after training, and its peak). Each rank runs in its own process so its peak RSS
is its own. Results also go to ``benchmarks/results/lora_training.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
SYSTEM = "Answer the question from the context. Cite the document."


def _examples(n: int) -> list[dict]:
    rows = [json.loads(line) for line in
            (ROOT / "corpus" / "finetune" / "qa_train.jsonl").read_text("utf-8").splitlines()]
    out = []
    for row in rows:
        cited = row["answer"].rsplit("(See: ", 1)[-1].rstrip(")")
        doc = ROOT / "corpus" / "docs" / cited
        context = doc.read_text("utf-8")[:900] if doc.is_file() else ""
        out.append({"messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Context:\n{context}\n\nQuestion: {row['question']}"},
            {"role": "assistant", "content": row["answer"]}]})
        if len(out) == n:
            break
    return out


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 0)
    return float("nan")


def run_one(rank: int, steps: int, batch: int, checkpointing: bool = False) -> dict:
    """Load, train ``1 + steps`` steps at ``rank``, measure (runs in its own process)."""
    import torch

    from ragft.finetune.lora.base_models import (
        load_base_model,
        load_tokenizer,
        pick_device,
        resolve_base_model,
    )
    from ragft.finetune.lora.chat_encoding import encode_file
    from ragft.finetune.lora.hyperparameters import LoraHyperparameters
    from ragft.finetune.lora.trainer import train_lora

    t0 = time.perf_counter()
    ref = resolve_base_model("smollm2")
    tok = load_tokenizer(ref, Path(tempfile.gettempdir()) / "ragft-bench-tokenizers")
    model = load_base_model(ref, pick_device())
    load_s = time.perf_counter() - t0
    rss_loaded = _rss_mb()
    work = Path(tempfile.mkdtemp(prefix="ragft-lora-bench-"))
    path = work / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _examples(batch * (steps + 1))))
    data = encode_file(path, tok, max_length=512)
    marks: list[tuple[float, int]] = []
    hp = LoraHyperparameters(rank=rank, batch_size=batch, max_steps=steps + 1, dropout=0.05,
                             gradient_checkpointing=checkpointing)
    train_lora(model, tok, data, hyperparameters=hp, work_dir=work / "run",
               on_progress=lambda kind, msg, d: marks.append((time.perf_counter(), d["tokens"]))
               if kind == "step" else None)
    (t1, tok1), (t2, tok2) = marks[0], marks[-1]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "rank": rank, "batch": batch, "measured_steps": steps,
        "gradient_checkpointing": checkpointing,
        "tokens_per_step": round((tok2 - tok1) / steps, 1),
        "tokens_per_second": round((tok2 - tok1) / (t2 - t1), 1),
        "seconds_per_step": round((t2 - t1) / steps, 2),
        "load_seconds": round(load_s, 1),
        "rss_after_load_mb": rss_loaded, "rss_after_training_mb": _rss_mb(),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0),
        "trainable_parameters": trainable, "threads": torch.get_num_threads(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", default="8,16", help="comma-separated LoRA ranks")
    ap.add_argument("--steps", type=int, default=4, help="measured optimizer steps per rank")
    ap.add_argument("--batch", type=int, default=4, help="examples per step")
    ap.add_argument("--gradient-checkpointing", action="store_true",
                    help="recompute activations in the backward pass (less memory)")
    ap.add_argument("--one-rank", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one_rank is not None:
        print(json.dumps(run_one(args.one_rank, args.steps, args.batch,
                                 args.gradient_checkpointing)))
        return
    results = []
    for rank in [int(r) for r in args.ranks.split(",")]:
        out = subprocess.run([sys.executable, __file__, "--one-rank", str(rank), "--steps",
                              str(args.steps), "--batch", str(args.batch)]
                             + (["--gradient-checkpointing"] if args.gradient_checkpointing else []),
                             capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = results[-1]
        print(f"r={rank:<3d}{' gc' if args.gradient_checkpointing else ''} "
              f"{r['tokens_per_second']:7.1f} training tokens/s  "
              f"{r['seconds_per_step']:5.2f} s/step ({r['tokens_per_step']:.0f} tokens)  "
              f"peak RSS {r['peak_rss_mb']:.0f} MB (after load {r['rss_after_load_mb']:.0f}, "
              f"after training {r['rss_after_training_mb']:.0f})  load {r['load_seconds']:.1f} s  "
              f"{r['trainable_parameters']:,} trainable parameters", flush=True)
    suffix = "-gradient-checkpointing" if args.gradient_checkpointing else ""
    target = ROOT / "benchmarks" / "results" / f"lora_training{suffix}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"smollm2-135m": results}, indent=2) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
