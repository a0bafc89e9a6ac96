"""Fine-tune offline, evaluate on held-out data, promote through a quality gate, roll back.

Trains three small local models on the sample corpus's training data (corpus/finetune/):

* a **router** (query -> factual / procedural / creative / out_of_scope),
* a **generator** (answers the trained questions without retrieval, abstains otherwise),
* a **rewriter** (casual query -> search query in the documents' vocabulary),

registers each in a model registry, measures it on a held-out split, and promotes it only if
it passes a gate. Then a deliberately weak router retrain is refused by the gate, forced
through anyway, and rolled back.

    python examples/finetune_local.py            # state in a temporary directory
    python examples/finetune_local.py --home .ragft   # keep it (then: ragft models list)

Everything runs offline on the MiniLM embedder; nothing is billed (local-ft models are free in
the price table, but their training tokens are still metered).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from ragft.metrics import token_f1
from ragft.errors import RegistryError
from ragft.finetune.data import (
    generator_examples,
    rewriter_examples,
    router_examples,
    split_examples,
    write_jsonl,
)
from ragft.finetune.jobs import JobEvent, JobManager
from ragft.finetune.backends.local import LocalFineTuneBackend
from ragft.finetune.registry import Gate, ModelRegistry, evaluate_model
from ragft.metering.meter import Meter
from ragft.models.local import MiniLMEmbedder
from ragft.models.local_ft import load_local_model
from ragft.prompts import ABSTAIN_TEXT

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus"
LABELS = ["factual", "procedural", "creative", "out_of_scope"]


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def show_event(event: JobEvent) -> None:
    # Print state changes and every other training step, not the whole log.
    step = event.data.get("step") if event.type == "metrics" else None
    if step is None or step == event.data.get("total_steps") or step == 1:
        print(f"      {event.message}")


def train(manager: JobManager, name: str, train_file: Path, val_file: Path | None,
          suffix: str, **kw: Any) -> Any:
    print(f"\n== training {name} ({suffix}) on {train_file.name}")
    job = manager.start(train_file, model="local", suffix=suffix, validation_file=val_file, **kw)
    status = manager.follow(job.job_id, on_event=show_event)
    print(f"   -> {status.fine_tuned_model}")
    return manager.get(job.job_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", help="state directory (default: a temporary one)")
    args = parser.parse_args()
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="ragft-ft-"))
    print(f"state directory: {home}")
    started = time.perf_counter()

    # 1. Training files: one chat JSONL per purpose, split by a stable hash.
    data = home / "data"
    sets = {
        "router": router_examples(read(CORPUS / "finetune" / "routes.jsonl"), LABELS),
        "generator": generator_examples(read(CORPUS / "finetune" / "qa_train.jsonl")),
        "rewriter": rewriter_examples(read(CORPUS / "finetune" / "rewrites.jsonl")),
    }
    files: dict[str, dict[str, Path]] = {}
    for name, examples in sets.items():
        parts = split_examples(examples, validation=0.1, test=0.2, seed=0)
        files[name] = {part: write_jsonl(getattr(parts, part), data / f"{name}.{part}.jsonl")
                       for part in ("train", "validation", "test")}
        print(f"{name}: {parts.sizes()}")

    # 2. Train on the local backend, through the same job manager as OpenAI jobs.
    embedder = MiniLMEmbedder()
    meter = Meter()
    backend = LocalFineTuneBackend(home / "models", embedder)
    manager = JobManager(backend, home / "jobs" / "local", meter=meter)
    registry = ModelRegistry(home / "registry.json")

    def register(name: str, job: Any) -> int:
        status = job.status
        version = registry.register(name, model_id=status.fine_tuned_model,
                                    base_model=status.model, purpose=job.purpose,
                                    job_id=job.job_id, training_file_sha256=job.training_sha256,
                                    metrics=status.metrics, backend="local")
        return version.version

    def evaluate(name: str, version: int, test_file: Path, prefix: str = "",
                 **kw: Any) -> dict[str, float]:
        model = load_local_model(registry.get(name, version).model_id, home / "models",
                                 embedder)
        metrics = evaluate_model(model, read(test_file), **kw)
        registry.set_metrics(name, version, {prefix + k: v for k, v in metrics.items()})
        shown = ", ".join(f"{k}={v:.3f}" for k, v in metrics.items() if k != "n")
        print(f"   held-out {name}@{version} ({int(metrics['n'])} examples): {shown}")
        return metrics

    def promote(name: str, version: int, gate: Gate) -> bool:
        try:
            registry.promote(name, version, gate=gate)
        except RegistryError as exc:
            print(f"   gate refused: {exc}")
            return False
        print(f"   promoted {name}@{version} (gate {gate.metric} >= {gate.min_value:.3f}); "
              f"registry:{name} -> {registry.resolve('registry:' + name)}")
        return True

    # Router: gate on held-out label accuracy.
    v1 = register("router", train(manager, "router", files["router"]["train"],
                                  files["router"]["validation"], "v1"))
    evaluate("router", v1, files["router"]["test"], labels=LABELS)
    promote("router", v1, Gate("accuracy", 0.75))

    # Generator: on its own held-out split it should abstain (it has never seen those
    # answers); on the project's question set it answers the paraphrases of what it was
    # trained on. Gate on precision-when-answering, the property a cascade relies on.
    gen = register("generator", train(manager, "generator", files["generator"]["train"],
                                      files["generator"]["validation"], "v1"))
    evaluate("generator", gen, files["generator"]["test"])
    probes = [{"messages": [{"role": "user", "content": q["question"]},
                            {"role": "assistant", "content": q["answer"] or ABSTAIN_TEXT}]}
              for q in read(CORPUS / "questions.jsonl")]
    probe_file = write_jsonl(probes, data / "questions.chat.jsonl")
    print("   on corpus/questions.jsonl (paraphrases + out-of-scope questions):")
    evaluate("generator", gen, probe_file, prefix="questions_")
    # The reference answers are worded differently from the trained ones: a right answer
    # scores about 0.6-0.9 token F1 against them, a wrong one under 0.2.
    promote("generator", gen, Gate("questions_answered_f1", 0.4))

    # Rewriter: must beat not rewriting at all (the query itself) on held-out pairs.
    rw = register("rewriter", train(manager, "rewriter", files["rewriter"]["train"],
                                    files["rewriter"]["validation"], "v1"))
    rw_metrics = evaluate("rewriter", rw, files["rewriter"]["test"])
    test_pairs = read(files["rewriter"]["test"])
    identity = sum(token_f1(ex["messages"][1]["content"], ex["messages"][2]["content"])
                   for ex in test_pairs) / len(test_pairs)
    print(f"   identity rewrite (the query unchanged) f1={identity:.3f}; "
          f"learned rewrite f1={rw_metrics['f1']:.3f}")
    promote("rewriter", rw, Gate("f1", identity))

    # 3. A bad retrain: a router on 10 examples (the minimum), over-regularised. The gate stops it...
    weak_file = write_jsonl(read(files["router"]["train"])[:10], data / "router.weak.jsonl")
    v2 = register("router", train(manager, "router", weak_file, None, "v2-weak",
                                  hyperparameters={"l2": 1.0}))  # regularised to near-uniform
    evaluate("router", v2, files["router"]["test"], labels=LABELS)
    if not promote("router", v2, Gate("accuracy", 0.75)):
        # ... an operator forces it through anyway, then rolls back.
        registry.promote("router", v2)
        print(f"   forced promotion without a gate: registry:router -> "
              f"{registry.resolve('registry:router')}")
        back = registry.rollback("router")
        print(f"   rolled back router to version {back.version}: "
              f"registry:router -> {registry.resolve('registry:router')}")
    history = [(h["action"], h["version"]) for h in registry.history("router")]
    print(f"   router history: {history}")

    # 4. Summary.
    print("\n== registry")
    for v in registry.list():
        keys = ("accuracy", "f1", "abstain_rate", "questions_answered_f1", "questions_f1")
        shown = ", ".join(f"{k}={v.metrics[k]:.3f}" for k in keys if k in v.metrics)
        print(f"   {'*' if v.status == 'promoted' else ' '} {v.name}@{v.version} "
              f"{v.status:11s} {shown}")
    roll = meter.rollup()["all"]
    print(f"\ntraining tokens metered: {roll.training_tokens:,} (cost ${roll.cost_usd:.2f}: "
          f"local models are free); {time.perf_counter() - started:.1f} s")
    print(f"inspect: RAGFT_HOME={home} ragft models list")


if __name__ == "__main__":
    main()
