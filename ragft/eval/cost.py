"""Cost estimates and projections: what indexing or training will cost before it runs, what
each strategy costs per month at a given volume, and where two strategies break even.

A strategy's monthly cost is linear in the query volume ``v``::

    monthly(v) = cost_per_query * v + fixed_monthly + setup_cost / amortize_months

``fixed_monthly`` is what is paid whatever the volume (vector database, hosting, a scheduled
re-training); ``setup_cost`` is paid once (indexing, a fine-tuning job) and spread over
``amortize_months``. Two strategies break even where their lines cross:
``v* = (F_b - F_a) / (c_a - c_b)`` with ``F`` the fixed-plus-amortised part and ``c`` the cost
per query; there is no break-even when the lines are parallel or cross at a negative volume.

Per-query costs can be typed in or *measured*: :func:`costs_from_eval` takes them from an
evaluation result, whose costs come from the metered ledger.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ragft.errors import EvaluationError
from ragft.eval.harness import EvalResult
from ragft.metering.prices import PriceTable
from ragft.tokens import count_tokens
from ragft.serialize import to_record

__all__ = [
    "CostEstimate",
    "CostProjection",
    "StrategyCost",
    "break_even",
    "costs_from_eval",
    "embedding_cost",
    "estimate_corpus_embedding",
    "estimate_lora_training",
    "estimate_training_file",
    "job_training_cost",
    "measured_training_throughput",
    "format_break_even",
    "project_monthly_costs",
    "update_costs_from_freshness",
]

_TEXT_SUFFIXES = (".md", ".txt")


# --------------------------------------------------------------------------- one-off estimates


@dataclass(frozen=True, slots=True)
class CostEstimate:
    """What a one-off job (embedding a corpus, a fine-tuning run) is expected to bill.

    ``tokens`` are the billed tokens, ``rate_per_million`` the price applied (USD per 1M);
    ``items`` counts documents or training examples. ``details`` holds job-specific figures
    (epochs, tokens per epoch, ...).
    """

    kind: Literal["embedding", "training"]
    model: str
    items: int
    tokens: int
    rate_per_million: float
    cost_usd: float
    source: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """One or two lines for the terminal."""
        if self.kind == "training" and "epochs" in self.details:
            how = "auto" if self.details.get("epochs_auto") else "given"
            what = f"{self.items} examples x {self.details['epochs']} epochs ({how})"
        else:
            what = f"{self.items} documents"
        line = (
            f"{self.kind} estimate for {self.source or '-'}: {what}, {self.tokens:,} billed "
            f"tokens x ${self.rate_per_million:.2f}/1M on {self.model} = ${self.cost_usd:.4f}"
        )
        note = self.details.get("note")
        return f"{line}\n{note}" if note else line

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return to_record(self)


def embedding_cost(tokens: int, model: str, prices: PriceTable | None = None) -> tuple[float, float]:
    """``(cost_usd, rate_per_million)`` of embedding ``tokens`` with ``model``.

    >>> embedding_cost(10_000_000, "text-embedding-3-small")[0]   # 10M x $0.02/1M
    0.2
    """
    from ragft.answer import Usage

    table = prices if prices is not None else PriceTable.load()
    if tokens < 0:
        raise ValueError(f"tokens must be >= 0, got {tokens}")
    if table.is_free(model):
        return 0.0, 0.0
    found = table.lookup(model)
    if found is None or found[0].embedding is None:
        raise EvaluationError(
            f"{model!r} has no embedding price in the price table; pick an embedding model such "
            "as text-embedding-3-small or add its price to the config's [prices.models]"
        )
    cost = table.cost(Usage(model=model, kind="embedding", embedding_tokens=tokens))
    return float(cost or 0.0), float(found[0].embedding)


def _walk_texts(root: Path) -> list[tuple[str, str]]:
    # Fallback when ragft.rag.documents is unavailable: whole files, JSON(L) records' text.
    out: list[tuple[str, str]] = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if not path.is_file() or any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        suffix = path.suffix.lower()
        if suffix in _TEXT_SUFFIXES:
            out.append((rel, path.read_text("utf-8", errors="replace")))
        elif suffix == ".jsonl":
            for n, line in enumerate(path.read_text("utf-8", errors="replace").splitlines(), 1):
                if line.strip():
                    record = json.loads(line)
                    out.append((f"{rel}#{n}", str(record.get("text", record))))
        elif suffix == ".json":
            data = json.loads(path.read_text("utf-8", errors="replace"))
            items = data if isinstance(data, list) else [data]
            out.extend((f"{rel}#{i}", str(r.get("text", r) if isinstance(r, dict) else r))
                       for i, r in enumerate(items, 1))
    return out


def _load_texts(root: Path) -> list[tuple[str, str]]:
    if importlib.util.find_spec("ragft.rag.documents") is not None:
        from ragft.rag.documents import load_directory

        return [(d.id, d.text) for d in load_directory(root)]
    return _walk_texts(root)


def estimate_corpus_embedding(
    directory: str | Path,
    *,
    model: str = "text-embedding-3-small",
    prices: PriceTable | None = None,
    chunk_tokens: int | None = None,
    chunk_overlap: int = 0,
) -> CostEstimate:
    """What embedding every document under ``directory`` once will cost with ``model``.

    Documents are loaded the way indexing loads them (:func:`ragft.rag.documents.load_directory`)
    and counted with ``model``'s tiktoken encoding. Chunk overlap re-embeds the overlapping
    tokens; given ``chunk_tokens`` and ``chunk_overlap`` the count is scaled by
    ``chunk_tokens / (chunk_tokens - chunk_overlap)``. Re-indexing only changed documents costs
    proportionally less (unchanged text is served from the embedding cache).
    """
    root = Path(directory)
    if not root.is_dir():
        raise EvaluationError(f"corpus directory {root} does not exist or is not a directory")
    texts = _load_texts(root)
    if not texts:
        raise EvaluationError(f"no documents (.md, .txt, .json, .jsonl) found under {root}")
    raw = sum(count_tokens(text, model) for _, text in texts)
    factor = 1.0
    if chunk_tokens is not None:
        if not 0 <= chunk_overlap < chunk_tokens:
            raise ValueError("chunk_overlap must be >= 0 and smaller than chunk_tokens")
        factor = chunk_tokens / (chunk_tokens - chunk_overlap)
    tokens = round(raw * factor)
    cost, rate = embedding_cost(tokens, model, prices)
    note = (
        f"{raw:,} document tokens x {factor:.3f} for chunk overlap" if factor != 1.0 else
        "document text only: chunk overlap and titles added to chunks add a little"
    )
    return CostEstimate(
        kind="embedding", model=model, items=len(texts), tokens=tokens, rate_per_million=rate,
        cost_usd=cost, source=str(root), details={"document_tokens": raw, "overlap_factor": factor,
                                                  "note": note},
    )


def _as_chat_examples(path: Path) -> tuple[str | Path | list[dict[str, Any]], str]:
    """The file itself when it is chat-format; otherwise its raw pairs converted the way
    ``ragft finetune`` would (so the sample ``corpus/finetune/*.jsonl`` files can be priced)."""
    from ragft.finetune import data

    records = data.read_jsonl(path)
    if not records or all("messages" in r for r in records):
        return path, ""
    keys = set(records[0])
    if {"question", "answer"} <= keys:
        return data.generator_examples(records), f"{len(records)} question/answer pairs as generator examples"
    if {"query", "rewrite"} <= keys:
        return data.rewriter_examples(records), f"{len(records)} query/rewrite pairs as rewriter examples"
    if {"query", "label"} <= keys:
        labels = sorted({str(r.get("label")) for r in records})
        return data.router_examples(records, labels), f"{len(records)} labelled queries as router examples"
    return path, ""  # let the validator report what is wrong with it


def estimate_training_file(
    path: str | Path,
    *,
    model: str = "gpt-4.1-mini",
    epochs: int | Literal["auto"] = "auto",
    prices: PriceTable | None = None,
) -> CostEstimate:
    """What fine-tuning ``model`` on the JSONL at ``path`` will bill.

    Delegates to :func:`ragft.finetune.data.estimate_training`, which validates the examples,
    counts tokens per example the way the provider bills them and resolves ``epochs="auto"``.
    Chat-format files are used as they are; raw ``{question, answer}``, ``{query, rewrite}``
    and ``{query, label}`` files are first turned into chat examples with ragft's default
    system prompts, as ``ragft finetune`` does.
    """
    from ragft.finetune.data import estimate_training

    source, converted = _as_chat_examples(Path(path))
    est = estimate_training(source, model=model, epochs=epochs, prices=prices)
    notes = [f"converted {converted}"] if converted else []
    if "\n" in est.summary():
        notes.append(est.summary().split("\n", 1)[1])
    return CostEstimate(
        kind="training",
        model=model,
        items=est.n_examples,
        tokens=est.billed_tokens,
        rate_per_million=est.rate_per_million,
        cost_usd=est.cost_usd,
        source=str(path),
        details={**est.to_dict(), "note": "\n".join(notes)},
    )


def measured_training_throughput(records: Iterable[Any]) -> tuple[float, int] | None:
    """``(tokens per second, number of jobs)`` over the ledger's self-hosted training
    records (those with ``compute_seconds``), or ``None`` when there are none."""
    tokens, seconds, jobs = 0, 0.0, 0
    for record in records:
        usage = record.usage
        if record.purpose == "fine-tune" and usage.compute_seconds > 0:
            tokens += usage.training_tokens
            seconds += usage.compute_seconds
            jobs += 1
    return (tokens / seconds, jobs) if seconds > 0 else None


def estimate_lora_training(
    path: str | Path,
    *,
    tokens_per_second: float,
    gpu_usd_per_hour: float,
    epochs: int | Literal["auto"] = "auto",
    throughput_source: str = "given",
) -> CostEstimate:
    """What a self-hosted LoRA run on ``path`` costs: its training tokens (counted with
    tiktoken's cl100k, close to but not exactly the base model's tokenizer) over the
    throughput ``tokens_per_second``, as hours at ``gpu_usd_per_hour``. ``"auto"`` epochs is
    the LoRA backend's default, 1."""
    from ragft.finetune.data import estimate_training
    from ragft.finetune.lora.hyperparameters import LoraHyperparameters

    if tokens_per_second <= 0:
        raise EvaluationError(f"tokens_per_second must be > 0, got {tokens_per_second}")
    n_epochs = LoraHyperparameters().epochs if epochs == "auto" else epochs
    est = estimate_training(path, model="local/lora", epochs=n_epochs)
    hours = est.billed_tokens / tokens_per_second / 3600
    cost = hours * gpu_usd_per_hour
    rate = cost / est.billed_tokens * 1_000_000 if est.billed_tokens else 0.0
    return CostEstimate(
        kind="training", model="lora", items=est.n_examples, tokens=est.billed_tokens,
        rate_per_million=rate, cost_usd=cost, source=str(path),
        details={"epochs": n_epochs, "epochs_auto": epochs == "auto", "hours": hours,
                 "tokens_per_second": tokens_per_second, "gpu_usd_per_hour": gpu_usd_per_hour,
                 "note": f"{hours:.3f} h at {tokens_per_second:,.0f} training tokens/s "
                         f"({throughput_source}) x ${gpu_usd_per_hour:.2f}/h"
                         + ("" if gpu_usd_per_hour else
                            "; local compute is $0 until the config sets [prices] "
                            "gpu_usd_per_hour")},
    )


def job_training_cost(records: Iterable[Any], job_id: str) -> float:
    """The ledger's cost of fine-tuning job ``job_id`` (training tokens and, for self-hosted
    runs, compute time at the configured GPU price); raises when the ledger has no record of
    it."""
    found = [r for r in records if r.purpose == "fine-tune" and r.tags.get("job") == job_id]
    if not found:
        raise EvaluationError(
            f"the ledger has no training record of job {job_id}; it is recorded when the job "
            "succeeds and is followed (`ragft finetune status JOB`)"
        )
    return float(sum(r.cost_usd or 0.0 for r in found))


# --------------------------------------------------------------------------- projections


@dataclass(frozen=True, slots=True)
class StrategyCost:
    """A strategy's cost model (USD): per query, fixed per month, a one-off setup cost spread
    over ``amortize_months``, and ``update_cost`` per knowledge update, ``updates_per_month``
    times a month."""

    cost_per_query: float
    fixed_monthly: float = 0.0
    setup_cost: float = 0.0
    amortize_months: int = 12
    #: What one knowledge update costs (re-embedding, a re-training job) and how many a month.
    update_cost: float = 0.0
    updates_per_month: float = 0.0

    def __post_init__(self) -> None:
        for name in ("cost_per_query", "fixed_monthly", "setup_cost", "update_cost", "updates_per_month"):
            if getattr(self, name) < 0:
                raise EvaluationError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.amortize_months < 1:
            raise EvaluationError(f"amortize_months must be >= 1, got {self.amortize_months}")

    @property
    def fixed(self) -> float:
        """Everything paid per month regardless of volume (fixed + amortised setup + updates)."""
        return self.fixed_monthly + self.setup_cost / self.amortize_months + self.update_cost * self.updates_per_month

    def monthly(self, volume: float) -> float:
        """Cost of a month with ``volume`` queries."""
        return self.cost_per_query * volume + self.fixed


def break_even(a: StrategyCost, b: StrategyCost) -> float | None:
    """The monthly query volume at which ``a`` and ``b`` cost the same, or ``None`` when
    there is none (parallel lines, or one is cheaper at every volume >= 0).

    ``v* = (F_b - F_a) / (c_a - c_b)``. Example: a = RAG at $0.15/query, b = fine-tuned at
    $0.03/query + $100/month: ``v* = (100 - 0) / (0.15 - 0.03) = 833.33`` queries/month; below
    that RAG is cheaper, above it the fine-tuned model is.
    """
    slope = a.cost_per_query - b.cost_per_query
    if slope == 0:
        return None  # parallel (or identical): one is always cheaper, or they always tie
    volume = (b.fixed - a.fixed) / slope
    # Equal fixed costs cross at 0 (or a rounding error from it): no volume to break even at.
    return volume if volume > 1e-9 else None


def format_break_even(name_a: str, a: StrategyCost, name_b: str, b: StrategyCost) -> str:
    """One sentence: where ``a`` and ``b`` break even and which is cheaper on each side."""
    v = break_even(a, b)
    if v is None:
        if a.cost_per_query == b.cost_per_query and a.fixed == b.fixed:
            return f"{name_a} vs {name_b}: same cost at every volume"
        # No crossing at a volume > 0: whichever is cheaper just above zero stays cheaper.
        cheaper = name_a if (a.fixed, a.cost_per_query) < (b.fixed, b.cost_per_query) else name_b
        return f"{name_a} vs {name_b}: no break-even; {cheaper} is cheaper at every volume"
    # Past the crossing the line with the smaller cost per query is the cheaper one.
    high = name_a if a.cost_per_query < b.cost_per_query else name_b
    low = name_b if high == name_a else name_a
    return (
        f"{name_a} vs {name_b}: break-even at {v:,.2f} queries/month; below it {low} is "
        f"cheaper, above it {high}"
    )


@dataclass(frozen=True, slots=True)
class CostProjection:
    """Monthly cost of each strategy at each volume, plus every pair's break-even."""

    strategies: Mapping[str, StrategyCost]
    volumes: tuple[int, ...]
    #: ``monthly[name][i]`` is the cost of ``name`` at ``volumes[i]``.
    monthly: Mapping[str, tuple[float, ...]]
    break_even: Mapping[tuple[str, str], float | None]

    def cheapest(self, volume_index: int) -> str:
        """The cheapest strategy at ``volumes[volume_index]``."""
        return min(self.monthly, key=lambda n: self.monthly[n][volume_index])

    def format(self) -> str:
        """An aligned text table (rows: volumes; columns: strategies) and the break-evens."""
        names = list(self.strategies)
        head = ["queries/month", *names, "cheapest"]
        rows = [
            [f"{v:,}", *(f"${self.monthly[n][i]:,.2f}" for n in names), self.cheapest(i)]
            for i, v in enumerate(self.volumes)
        ]
        widths = [max(len(head[c]), *(len(r[c]) for r in rows)) for c in range(len(head))]
        lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True))]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        lines.append("")
        for n in names:
            s = self.strategies[n]
            extra = f" + ${s.setup_cost:,.2f} setup / {s.amortize_months} months" if s.setup_cost else ""
            if s.updates_per_month:
                extra += f" + ${s.update_cost:,.6f}/update x {s.updates_per_month:g} updates/month"
            lines.append(f"  {n}: ${s.cost_per_query:.6f}/query + ${s.fixed_monthly:,.2f}/month{extra}")
        if len(names) > 1:
            lines.append("break-even:")
            for i, x in enumerate(names):
                for y in names[i + 1:]:
                    lines.append("  " + format_break_even(x, self.strategies[x], y, self.strategies[y]))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "volumes": list(self.volumes),
            "strategies": {
                n: {"cost_per_query": s.cost_per_query, "fixed_monthly": s.fixed_monthly,
                    "setup_cost": s.setup_cost, "amortize_months": s.amortize_months,
                    "update_cost": s.update_cost, "updates_per_month": s.updates_per_month}
                for n, s in self.strategies.items()
            },
            "monthly": {n: list(v) for n, v in self.monthly.items()},
            "break_even": [{"a": a, "b": b, "volume": v} for (a, b), v in self.break_even.items()],
        }


def project_monthly_costs(
    strategies: Mapping[str, StrategyCost], volumes: Iterable[int]
) -> CostProjection:
    """Monthly cost of every strategy at every volume, and the break-even of every pair."""
    if not strategies:
        raise EvaluationError("no strategies to project; give at least one with its cost per query")
    vols = tuple(int(v) for v in volumes)
    if not vols or any(v < 0 for v in vols):
        raise EvaluationError("volumes must be a non-empty list of query counts >= 0")
    names = list(strategies)
    return CostProjection(
        strategies=dict(strategies),
        volumes=vols,
        monthly={n: tuple(strategies[n].monthly(v) for v in vols) for n in names},
        break_even={
            (a, b): break_even(strategies[a], strategies[b])
            for i, a in enumerate(names)
            for b in names[i + 1:]
        },
    )


def _per_strategy(value: float | Mapping[str, float], name: str) -> float:
    return float(value.get(name, 0.0)) if isinstance(value, Mapping) else float(value)


def costs_from_eval(
    result: EvalResult | str | Path,
    *,
    fixed_monthly: float | Mapping[str, float] = 0.0,
    setup: float | Mapping[str, float] = 0.0,
    amortize_months: int = 12,
    strategies: Sequence[str] | None = None,
) -> dict[str, StrategyCost]:
    """:class:`StrategyCost` per strategy with the cost per query *measured* in an evaluation
    (``result`` or the path of its ``result.json``). ``fixed_monthly`` and ``setup`` are one
    figure for all strategies or a ``{name: amount}`` mapping (missing names get 0)."""
    res = result if isinstance(result, EvalResult) else EvalResult.from_json(result)
    names = list(strategies) if strategies is not None else list(res.strategies)
    out: dict[str, StrategyCost] = {}
    for name in names:
        if name not in res.summaries:
            raise EvaluationError(
                f"strategy {name!r} is not in the evaluation result; it has {', '.join(res.strategies)}"
            )
        out[name] = StrategyCost(
            cost_per_query=res.summaries[name].cost_per_query,
            fixed_monthly=_per_strategy(fixed_monthly, name),
            setup_cost=_per_strategy(setup, name),
            amortize_months=amortize_months,
        )
    return out


#: What a knowledge update means for each strategy kind: re-index (``rag``), re-train
#: (``finetune``) or both. The facts of ft_rag and rewrite_rag live in the index; a cascade
#: and a router answer some questions from the fine-tuned model, so it must learn them too.
UPDATE_PATHS: dict[str, tuple[str, ...]] = {
    "rag": ("rag",), "ft_rag": ("rag",), "rewrite_rag": ("rag",), "finetuned": ("finetune",),
    "cascade": ("rag", "finetune"), "router": ("rag", "finetune"), "base": (),
}


def update_costs_from_freshness(report: Any, kinds: Mapping[str, str]) -> dict[str, float]:
    """Cost per knowledge update of each strategy (``{name: kind}``), from a
    :class:`~ragft.eval.freshness.FreshnessReport`: the measured RAG update and/or the dearest
    measured fine-tuning update, as :data:`UPDATE_PATHS` says the kind needs."""
    per = report.per_update()
    rag = per.get("rag", {}).get("cost_usd", 0.0)
    ft = max((v["cost_usd"] for k, v in per.items() if k.startswith("finetune")), default=0.0)
    out = {}
    for name, kind in kinds.items():
        paths = UPDATE_PATHS.get(kind, ("rag",))
        out[name] = (rag if "rag" in paths else 0.0) + (ft if "finetune" in paths else 0.0)
    return out
