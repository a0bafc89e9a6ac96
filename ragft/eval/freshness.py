"""Update frequency, measured: how long until a new or changed fact is answered correctly.

The guide says RAG updates in minutes and fine-tuning in days. Here both are timed on the
user's own setup with one synthetic fact (:class:`FactChange`): a new document is added, then
changed, and each approach must answer the fact's question with the new value.

* **RAG** (:func:`measure_rag_update`): write the document, update the index incrementally
  (only the changed document is chunked and embedded), answer. Time and cost per step.
* **Fine-tuning** (:func:`measure_finetune_update`), through any registered
  :class:`~ragft.finetune.jobs.FineTuneBackend` (the local trainers, LoRA, OpenAI) driven by the
  :class:`~ragft.finetune.jobs.JobManager`: data preparation (examples built and validated),
  training (the job from start to its terminal state; the backend's own job timestamps are
  reported beside the wall clock), the evaluation gate (held-out examples plus the new fact)
  and promotion in a model registry. Then the promoted model answers the fact.
* **A past job** (:func:`timings_from_job`): for a backend where a measurement would take hours
  and money (OpenAI), the queue and training durations are read from the job's own
  ``created_at``/``finished_at`` and event timestamps.

Everything runs in a scratch directory: the user's index, registry and models are never
touched. Costs are metered; simulated prices (see
:meth:`~ragft.metering.prices.PriceTable.simulating`) are marked in the report.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ragft.answer import sum_cost
from ragft.errors import EvaluationError
from ragft.finetune.data import generator_examples, split_examples, validate_examples, write_jsonl
from ragft.finetune.jobs import JobEvent, JobManager, JobStatus
from ragft.finetune.registry import Gate, ModelRegistry, evaluate_model
from ragft.metering.meter import Meter
from ragft.metrics import contains_answer
from ragft.models.base import ChatModel
from ragft.storage import atomic_write_bytes
from ragft.strategies.base import Strategy

__all__ = [
    "UPDATES_PER_MONTH",
    "FactChange",
    "FreshnessReport",
    "Step",
    "UpdateMeasurement",
    "make_fact",
    "measure_finetune_update",
    "measure_rag_update",
    "parse_update_frequency",
    "timings_from_job",
]

FORMAT = "ragft-freshness"

#: Update frequencies by name, as updates per month (the guide's "Update Frequency Comparison").
UPDATES_PER_MONTH: dict[str, float] = {"daily": 30.0, "weekly": 30.0 / 7, "monthly": 1.0,
                                       "quarterly": 1.0 / 3, "static": 0.0}


def parse_update_frequency(text: str) -> tuple[str, float]:
    """``daily``/``weekly``/``monthly``/``quarterly``/``static`` or ``N/month`` -> (label, updates
    per month)."""
    value = text.strip().lower()
    if value in UPDATES_PER_MONTH:
        return value, UPDATES_PER_MONTH[value]
    number = value.removesuffix("/month").strip()
    try:
        per_month = float(number)
    except ValueError:
        raise EvaluationError(f"update frequency {text!r}: use daily, weekly, monthly, quarterly, static "
                              "or a number of updates per month (e.g. 8/month)") from None
    if per_month < 0:
        raise EvaluationError(f"update frequency {text!r} must be >= 0")
    return f"{per_month:g}/month", per_month


@dataclass(frozen=True, slots=True)
class FactChange:
    """A synthetic fact: a document that is added with ``old`` and then changed to ``new``.
    The values are unlike anything in a real corpus, so only an update can teach them."""

    document: str
    question: str
    paraphrases: tuple[str, ...]
    old: str
    new: str

    def text(self, value: str) -> str:
        """The document's content stating ``value``."""
        return (f"# Late-night courier allowance\n\nThe late-night courier allowance is {value} per "
                "trip. Claims go to the Zephyr desk within 30 days of the trip.\n")


def make_fact(seed: int = 0) -> FactChange:
    """The fact used by the measurement (values vary with ``seed``)."""
    old = 100 + (seed * 37) % 400
    new = old + 27
    return FactChange(
        document="freshness/late_night_courier.md",
        question="What is the late-night courier allowance per trip?",
        paraphrases=("How much is the late-night courier allowance?",
                     "What can I claim per late-night courier trip?",
                     "How much do we reimburse for a late-night courier trip?",
                     "late night courier allowance amount",
                     "What is the allowance for a courier late at night?",
                     "How much money do I get for a late-night courier?",
                     "Per-trip allowance for late-night couriers?",
                     "What does the company pay for each late-night courier trip?",
                     "Tell me the late-night courier allowance.",
                     "What's the courier allowance for trips late at night?"),
        old=f"${old}", new=f"${new}",
    )


@dataclass(frozen=True, slots=True)
class Step:
    """One timed step of an update: wall seconds, what it cost, and what it did."""

    name: str
    seconds: float
    cost_usd: float = 0.0
    detail: str = ""


@dataclass(frozen=True, slots=True)
class UpdateMeasurement:
    """One approach (``rag``, ``finetune:local``, ``finetune:openai`` ...) absorbing one
    change (``add`` or ``change``): its steps, total time and cost, whether the fact was then
    answered correctly, and how the time was obtained (``measured`` or ``job timestamps``)."""

    approach: str
    change: str
    steps: tuple[Step, ...]
    correct: bool | None
    answer: str = ""
    source: str = "measured"
    notes: tuple[str, ...] = ()

    @property
    def seconds(self) -> float:
        """Total wall time of the steps."""
        return sum(s.seconds for s in self.steps)

    @property
    def cost_usd(self) -> float:
        """Total cost of the steps."""
        return sum(s.cost_usd for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (with the totals)."""
        data = asdict(self)
        data["steps"] = [asdict(s) for s in self.steps]
        data["notes"] = list(self.notes)
        data["seconds"] = self.seconds
        data["cost_usd"] = self.cost_usd
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UpdateMeasurement:
        """Inverse of :meth:`to_dict`."""
        return cls(
            approach=str(data["approach"]), change=str(data["change"]),
            steps=tuple(Step(**s) for s in data.get("steps", ())), correct=data.get("correct"),
            answer=str(data.get("answer", "")), source=str(data.get("source", "measured")),
            notes=tuple(data.get("notes", ())),
        )


@dataclass
class FreshnessReport:
    """Every measurement of one run, plus the fact used and the price basis."""

    measurements: list[UpdateMeasurement]
    fact: FactChange
    simulated_prices: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def best(self, approach_prefix: str) -> UpdateMeasurement | None:
        """The slowest correct measurement of approaches starting with ``approach_prefix``
        (the conservative figure: an update is only done when it is answered)."""
        found = [m for m in self.measurements if m.approach.startswith(approach_prefix)]
        return max(found, key=lambda m: m.seconds) if found else None

    def per_update(self) -> dict[str, dict[str, float]]:
        """``{approach: {"seconds", "cost_usd"}}``, the slowest (and dearest) change each."""
        out: dict[str, dict[str, float]] = {}
        for m in self.measurements:
            cur = out.setdefault(m.approach, {"seconds": 0.0, "cost_usd": 0.0})
            cur["seconds"] = max(cur["seconds"], m.seconds)
            cur["cost_usd"] = max(cur["cost_usd"], m.cost_usd)
        return out

    def summary(self) -> str:
        """The measurements as a table for the terminal."""
        lines = [f"fact: {self.fact.question!r}: {self.fact.old} (added) -> {self.fact.new} (changed)"]
        if self.simulated_prices:
            lines.append(f"SIMULATED PRICES: local models charged as {self.simulated_prices}; not real costs")
        head = ("approach", "change", "time", "cost", "answered", "steps")
        rows = []
        for m in self.measurements:
            steps = ", ".join(f"{s.name} {_dur(s.seconds)}" for s in m.steps)
            ok = "n/a" if m.correct is None else ("yes" if m.correct else "NO")
            rows.append((m.approach, m.change, _dur(m.seconds), f"${m.cost_usd:.6f}", ok,
                         steps + ("" if m.source == "measured" else f" [{m.source}]")))
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
        lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip())
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        for m in self.measurements:
            lines += [f"note ({m.approach}, {m.change}): {n}" for n in m.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"format": FORMAT, "fact": asdict(self.fact), "simulated_prices": self.simulated_prices,
                "meta": self.meta, "per_update": self.per_update(),
                "measurements": [m.to_dict() for m in self.measurements]}

    def to_json(self, path: str | Path) -> Path:
        """Write the report, atomically."""
        atomic_write_bytes(path, (json.dumps(self.to_dict(), indent=2) + "\n").encode("utf-8"))
        return Path(path)

    @classmethod
    def from_json(cls, path: str | Path) -> FreshnessReport:
        """Read a report written by :meth:`to_json`."""
        p = Path(path)
        try:
            data = json.loads(p.read_text("utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise EvaluationError(f"cannot read the freshness report {p}: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise EvaluationError(f"{p} is not a freshness report; pass the freshness.json written "
                                  "by `ragft eval freshness`")
        fact = data["fact"]
        return cls([UpdateMeasurement.from_dict(m) for m in data.get("measurements", [])],
                   FactChange(**{**fact, "paraphrases": tuple(fact["paraphrases"])}),
                   data.get("simulated_prices"), dict(data.get("meta", {})))


def _dur(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.2f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class _Clock:
    """Times steps and collects the metered cost of each."""

    def __init__(self, meter: Meter, **tags: str):
        self.meter = meter
        self.tags = tags
        self.steps: list[Step] = []

    def run(self, name: str, fn: Callable[[], Any], detail: str = "") -> Any:
        start = time.perf_counter()
        with self.meter.collect(freshness_step=name, **self.tags) as calls:
            value = fn()
        self.steps.append(Step(name, time.perf_counter() - start, sum_cost(calls.records), detail))
        return value


def _correct(answer_text: str, abstained: bool, gold: str) -> bool:
    return not abstained and contains_answer(answer_text, [gold]) == 1.0


def measure_rag_update(
    corpus: Path,
    sync: Callable[[], Any],
    strategy: Strategy,
    fact: FactChange,
    *,
    meter: Meter,
    approach: str = "rag",
) -> list[UpdateMeasurement]:
    """Add the fact's document to ``corpus``, run ``sync`` (the incremental index update), ask
    ``strategy``; then change the document and do it again. ``corpus`` must be a scratch copy."""
    out = []
    path = corpus / fact.document
    # Asked once before the update: loads the models (a serving process has them loaded, so it
    # is not part of the update time) and shows the fact was not known.
    before = strategy.answer(fact.question)
    known_before = _correct(before.text, before.abstained, fact.old)
    for change, value in (("add", fact.old), ("change", fact.new)):
        clock = _Clock(meter, freshness=approach)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(fact.text(value), encoding="utf-8")
        report = clock.run("index update", sync)
        detail = report.summary() if hasattr(report, "summary") else ""  # a SyncReport says what changed
        if detail:
            clock.steps[-1] = Step(clock.steps[-1].name, clock.steps[-1].seconds, clock.steps[-1].cost_usd,
                                   detail[:120])
        answer = clock.run("answer", lambda: strategy.answer(fact.question))
        notes = (f"before the update the answer was {'already right' if known_before else 'not the fact'}: "
                 f"{before.text[:80]!r}",) if change == "add" else ()
        out.append(UpdateMeasurement(approach, change, tuple(clock.steps),
                                     _correct(answer.text, answer.abstained, value), answer.text[:200],
                                     notes=notes))
    return out


def _fact_examples(fact: FactChange, value: str) -> list[dict[str, str]]:
    return [{"question": q, "answer": f"The late-night courier allowance is {value} per trip."}
            for q in (fact.question, *fact.paraphrases)]


def measure_finetune_update(
    manager: JobManager,
    registry: ModelRegistry,
    load_model: Callable[[str], ChatModel],
    fact: FactChange,
    *,
    meter: Meter,
    workdir: Path,
    base_model: str,
    training: Sequence[Mapping[str, Any]] = (),
    name: str = "generator",
    gate: Gate = Gate("answered_f1", 0.5),
    epochs: int | str = "auto",
) -> list[UpdateMeasurement]:
    """Teach the fine-tuned generator the fact (added, then changed) through ``manager``'s
    backend, gate and promote it in ``registry``, and ask the promoted model.

    ``training`` are the existing ``{"question", "answer"}`` pairs the model is retrained on
    with the fact (empty: the fact alone). ``load_model`` turns a fine-tuned model id into a
    chat model (the backend's own loader). The gate is evaluated on the fact's question plus a
    held-out split of ``training``.
    """
    backend = manager.backend.name
    approach = f"finetune:{backend}"
    out = []
    for change, value in (("add", fact.old), ("change", fact.new)):
        clock = _Clock(meter, freshness=approach)
        files: dict[str, Path] = {}

        def prepare(value: str = value, change: str = change) -> str:
            base = generator_examples(list(training)) if training else []
            parts = split_examples(base, validation=0.1, test=0.1, seed=0)
            fact_rows = _fact_examples(fact, value)
            # The fact's question and its paraphrases are trained on (as a user writes the new Q/A
            # pairs); two paraphrases also calibrate the confidence; the gate asks the question.
            train = [*parts.train, *generator_examples(fact_rows)]
            validation = [*parts.validation, *generator_examples(fact_rows[-2:])]
            held_out = [*parts.test, *generator_examples(fact_rows[:1])]
            validate_examples(train, model=base_model, raise_on_error=True, source="training examples")
            validate_examples(validation, model=base_model, min_examples=1, raise_on_error=True,
                              source="validation examples")
            for label, rows in (("train", train), ("validation", validation), ("test", held_out)):
                files[label] = write_jsonl(rows, workdir / f"{name}.{change}.{label}.jsonl")
            return f"{len(train)} training, {len(validation)} validation, {len(held_out)} held-out examples"

        detail = clock.run("data preparation", prepare)
        clock.steps[-1] = Step(clock.steps[-1].name, clock.steps[-1].seconds, clock.steps[-1].cost_usd, detail)

        def train(change: str = change) -> JobStatus:
            job = manager.start(files["train"], model=base_model, suffix=f"fresh-{change}",
                                validation_file=files["validation"], epochs=epochs,  # type: ignore[arg-type]
                                purpose="generator", validate=False)  # validated while preparing
            return manager.follow(job.job_id)

        status = clock.run("training", train)
        notes = []
        if status.created_at is not None and status.finished_at is not None:
            notes.append(f"backend job {status.id}: {status.finished_at - status.created_at:.2f} s "
                         "from creation to finish by its own timestamps")
        model_id = status.fine_tuned_model
        if model_id is None:
            raise EvaluationError(f"fine-tuning job {status.id} finished without a model")
        model = load_model(model_id)
        examples = [json.loads(line) for line in files["test"].read_text("utf-8").splitlines() if line]
        metrics = clock.run("evaluation gate", lambda: evaluate_model(model, examples))

        def promote(metrics: dict[str, float] = metrics) -> str:
            version = registry.register(name, model_id=model_id, base_model=base_model, purpose="generator",
                                        job_id=status.id, metrics=metrics, backend=backend)
            try:
                registry.promote(name, version.version, gate=gate)
            except Exception as exc:  # the gate refused: the update did not ship
                return f"refused: {exc}"
            return f"promoted {name}@{version.version}"

        promoted = clock.run("promotion", promote)
        clock.steps[-1] = Step(clock.steps[-1].name, clock.steps[-1].seconds, clock.steps[-1].cost_usd, promoted)
        completion = model.complete([{"role": "user", "content": fact.question}])
        correct = _correct(completion.text, False, value) and promoted.startswith("promoted")
        if promoted.startswith("refused"):
            notes.append(f"the gate refused the new version ({promoted}); the old model still serves")
        out.append(UpdateMeasurement(approach, change, tuple(clock.steps), correct, completion.text[:200],
                                     notes=tuple(notes)))
    return out


#: Event texts that mark training under way (OpenAI: "Fine-tuning job started", "Step 1/100: ...";
#: "Validating training file" is not one of them).
_RUNNING = ("job started", "running", "step ")


def timings_from_job(manager: JobManager, job_id: str) -> UpdateMeasurement:
    """Queue and training durations of a finished job from the backend's own timestamps
    (``created_at``, the first event saying it runs, ``finished_at``): the measurement for a
    backend where a new job would take hours and cost money."""
    status = manager.status(job_id)
    if not status.terminal or status.created_at is None or status.finished_at is None:
        raise EvaluationError(f"job {job_id} has not finished ({status.status}); its timings are "
                              "not known yet")
    events: list[JobEvent] = sorted(manager.events(job_id, limit=1000), key=lambda e: e.created_at)
    started = next((e.created_at for e in events
                    if any(e.message.lower().startswith(w) or f" {w}" in e.message.lower() for w in _RUNNING)),
                   status.created_at)
    steps = (Step("queued and validated", max(0.0, started - status.created_at)),
             Step("training", max(0.0, status.finished_at - started),
                  detail=f"{status.trained_tokens or 0:,} trained tokens"))
    return UpdateMeasurement(f"finetune:{manager.backend.name}", "job", steps, None, source="job timestamps",
                             notes=(f"job {job_id} ({status.status}); data preparation, the gate and promotion "
                                    "are not part of a past job's timestamps",))


# --------------------------------------------------------------------------- from a config

def run_freshness(
    cfg: Any,
    *,
    backends: Sequence[str] = ("local",),
    base_models: Mapping[str, str] | None = None,
    training: Sequence[Mapping[str, Any]] = (),
    meter: Meter,
    scratch: Path,
    seed: int = 0,
) -> FreshnessReport:
    """Measure RAG and each fine-tuning backend on one fact, in ``scratch`` (a fresh directory:
    the config's index is copied there, its corpus too; nothing of the user's state changes).

    Each name in ``backends`` is a fine-tuning backend registered in
    :mod:`ragft.finetune.backends`, built over the scratch home, so any backend that registers
    there (local, LoRA, OpenAI) is measured the same way; the promoted model is loaded through
    the model registry (``Components.chat``). ``base_models`` names the model each backend
    fine-tunes (default: ``local`` for the local backend, else the config's chat model). A
    backend that only ran a past job (OpenAI) is added with :func:`timings_from_job`."""
    import shutil

    from ragft.components import Components, build_finetune_backend
    from ragft.strategies import build_strategy

    fact = make_fact(seed)
    corpus = scratch / "corpus"
    shutil.copytree(cfg.corpus_path, corpus)
    if cfg.index_path.exists():  # start from the current index: only the update is timed
        shutil.copytree(cfg.index_path, scratch / "index")
    local = cfg.with_overrides(home=str(scratch), **{"index.corpus": str(corpus), "index.path": str(scratch / "index")})
    with Components(local, meter) as parts:  # closed at the end: models may hold servers
        kb = parts.knowledge_base()
        kb.sync(corpus, progress=False)  # brings a missing or stale copy up to date (not timed)
        rag = build_strategy(local, strategy="rag", meter=meter, parts=parts)
        measurements = measure_rag_update(corpus, lambda: kb.sync(corpus, progress=False), rag, fact, meter=meter)
        for name in backends:
            backend = build_finetune_backend(local, name)
            base_model = (base_models or {}).get(name) or ("local" if name == "local" else local.chat_model)
            manager = JobManager(backend, scratch / "jobs" / name, meter=meter, poll_interval=0.05,
                                 max_poll_interval=1.0)
            registry = ModelRegistry(scratch / f"registry-{name}.json")
            work = scratch / "data" / name
            work.mkdir(parents=True, exist_ok=True)
            measurements += measure_finetune_update(manager, registry, parts.chat, fact, meter=meter, workdir=work,
                                                    base_model=base_model, training=training)
    simulated = meter.prices.simulated_as
    return FreshnessReport(measurements, fact, f"{simulated[0]} / {simulated[1]}" if simulated else None,
                           {"config": str(getattr(cfg, "source", "") or ""), "corpus": str(cfg.corpus_path),
                            "backends": list(backends)})
