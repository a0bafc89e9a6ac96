"""LoRA-tuned SmolLM2 served by llama.cpp vs base SmolLM2 and the extractive reader, on
held-out SQuAD 2.0 articles and on the sample corpus.

    nice python benchmarks/p1_generator.py prepare   # corpora, indexes, training JSONL (~1 min)
    nice python benchmarks/p1_generator.py train     # LoRA on SmolLM2 + GGUF export (long: one run)
    nice python benchmarks/p1_generator.py eval --limit 50 --corpus-every 3
                                                     # strategies side by side, latency with/without adapter
    python benchmarks/p1_generator.py report         # the table and paired tests from saved results

``train --budget-min N`` stops after N minutes (the README's run stopped at step 50 of 114).
``eval`` runs the cascade's two stages and composes the cascade from them (``compose_cascade``),
running the real ``Cascade`` on a few questions to check the composition.

Everything is kept under ``benchmarks/results/p1_generator/`` (``--work``), so ``eval`` reruns
without retraining. The split is by article: ``Southern_California`` and ``Sky_(United_Kingdom)``
are never trained on (neither their questions nor their paragraphs, which sit in a separate
index). Training data is built by the library (:mod:`ragft.finetune.squad`,
:mod:`ragft.finetune.rag_examples`): the exact fenced prompt the RAG strategy sends, context
retrieved at build time, answer cited or the abstention sentence.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragft.components import Components, build_meter  # noqa: E402
from ragft.config import RagftConfig, load_config  # noqa: E402
from ragft.finetune.data import GENERATOR_SYSTEM, generator_examples, write_jsonl  # noqa: E402
from ragft.finetune.rag_examples import rag_generator_examples  # noqa: E402
from ragft.finetune.squad import load_squad, split_by_article, write_squad_corpus  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SQUAD = ROOT.parent / "shared" / "datasets" / "squad2-sample" / "squad2-sample.json"
TEST_ARTICLES = ("Southern_California", "Sky_(United_Kingdom)")
#: Retrieval settings shared by the training prompts and the evaluated strategies.
SQUAD_RETRIEVAL = {"index.chunk_tokens": 400, "index.chunk_overlap": 0, "retrieval.top_k": 2}
SEED = 13
N_ANSWERABLE, N_UNANSWERABLE, N_CLOSED_BOOK, N_TEST = 170, 70, 120, 150


def squad_config(work: Path, side: str) -> RagftConfig:
    """Config of one side's knowledge base (its own home and index)."""
    return load_config(
        env={"RAGFT_HOME": str(work / f"home-{side}")},
        overrides={"index.corpus": str(work / side / "docs"), **SQUAD_RETRIEVAL},
    )


def prepare(work: Path) -> None:
    rng = random.Random(SEED)
    split = split_by_article(load_squad(SQUAD), TEST_ARTICLES)
    train_q, test_q = split.questions("train"), split.questions("test")
    test_sample = rng.sample(test_q, N_TEST)  # random order: any prefix mixes both kinds
    write_squad_corpus(split.train, work / "train")
    write_squad_corpus(split.test, work / "test", questions=test_sample)
    print(f"train articles {[a.title for a in split.train]}: {len(train_q)} questions")
    print(f"test articles {[a.title for a in split.test]}: {len(test_q)} questions, {N_TEST} sampled "
          f"({sum(not q.answerable for q in test_sample)} unanswerable)")
    for side in ("train", "test"):
        cfg = squad_config(work, side)
        parts = Components(cfg, build_meter(cfg, ledger=False))
        print(side, parts.knowledge_base().sync(cfg.corpus_path, progress=False).summary())

    answerable = [q for q in train_q if q.answerable]
    unanswerable = [q for q in train_q if not q.answerable]
    p1 = rng.sample(answerable, N_ANSWERABLE) + rng.sample(unanswerable, N_UNANSWERABLE)
    rng.shuffle(p1)
    cfg = squad_config(work, "train")
    parts = Components(cfg, build_meter(cfg, ledger=False))
    rows = [{"question": q.question, "answer": q.answers[0] if q.answers else "",
             "aliases": list(q.answers[1:]), "sources": [q.document] if q.answerable else []} for q in p1]
    p1_examples, stats = rag_generator_examples(
        rows, parts.retriever(), top_k=cfg.retrieval.top_k, context_tokens=cfg.retrieval.context_tokens
    )
    print("P1:", stats.summary())
    closed = generator_examples(
        [(q.question, q.answers[0]) for q in rng.sample(answerable, N_CLOSED_BOOK)], system=GENERATOR_SYSTEM
    )
    corpus_qa = [json.loads(x) for x in (ROOT / "corpus/finetune/qa_train.jsonl").read_text().splitlines() if x]
    closed += generator_examples(corpus_qa, system=GENERATOR_SYSTEM)
    mixed = p1_examples + closed
    rng.shuffle(mixed)
    write_jsonl(p1_examples, work / "p1.jsonl")
    write_jsonl(closed, work / "closed_book.jsonl")
    write_jsonl(mixed, work / "train.jsonl")
    print(f"wrote {len(p1_examples)} P1 + {len(closed)} closed-book examples to {work / 'train.jsonl'}")


# --------------------------------------------------------------------------- train
# A minimal supervised loop (transformers + peft, the model's chat template, loss on the
# assistant turn only). ragft's own LoRA backend is being written on another branch; this loop
# exists so the measurement does not wait for it and is kept deliberately small.
LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}
LR, BATCH, MAX_LEN = 3e-4, 4, 768


def _encode(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full.startswith(prompt):
        raise SystemExit("chat template does not extend the prompt with the assistant turn")
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = tokenizer(full, add_special_tokens=False)["input_ids"][:MAX_LEN]
    labels = [-100] * len(p_ids) + ids[len(p_ids):]
    return ids, labels[: len(ids)]


def train(work: Path, *, budget_min: float = 60.0, threads: int = 1) -> None:
    """Train on ``train.jsonl`` for one epoch or until ``budget_min`` minutes have passed
    (the schedule is constant after warm-up, so stopping early leaves a usable adapter); the
    adapter is saved every 10 steps and at the end, then exported to GGUF."""
    import resource

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ragft.models.gguf_adapter import export_lora_gguf
    from ragft.models.llamacpp import gguf_path_smollm2

    torch.manual_seed(SEED)
    # One thread: on a shared, oversubscribed machine two intra-op threads mostly wait for
    # each other at every barrier.
    torch.set_num_threads(threads)
    gguf = gguf_path_smollm2()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    examples = [json.loads(x)["messages"] for x in (work / "train.jsonl").read_text().splitlines() if x]
    encoded = [_encode(tokenizer, m) for m in examples]
    total = sum(len(ids) for ids, _ in encoded)
    print(f"{len(encoded)} examples, {total} tokens, "
          f"{sum(sum(lab != -100 for lab in labels) for _, labels in encoded)} answer tokens", flush=True)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **LORA))
    model.train()
    causal_lm = model.base_model.model
    # Length-grouped batches (shuffled groups of similar length) waste little on padding.
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    batches = [order[i : i + BATCH] for i in range(0, len(order), BATCH)]
    random.Random(SEED).shuffle(batches)
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=LR, weight_decay=0.0)
    warmup = max(1, len(batches) // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda s: min(1.0, (s + 1) / warmup))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    log = (work / "train_log.jsonl").open("w")
    start, seen = time.perf_counter(), 0
    for step, batch in enumerate(batches, start=1):
        width = max(len(encoded[i][0]) for i in batch)
        ids = torch.tensor([encoded[i][0] + [pad] * (width - len(encoded[i][0])) for i in batch])
        labels = torch.tensor([encoded[i][1] + [-100] * (width - len(encoded[i][1])) for i in batch])
        mask = torch.tensor([[1] * len(encoded[i][0]) + [0] * (width - len(encoded[i][0])) for i in batch])
        # The vocabulary projection only where the loss is taken (the answer tokens): the
        # 49k-way logits of every prompt token would cost a fifth of the compute and most memory.
        hidden = causal_lm.model(input_ids=ids, attention_mask=mask).last_hidden_state
        targets = labels[:, 1:]
        keep = targets != -100
        logits = causal_lm.lm_head(hidden[:, :-1][keep])
        loss = torch.nn.functional.cross_entropy(logits.float(), targets[keep])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optim.step()
        sched.step()
        optim.zero_grad()
        seen += sum(len(encoded[i][0]) for i in batch)
        elapsed = time.perf_counter() - start
        record = {"step": step, "of": len(batches), "loss": round(loss.item(), 4), "tokens": seen,
                  "elapsed_s": round(elapsed, 1), "tokens_per_s": round(seen / elapsed, 1)}
        log.write(json.dumps(record) + "\n")
        log.flush()
        if step % 5 == 0 or step == len(batches):
            print(record, flush=True)
        if step % 10 == 0:
            model.save_pretrained(work / "adapter")
        if elapsed > budget_min * 60:
            print(f"time budget reached after {step} of {len(batches)} steps", flush=True)
            break
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model.save_pretrained(work / "adapter")
    adapter = export_lora_gguf(work / "adapter", gguf, work / "adapter.gguf", name="smollm2-squad-p1")
    summary = {"examples": len(encoded), "steps": step, "of": len(batches), "tokens_seen": seen,
               "tokens": total, "wall_s": round(time.perf_counter() - start, 1),
               "tokens_per_s": round(seen / (time.perf_counter() - start), 1),
               "peak_rss_mb": round(peak_rss_mb), "lora": LORA, "lr": LR, "batch": BATCH,
               "adapter_gguf": adapter.to_dict()}
    (work / "train_summary.json").write_text(json.dumps(summary, indent=2))
    print(summary)


# --------------------------------------------------------------------------- eval
MAX_TOKENS = 40  # short answers; a rambling base model is cut here rather than timed out
CASCADE_THRESHOLD = 0.80
CASCADE_CHECK = 8


class Served:
    """The two llama.cpp servers the evaluation talks to: base SmolLM2, and base + adapter."""

    def __init__(self, work: Path, *, tuned: bool = True) -> None:
        from ragft.models.llamacpp import LlamaCppServer, gguf_path_smollm2

        gguf = gguf_path_smollm2()
        self.base = LlamaCppServer(gguf, alias="smollm2-135m", n_ctx=2048, n_threads=1).start()
        self.tuned = LlamaCppServer(gguf, alias="lora:smollm2-squad-p1", n_ctx=2048, n_threads=1,
                                    lora_adapters=[work / "adapter.gguf"]).start() if tuned else self.base

    def close(self) -> None:
        self.base.stop()
        self.tuned.stop()


def _strategies(cfg: RagftConfig, served: Served, meter: Any) -> dict[str, Any]:
    from ragft.finetune.data import GENERATOR_SYSTEM
    from ragft.models.local import ExtractiveReader
    from ragft.models.openai import OpenAIChatModel, make_client
    from ragft.strategies import RAG, Cascade, FineTuned, FineTunedGeneratorRAG

    parts = Components(cfg, meter)
    retriever = parts.retriever()

    def chat(server: Any) -> Any:
        client = make_client(api_key=None, base_url=server.base_url, timeout=300.0, max_retries=0)
        return OpenAIChatModel(server.model, client=client)

    base, tuned = chat(served.base), chat(served.tuned)
    ft_rag = FineTunedGeneratorRAG(retriever, tuned, meter=meter, max_tokens=MAX_TOKENS, name="ft_rag")
    closed = FineTuned(tuned, meter=meter, system_prompt=GENERATOR_SYSTEM, max_tokens=MAX_TOKENS, name="finetuned")
    return {
        "rag_reader": RAG(retriever, ExtractiveReader(parts.local_embedder()), meter=meter, name="rag"),
        "rag_smollm2": RAG(retriever, base, meter=meter, max_tokens=MAX_TOKENS, name="rag"),
        "ft_rag_lora": ft_rag,
        "finetuned_lora": closed,
        "cascade_lora": Cascade(closed, ft_rag, meter=meter, threshold=CASCADE_THRESHOLD, name="cascade"),
    }


def _dataset_config(work: Path, dataset: str) -> RagftConfig:
    free = {"prices.free_prefixes": ["smollm2-135m", "lora:"]}
    if dataset == "squad":
        cfg = squad_config(work, "test")
        return load_config(env={"RAGFT_HOME": str(cfg.home_path)},
                           overrides={"index.corpus": str(cfg.corpus_path), **SQUAD_RETRIEVAL, **free})
    return load_config(ROOT / "examples/configs/rag.toml",
                       overrides={"home": str(work / "home-corpus"), "retrieval.top_k": 3, **free})


def evaluate(work: Path, *, limit: int | None, strategies: list[str] | None, corpus_every: int = 1,
             datasets: list[str] | None = None) -> None:
    from ragft.eval.ab import compare_ab
    from ragft.eval.harness import EvalResult, run_eval
    from ragft.eval.questions import load_questions

    needs_tuned = strategies is None or any("lora" in n or "cascade" in n for n in strategies)
    served = Served(work, tuned=needs_tuned)
    try:
        if needs_tuned:
            latency(work, served)
        for dataset, qfile in (("squad", work / "test" / "questions.jsonl"),
                               ("corpus", ROOT / "corpus" / "questions.jsonl")):
            if datasets and dataset not in datasets:
                continue
            cfg = _dataset_config(work, dataset)
            meter = build_meter(cfg, ledger=False)
            if dataset == "corpus":
                Components(cfg, meter).knowledge_base().sync(cfg.corpus_path, progress=False)
            questions = load_questions(qfile)
            if dataset == "corpus":  # every k-th question keeps the kinds' mix in a smaller set
                questions = questions[::corpus_every]
            questions = questions[:limit] if limit else questions
            table = _strategies(cfg, served, meter)
            chosen = strategies or [n for n in table if n != "cascade_lora"]
            if dataset == "squad" and not strategies:
                chosen.append("cascade_check")
            for name in chosen:
                subset = questions
                if name == "cascade_check":  # the real Cascade on a few questions, to check
                    name, subset = "cascade_lora", questions[:CASCADE_CHECK]  # the composition
                    out = work / "eval" / f"{dataset}-cascade_check.json"
                else:
                    out = work / "eval" / f"{dataset}-{name}.json"
                if out.exists():
                    continue  # measured already: reruns resume
                result = run_eval({name: table[name]}, subset, meter=meter, progress=False)
                out.parent.mkdir(exist_ok=True)
                result.to_json(out)
                s = result.summaries[name]
                print(f"{dataset:6s} {name:15s} F1 {s.f1:.3f} EM {s.exact_match:.3f} "
                      f"abstain(oos) {s.abstention_rate_oos} p50 {s.latency_p50:.2f}s", flush=True)
    finally:
        served.close()
    report(work)


def compose_cascade(first: Any, fallback: Any) -> Any:
    """The cascade's answers from measured runs of its two stages: the closed-book answer when
    its logprob confidence reaches the threshold and it did not abstain, else the ft_rag answer;
    latency, tokens and cost of both stages are added when it falls back (as Cascade bills).
    Composing saves re-running both stages on a machine where each call takes seconds;
    ``cascade_check`` runs the real Cascade on a few questions to confirm the composition."""
    from dataclasses import replace
    from datetime import UTC, datetime

    from ragft.eval.harness import EvalResult, summarize

    by_id = {r.qid: r for r in fallback.records}
    records = []
    for r in first.records:
        keep = not r.abstained and r.confidence is not None and r.confidence >= CASCADE_THRESHOLD
        if keep:
            records.append(replace(r, strategy="cascade_lora", route_key="finetuned",
                                   route=f"cascade: finetuned confidence {r.confidence:.2f} -> finetuned"))
            continue
        fb = by_id[r.qid]
        records.append(replace(
            fb, strategy="cascade_lora", route_key="fallback",
            route=f"cascade: finetuned confidence {r.confidence or 0:.2f} < {CASCADE_THRESHOLD:.2f} -> {fb.route}",
            latency_s=r.latency_s + fb.latency_s, cost_usd=r.cost_usd + fb.cost_usd, calls=r.calls + fb.calls,
            input_tokens=r.input_tokens + fb.input_tokens, output_tokens=r.output_tokens + fb.output_tokens,
            total_tokens=r.total_tokens + fb.total_tokens))
    return EvalResult(run_id="composed", created_at=datetime.now(UTC).isoformat(), strategies=("cascade_lora",),
                      question_ids=first.question_ids, records=records,
                      summaries={"cascade_lora": summarize("cascade_lora", records)})


def report(work: Path) -> None:
    """Print the side-by-side table and the paired comparisons from the saved results."""
    from ragft.eval.ab import compare_ab
    from ragft.eval.harness import EvalResult

    rows = []
    results: dict[tuple[str, str], Any] = {}
    for path in sorted((work / "eval").glob("*.json")):
        dataset, name = path.stem.split("-", 1)
        if name == "cascade_check":
            continue
        results[dataset, name] = EvalResult.from_json(path)
    for dataset in ("squad", "corpus"):
        if (dataset, "finetuned_lora") in results and (dataset, "ft_rag_lora") in results:
            results[dataset, "cascade_lora"] = compose_cascade(
                results[dataset, "finetuned_lora"], results[dataset, "ft_rag_lora"])
    check = work / "eval" / "squad-cascade_check.json"
    if check.exists() and ("squad", "cascade_lora") in results:
        real = {r.qid: r.answer for r in EvalResult.from_json(check).records}
        composed = {r.qid: r.answer for r in results["squad", "cascade_lora"].records if r.qid in real}
        same = sum(real[q] == composed[q] for q in real)
        print(f"cascade check: the real Cascade gave the composed answer on {same}/{len(real)} questions")
    for (dataset, name), result in sorted(results.items()):
        s = result.summaries[name]
        answered = [r for r in result.records if r.answerable and not r.abstained and r.f1 is not None]
        rows.append({"dataset": dataset, "strategy": name, "n": s.n, "n_unanswerable": s.n_out_of_scope,
                     "f1_when_answering": sum(r.f1 for r in answered) / len(answered) if answered else None,
                     "em": s.exact_match, "f1": s.f1,
                     "contains": s.contains, "abstain_unanswerable": s.abstention_rate_oos,
                     "false_abstention": s.false_abstention_rate, "latency_p50": s.latency_p50,
                     "latency_p95": s.latency_p95, "route_mix": s.route_mix})
    for row in rows:
        print(json.dumps(row))
    comparisons = []
    for dataset in ("squad", "corpus"):
        for a, b in (("rag_smollm2", "ft_rag_lora"), ("rag_reader", "ft_rag_lora"), ("ft_rag_lora", "cascade_lora")):
            if (dataset, a) in results and (dataset, b) in results:
                ab = compare_ab(results[dataset, a], results[dataset, b], strategy_a=a, strategy_b=b)
                comparisons.append({"dataset": dataset, "a": a, "b": b, "n": ab.n, "mean_a": ab.mean_a,
                                    "mean_b": ab.mean_b, "diff": ab.mean_diff, "ci": [ab.ci_low, ab.ci_high],
                                    "sign_p": ab.sign_p, "mcnemar_p": ab.mcnemar_p})
                print(json.dumps(comparisons[-1]))
    (work / "report.json").write_text(json.dumps({"rows": rows, "comparisons": comparisons}, indent=2))


def latency(work: Path, served: Served, rounds: int = 6) -> None:
    """Answer latency through llama.cpp with and without the adapter: the same P1 prompts,
    interleaved, a fixed 16 generated tokens, prompt cache off; llama.cpp's own timings."""
    import httpx

    out = work / "latency.json"
    if out.exists():
        print(out.read_text())
        return
    prompts = [json.loads(x)["messages"][:2] for x in (work / "p1.jsonl").read_text().splitlines()[:rounds]]
    timings: dict[str, list[dict[str, float]]] = {"base": [], "adapter": []}
    for messages in prompts:
        for label, server in (("base", served.base), ("adapter", served.tuned)):
            body = {"model": server.model, "messages": messages, "max_tokens": 16, "temperature": 0,
                    "ignore_eos": True, "cache_prompt": False}
            start = time.perf_counter()
            reply = httpx.post(server.base_url + "/chat/completions", json=body, timeout=300).json()
            t = reply.get("timings", {})
            timings[label].append({"wall_s": time.perf_counter() - start, "prompt_n": t.get("prompt_n"),
                                   "prompt_ms": t.get("prompt_ms"), "predicted_n": t.get("predicted_n"),
                                   "predicted_ms": t.get("predicted_ms")})
    import statistics

    summary = {}
    for label, rows in timings.items():
        summary[label] = {
            "wall_p50_s": statistics.median(r["wall_s"] for r in rows),
            "prompt_tokens_per_s": sum(r["prompt_n"] or 0 for r in rows) / (sum(r["prompt_ms"] or 0 for r in rows) / 1000),
            "gen_tokens_per_s": sum(r["predicted_n"] or 0 for r in rows) / (sum(r["predicted_ms"] or 0 for r in rows) / 1000),
        }
    summary["ratio_wall_p50"] = summary["adapter"]["wall_p50_s"] / summary["base"]["wall_p50_s"]
    out.write_text(json.dumps({"summary": summary, "requests": timings}, indent=2))
    print(json.dumps(summary, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("phase", choices=("prepare", "train", "eval", "report"))
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "results" / "p1_generator")
    ap.add_argument("--budget-min", type=float, default=60.0, help="train: stop after this many minutes")
    ap.add_argument("--threads", type=int, default=1, help="train: torch threads")
    ap.add_argument("--limit", type=int, help="eval: first N questions of each set")
    ap.add_argument("--strategies", help="eval: comma-separated subset")
    ap.add_argument("--corpus-every", type=int, default=1, help="eval: every k-th corpus question")
    ap.add_argument("--datasets", help="eval: squad,corpus (default: both)")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if args.phase == "train":
        train(args.work, budget_min=args.budget_min, threads=args.threads)
    elif args.phase == "eval":
        evaluate(args.work, limit=args.limit, strategies=args.strategies.split(",") if args.strategies else None,
                 corpus_every=args.corpus_every, datasets=args.datasets.split(",") if args.datasets else None)
    else:
        {"prepare": prepare, "report": report}[args.phase](args.work)
    print(f"{args.phase} took {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
