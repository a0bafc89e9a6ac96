"""Foundation figures: token counting vs raw tiktoken, metering overhead, local embedder speed.

Run: python benchmarks/foundation.py [--quick]

Prints:
* ragft.count_tokens throughput vs tiktoken's own encode on the same texts (ratio ~1.0 means
  the offline loading adds nothing per call);
* metering overhead per call: a MeteredChatModel around a model that returns instantly, minus
  the bare call — the meter's own cost — and as a share of a fast real call (the local reader)
  and of a typical 500 ms API call (target < 1%);
* MiniLM embedder throughput (texts/s) on this machine.
Ratios are measured in one run, interleaved, so machine drift affects both sides alike.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragft.answer import Usage  # noqa: E402
from ragft.metering.meter import Budget, Ledger, Meter  # noqa: E402
from ragft.tokens import count_tokens, get_encoding  # noqa: E402
from ragft.models.base import Completion  # noqa: E402
from ragft.models.context import Passage, format_context  # noqa: E402
from ragft.models.local import ExtractiveReader, MiniLMEmbedder  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def sample_texts(n: int) -> list[str]:
    """Varied realistic texts: corpus paragraphs when present, else generated prose."""
    texts: list[str] = []
    for path in sorted((ROOT / "corpus" / "docs").rglob("*.md")):
        texts.extend(p for p in path.read_text("utf-8").split("\n\n") if len(p) > 40)
    if not texts:
        texts = [f"Paragraph {i}: the quick brown fox jumps over the lazy dog {i} times." for i in range(200)]
    return [texts[i % len(texts)] for i in range(n)]


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


class InstantModel:
    """Returns a fixed completion immediately: isolates the meter's own overhead."""

    name = "gpt-4.1-mini"
    _c = Completion("ok", Usage(model="gpt-4.1-mini", input_tokens=1200, cached_input_tokens=200, output_tokens=80), "gpt-4.1-mini")

    def complete(self, messages, *, max_tokens=None, temperature=0.0, logprobs=False):
        return self._c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = ap.parse_args()
    reps = 3 if args.quick else 7
    results: dict[str, float] = {}

    # 1. token counting
    texts = sample_texts(2000)
    enc = get_encoding("o200k_base")
    chars = sum(len(t) for t in texts)
    ours = raw = 0.0
    for _ in range(reps):  # interleave A/B
        raw_t = best_of(lambda: [enc.encode(t, disallowed_special=()) for t in texts], 1)
        our_t = best_of(lambda: [count_tokens(t, "gpt-4.1-mini") for t in texts], 1)
        raw = raw_t if not raw else min(raw, raw_t)
        ours = our_t if not ours else min(ours, our_t)
    results["tokens_per_s_ragft"] = sum(count_tokens(t, "gpt-4.1-mini") for t in texts) / ours
    results["texts_per_s_ragft"] = len(texts) / ours
    results["texts_per_s_tiktoken"] = len(texts) / raw
    results["count_tokens_vs_tiktoken_ratio"] = ours / raw
    print(f"token counting: {len(texts)} texts, {chars} chars")
    print(f"  tiktoken encode   {len(texts) / raw:10.0f} texts/s")
    print(f"  ragft count_tokens{len(texts) / ours:10.0f} texts/s   time ratio ragft/tiktoken = {ours / raw:.3f}")

    # 2. metering overhead
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": texts[0]}]
    bare = InstantModel()
    n = 5000
    plain_meter = Meter()
    metered = plain_meter.chat_model(bare)
    budget_meter = Meter(budget=Budget(total_usd=1e9))
    metered_budget = budget_meter.chat_model(bare)
    bare_t = best_of(lambda: [bare.complete(msgs) for _ in range(n)], reps) / n
    met_t = best_of(lambda: [metered.complete(msgs) for _ in range(n)], reps) / n

    def with_scope():
        for _ in range(n):
            with plain_meter.collect(query="q"):
                metered.complete(msgs)

    scope_t = best_of(with_scope, reps) / n
    budget_t = best_of(lambda: [metered_budget.complete(msgs) for _ in range(n)], reps) / n
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        ledger_meter = Meter(ledger=Ledger(Path(tmp) / "ledger.jsonl"))
        ledger_model = ledger_meter.chat_model(bare)
        ledger_t = best_of(lambda: [ledger_model.complete(msgs) for _ in range(500)], reps) / 500
    overhead = met_t - bare_t
    reader = ExtractiveReader(None)
    ctx = [{"role": "user", "content": format_context([Passage("1", "a.md", t) for t in texts[:5]], "What is the policy?")}]
    reader_t = best_of(lambda: reader.complete(ctx), reps)
    results.update(
        meter_overhead_us=overhead * 1e6,
        meter_with_scope_overhead_us=(scope_t - bare_t) * 1e6,
        meter_with_budget_overhead_us=(budget_t - bare_t) * 1e6,
        meter_with_ledger_fsync_overhead_us=(ledger_t - bare_t) * 1e6,
        overhead_share_of_local_reader_call=overhead / reader_t,
        overhead_share_of_500ms_api_call=overhead / 0.5,
        budget_overhead_share_of_500ms_api_call=(budget_t - bare_t) / 0.5,
    )
    print("metering overhead per call:")
    print(f"  record + price          {overhead * 1e6:8.1f} us")
    print(f"  + collect() scope       {(scope_t - bare_t) * 1e6:8.1f} us")
    print(f"  + budget check (tiktoken estimate of the prompt) {(budget_t - bare_t) * 1e6:8.1f} us")
    print(f"  + JSONL ledger with fsync {(ledger_t - bare_t) * 1e6:8.1f} us")
    print(f"  share of a local reader call ({reader_t * 1e3:.2f} ms): {overhead / reader_t:.3%}")
    print(f"  share of a 500 ms API call: {overhead / 0.5:.4%} (with budget {(budget_t - bare_t) / 0.5:.4%}, "
          f"with ledger {(ledger_t - bare_t) / 0.5:.4%})   target < 1%")

    # 3. local embedder
    emb = MiniLMEmbedder()
    batch = sample_texts(512)
    emb.embed(batch[:32])  # warm-up
    t = best_of(lambda: emb.embed(batch), max(1, reps // 3))
    results["minilm_texts_per_s"] = len(batch) / t
    mean_tokens = emb.embed(batch).usage.embedding_tokens / len(batch)
    print(f"MiniLM int8 ONNX: {len(batch) / t:.0f} paragraphs/s (mean {mean_tokens:.0f} word pieces each)")
    from ragft.textutil import split_sentences

    sentences = [x for p in batch for x in split_sentences(p) if len(x.split()) >= 5][:512]
    t = best_of(lambda: emb.embed(sentences), max(1, reps // 3))
    results["minilm_sentences_per_s"] = len(sentences) / t
    mean_tokens = emb.embed(sentences).usage.embedding_tokens / len(sentences)
    print(f"MiniLM int8 ONNX: {len(sentences) / t:.0f} sentences/s (mean {mean_tokens:.0f} word pieces each)")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "foundation.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {out / 'foundation.json'}")


if __name__ == "__main__":
    main()
