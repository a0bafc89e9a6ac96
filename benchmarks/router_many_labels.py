"""The local router on many labels: the old learner (softmax regression by Adam, fixed L2 1e-3,
300 steps, a config threshold of 0.40) against the new one (scikit-learn LogisticRegression,
L2 and threshold chosen on validation data and stored with the model).

    nice python benchmarks/router_many_labels.py [--per-label 40] [--cache FILE]

Two data sets, both embedded with the real MiniLM model (offline):

* a generated 150-intent set in the spirit of the public 150-intent benchmarks (which cannot be
  downloaded here): 15 actions × 10 objects, each intent worded through synonyms, templates,
  openers and closers, so intents share words with their neighbours (``cancel my card`` vs
  ``cancel my flight`` vs ``replace my card``);
* the sample corpus's ``corpus/finetune/routes.jsonl`` (4 labels, 109 queries).

Per learner it prints held-out (test split) accuracy, the median top probability, the rate of
test queries sent to the default route at the threshold (old: the config's 0.40; new: the
stored one), the accuracy of the queries that were routed, and the training time (fit only,
embeddings excluded; both learners see the same cached vectors).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragft.finetune.data import router_examples, split_examples  # noqa: E402
from ragft.finetune.learners.adam import Adam  # noqa: E402
from ragft.finetune.trainers.base import embed_texts  # noqa: E402
from ragft.finetune.trainers.router import train_router  # noqa: E402
from ragft.models.local import MiniLMEmbedder  # noqa: E402
from ragft.rag.embedcache import CachedEmbedder, EmbeddingCache  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: What examples/configs/router.toml said before thresholds were stored with the model.
OLD_CONFIG_MIN_SCORE = 0.40

ACTIONS: dict[str, list[str]] = {
    "cancel": ["cancel", "call off", "stop", "terminate"],
    "change": ["change", "modify", "update", "edit"],
    "check_status": ["check the status of", "track", "see the progress of", "look up"],
    "book": ["book", "reserve", "schedule", "set up"],
    "report_problem": ["report a problem with", "complain about", "flag an issue with",
                       "there is something wrong with"],
    "pay": ["pay", "pay off", "settle", "make a payment for"],
    "replace": ["replace", "get a new", "swap out", "order a replacement for"],
    "confirm": ["confirm", "verify", "double check", "make sure of"],
    "find_cost": ["find the cost of", "know the price of", "see how much is", "get a quote for"],
    "transfer": ["transfer", "move", "shift", "hand over"],
    "activate": ["activate", "turn on", "enable", "start using"],
    "freeze": ["freeze", "lock", "block", "put a hold on"],
    "review": ["review", "go over", "read through", "look at the details of"],
    "share": ["share", "send", "forward", "give access to"],
    "recover": ["recover", "restore", "get back", "retrieve"],
}
OBJECTS: dict[str, list[str]] = {
    "card": ["credit card", "debit card", "bank card", "card"],
    "flight": ["flight", "plane ticket", "air ticket", "trip by plane"],
    "hotel": ["hotel room", "hotel booking", "room reservation", "stay at the hotel"],
    "account": ["account", "user account", "profile", "login"],
    "order": ["order", "purchase", "delivery", "package"],
    "insurance": ["insurance policy", "insurance", "coverage", "policy"],
    "loan": ["loan", "mortgage", "credit line", "car loan"],
    "subscription": ["subscription", "membership", "plan", "monthly plan"],
    "appointment": ["appointment", "doctor visit", "meeting slot", "consultation"],
    "phone": ["phone", "mobile", "cell phone", "sim card"],
}
TEMPLATES = [
    "i need to {a} my {x}", "can you help me {a} my {x}", "how do i {a} my {x}",
    "please {a} my {x}", "i want to {a} the {x}", "is it possible to {a} my {x}",
    "i would like to {a} my {x}", "what do i do to {a} my {x}", "could you {a} my {x} for me",
    "help me {a} this {x}", "i'd like you to {a} my {x}", "where can i {a} my {x}",
    "{a} my {x}", "{a} {x}",
]
OPENERS = ["", "", "", "hi, ", "hello, ", "quick question: ", "hey there, ", "excuse me, ",
           "good morning, ", "sorry to bother you, "]
CLOSERS = ["", "", "", " please", " thanks", " right now", " today", " as soon as possible",
           " if you can", " before the weekend"]


def generated_rows(per_label: int, seed: int = 0) -> list[tuple[str, str]]:
    """``(utterance, intent)`` for 150 intents, ``per_label`` distinct utterances each."""
    rng = random.Random(seed)
    rows: list[tuple[str, str]] = []
    for action, verbs in ACTIONS.items():
        for obj, nouns in OBJECTS.items():
            seen: set[str] = set()
            for _ in range(per_label * 20):
                if len(seen) == per_label:
                    break
                text = rng.choice(OPENERS) + rng.choice(TEMPLATES).format(a=rng.choice(verbs), x=rng.choice(nouns)) \
                    + rng.choice(CLOSERS)
                if text not in seen:
                    seen.add(text)
                    rows.append((text, f"{action}_{obj}"))
    return rows


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def old_learner(x: np.ndarray, y: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The learner ragft used before scikit-learn (kept here only as the baseline): softmax
    regression, full-batch Adam, lr 0.05, L2 1e-3, 300 steps (the default of 3 "epochs")."""
    w, b = np.zeros((x.shape[1], n_classes)), np.zeros(n_classes)
    onehot = np.eye(n_classes)[y]
    opt = Adam([w, b], 0.05)
    for _ in range(300):
        g = (_softmax(x @ w + b) - onehot) / len(y)
        opt.step([x.T @ g + 1e-3 * w, g.sum(axis=0)])
    return w, b


def _texts_labels(examples: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    return ([ex["messages"][1]["content"] for ex in examples],
            [ex["messages"][2]["content"] for ex in examples])


def _report(name: str, p: np.ndarray, y: np.ndarray, threshold: float, seconds: float,
            extra: str = "") -> dict[str, float]:
    top, correct = p.max(axis=1), p.argmax(axis=1) == y
    routed = top >= threshold
    row = {"accuracy": float(correct.mean()), "median_top_p": float(np.median(top)),
           "threshold": threshold, "default_rate": float((~routed).mean()),
           "routed_accuracy": float(correct[routed].mean()) if routed.any() else float("nan"),
           "train_s": seconds}
    print(f"  {name:<28} acc {row['accuracy']:.3f}  median top p {row['median_top_p']:.3f}  "
          f"threshold {threshold:.3f} -> default {row['default_rate']:.3f}  "
          f"routed acc {row['routed_accuracy']:.3f}  fit {seconds:.1f} s{extra}")
    return row


def compare(title: str, rows: list[tuple[str, str]], embedder: Any) -> dict[str, Any]:
    """Train both learners on one split of ``rows`` and print their held-out figures."""
    labels = sorted({label for _, label in rows})
    split = split_examples(router_examples(rows, labels), validation=0.1, test=0.2)
    sizes = split.sizes()
    print(f"\n{title}: {len(labels)} labels, train {sizes['train']}, validation "
          f"{sizes['validation']}, test {sizes['test']}")
    index = {label: i for i, label in enumerate(labels)}
    t_train, l_train = _texts_labels(split.train)
    t_test, l_test = _texts_labels(split.test)
    # Embed everything once (cached) so the timings below are the learners' own.
    for part in (split.train, split.validation, split.test):
        embed_texts(embedder, _texts_labels(part)[0])
    x = embed_texts(embedder, t_train).astype(np.float64)
    y = np.array([index[lab] for lab in l_train])
    xt = embed_texts(embedder, t_test).astype(np.float64)
    yt = np.array([index[lab] for lab in l_test])

    start = time.perf_counter()
    w, b = old_learner(x, y, len(labels))
    old_s = time.perf_counter() - start
    old = _report("old (Adam, l2 1e-3)", _softmax(xt @ w + b), yt, OLD_CONFIG_MIN_SCORE, old_s)

    steps: list[str] = []
    start = time.perf_counter()
    trained = train_router(split.train, split.validation, embedder, on_step=lambda i, n, m: steps.append(
        f"l2 {m['l2']:g}: valid acc {m.get('valid_accuracy', float('nan')):.3f} "
        f"({time.perf_counter() - start:.1f} s)"))
    new_s = time.perf_counter() - start
    print("  L2 search: " + "; ".join(steps))
    order = [index[lab] for lab in trained.data["labels"]]
    p = np.zeros((len(xt), len(labels)))
    p[:, order] = _softmax(xt @ trained.arrays["weights"].astype(np.float64)
                           + trained.arrays["bias"].astype(np.float64))
    l2 = trained.manifest["params"]["l2"]
    new = _report(f"new (sklearn, l2 {l2:g})", p, yt, trained.manifest["min_score"], new_s)
    return {"labels": len(labels), "sizes": sizes, "old": old, "new": new, "new_l2": l2}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-label", type=int, default=40, help="utterances per generated intent")
    ap.add_argument("--cache", help="embedding cache file (default: a temporary one)")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args()
    cache = Path(args.cache) if args.cache else Path(tempfile.mkdtemp()) / "emb.sqlite"
    # Queries cached too: the new learner embeds its inputs itself, and its fit time must not
    # include MiniLM (both learners are timed on cache hits).
    embedder = CachedEmbedder(MiniLMEmbedder(), EmbeddingCache(cache), cache_queries=True)
    results = {
        "generated_150": compare("generated 150-intent set (MiniLM)",
                                 generated_rows(args.per_label), embedder),
        "routes_jsonl": compare(
            "corpus/finetune/routes.jsonl (MiniLM)",
            [(r["query"], r["label"]) for r in map(json.loads, (ROOT / "corpus" / "finetune" /
                                                    "routes.jsonl").read_text().splitlines())],
            embedder),
    }
    gen = results["generated_150"]
    print(f"\nnew/old fit time on the 150-intent set: {gen['new']['train_s'] / gen['old']['train_s']:.2f}x; "
          f"accuracy {gen['old']['accuracy']:.3f} -> {gen['new']['accuracy']:.3f}; default-route "
          f"rate {gen['old']['default_rate']:.3f} -> {gen['new']['default_rate']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
