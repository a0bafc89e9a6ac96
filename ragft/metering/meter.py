"""The :class:`Meter`: every model call is recorded, priced, rolled up and checked against budgets.

Models know nothing of metering. :meth:`Meter.chat_model` and :meth:`Meter.embedder` wrap any
:class:`~ragft.models.base.ChatModel` / :class:`~ragft.models.base.Embedder` so each call is
timed, priced from the :class:`~ragft.metering.prices.PriceTable`, appended to the optional
:class:`Ledger`, and collected by whatever :meth:`Meter.collect` scopes are active (that is how
a strategy gets the exact calls behind one :class:`~ragft.answer.Answer`).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import threading
import time
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragft.answer import CallRecord, Usage
from ragft.errors import BudgetExceededError, ConfigError, ModelError
from ragft.metering.prices import PriceTable
from ragft.tokens import count_chat_tokens, count_tokens, estimate_chat_usage
from ragft.models.base import (
    ChatModel,
    ChatStream,
    Completion,
    Embedder,
    Embeddings,
    EmbedKind,
    GeneratedStream,
    Message,
    StreamingChatModel,
    SupportsClose,
)
from ragft.redact import redact
from ragft.serialize import to_record

__all__ = [
    "Allowance",
    "Budget",
    "Collector",
    "Ledger",
    "Meter",
    "MeteredChatModel",
    "MeteredChatStream",
    "MeteredEmbedder",
    "RollUp",
]


@dataclass(frozen=True, slots=True)
class Budget:
    """Spending limits in USD. ``total_usd`` caps the meter's whole life (a run);
    ``per_query_usd`` caps the calls inside one :meth:`Meter.collect` scope tagged ``query``."""

    total_usd: float | None = None
    per_query_usd: float | None = None

    def __post_init__(self) -> None:
        for name in ("total_usd", "per_query_usd"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"budget {name} must be >= 0, got {value}")


class Allowance:
    """A spending limit shared by every call made under :meth:`Meter.charging` with it, on top
    of the meter's own :class:`Budget` — e.g. one per API key in ``ragft serve``.

    Its ``budget.total_usd`` caps what those calls may cost together over the allowance's
    life; calls are admitted and reserved against it exactly as against the run budget.
    """

    def __init__(self, name: str, budget: Budget):
        self.name = name
        self.budget = budget
        self._spent = 0.0
        self._reserved = 0.0
        self._lock = threading.Lock()

    @property
    def spent_usd(self) -> float:
        """Priced cost recorded under this allowance so far."""
        with self._lock:
            return self._spent

    @property
    def limited(self) -> bool:
        """Whether the allowance caps anything."""
        return self.budget.total_usd is not None

    def _admit(self, estimate: Usage, est: float) -> None:
        limit = self.budget.total_usd
        with self._lock:
            committed = self._spent + self._reserved
            if limit is not None and committed + est > limit:
                raise BudgetExceededError(
                    f"budget of {self.name} exceeded: this {estimate.model} call would cost "
                    f"about ${est:.6f} and ${committed:.6f} of its ${limit:.6f} is spent or "
                    f"committed. Raise the limit or use a cheaper model.",
                    limit_usd=limit,
                    spent_usd=committed,
                    estimate_usd=est,
                    scope="allowance",
                )
            self._reserved += est

    def _release(self, est: float) -> None:
        with self._lock:
            self._reserved -= est

    def _add(self, cost: float) -> None:
        with self._lock:
            self._spent += cost

    def __repr__(self) -> str:
        return f"<Allowance {self.name!r} spent ${self.spent_usd:.6f} of {self.budget.total_usd}>"


@dataclass
class RollUp:
    """Totals over a group of calls."""

    calls: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    embedding_tokens: int = 0
    training_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_calls: int = 0
    estimated_calls: int = 0
    latency_s: float = 0.0

    def add(self, record: CallRecord) -> None:
        """Fold one record into the totals."""
        u = record.usage
        self.calls += 1
        self.input_tokens += u.input_tokens
        self.cached_input_tokens += u.cached_input_tokens
        self.output_tokens += u.output_tokens
        self.embedding_tokens += u.embedding_tokens
        self.training_tokens += u.training_tokens
        if not record.nested:  # a nested call's time is already inside its outer call
            self.latency_s += record.latency_s
        if record.cost_usd is None:
            self.unpriced_calls += 1
        else:
            self.cost_usd += record.cost_usd
        if u.source == "estimated":
            self.estimated_calls += 1

    @classmethod
    def of(cls, records: Iterable[CallRecord]) -> RollUp:
        """Totals of ``records``."""
        roll = cls()
        for record in records:
            roll.add(record)
        return roll

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return to_record(self)


class Ledger:
    """Append-only JSONL file of :class:`CallRecord` lines.

    Each record is written with one ``write`` of a whole line and flushed, so a crash loses at
    most the line being written. The next append starts a fresh line after such a torn tail,
    and :meth:`read` skips torn lines instead of failing.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def append(self, record: CallRecord) -> None:
        """Append one record durably."""
        line = redact(json.dumps(record.to_dict(), separators=(",", ":")))
        data = (line + "\n").encode("utf-8")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a+b") as fh:
                end = fh.seek(0, os.SEEK_END)
                if end:
                    fh.seek(end - 1)
                    if fh.read(1) != b"\n":
                        # An earlier writer crashed mid-line: glued onto that torn line, this
                        # record would be unreadable too.
                        data = b"\n" + data
                fh.write(data)  # append mode: always at the end
                fh.flush()
                os.fsync(fh.fileno())

    def read(self) -> list[CallRecord]:
        """All complete records. Torn lines (a crash mid-write) are ignored; any other
        unreadable line raises :class:`~ragft.errors.ConfigError` naming it."""
        if not self.path.exists():
            return []
        records: list[CallRecord] = []
        lines = self.path.read_text("utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                records.append(CallRecord.from_dict(json.loads(line)))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                if number == len(lines):
                    break  # torn tail from an interrupted write
                text = line.strip()
                if text.startswith("{") and not text.endswith("}"):
                    continue  # a record started but never finished: torn by a crash
                raise ConfigError(f"ledger {self.path} line {number} is corrupt: {exc}") from exc
        return records


@dataclass
class Collector:
    """Records gathered inside one :meth:`Meter.collect` scope."""

    tags: dict[str, str]
    records: list[CallRecord] = field(default_factory=list)

    @property
    def cost_usd(self) -> float:
        """Cost of the priced records so far."""
        return sum(r.cost_usd for r in self.records if r.cost_usd is not None)


class Meter:
    """Records, prices and rolls up model calls; refuses calls that would break a budget.

    One meter usually spans one run (an ``ask``, an evaluation). Thread-safe: concurrent
    ``answer_many`` calls each collect their own records through context variables.
    ``keep_records=False`` is for a meter that lives as long as a server: its calls still reach
    the ledger, the budgets and every :meth:`collect` scope, but are not also kept in
    :attr:`records` (which would grow with every request served).
    """

    def __init__(
        self,
        prices: PriceTable | None = None,
        *,
        ledger: Ledger | None = None,
        budget: Budget | None = None,
        tags: Mapping[str, str] | None = None,
        keep_records: bool = True,
    ):
        self.prices = prices if prices is not None else PriceTable.load()
        self.ledger = ledger
        self.budget = budget or Budget()
        self.tags = dict(tags or {})
        self.keep_records = keep_records
        self._records: list[CallRecord] = []
        self._spent = 0.0
        # Estimated cost of calls admitted by the budget but not yet recorded: concurrent
        # calls (answer_many, eval --concurrency) cannot all pass the same remaining budget.
        self._reserved = 0.0
        self._lock = threading.Lock()
        # Per meter and per context (thread / asyncio task): the open collect() scopes. Scopes
        # of another meter never see this meter's records.
        self._active: contextvars.ContextVar[tuple[Collector, ...]] = contextvars.ContextVar(
            f"ragft_meter_{id(self):x}", default=()
        )
        # How many metered calls are running in this context: a call recorded while another
        # is in progress (a local model embedding its input) is marked nested.
        self._depth: contextvars.ContextVar[int] = contextvars.ContextVar(
            f"ragft_meter_depth_{id(self):x}", default=0
        )
        # Per context: the allowances the calls made here are charged to (see charging()).
        self._allowances: contextvars.ContextVar[tuple[Allowance, ...]] = contextvars.ContextVar(
            f"ragft_meter_allowances_{id(self):x}", default=()
        )

    # -- recording ---------------------------------------------------------------------
    @property
    def records(self) -> list[CallRecord]:
        """Every record this meter has made, in order (none with ``keep_records=False``)."""
        with self._lock:
            return list(self._records)

    @property
    def spent_usd(self) -> float:
        """Total priced cost recorded so far."""
        with self._lock:
            return self._spent

    def record(self, usage: Usage, *, latency_s: float, purpose: str = "") -> CallRecord:
        """Price and store one call; every active :meth:`collect` scope receives it."""
        self.prices.warn_if_retired(usage.model)
        tags = dict(self.tags)
        for collector in self._active.get():
            tags.update(collector.tags)
        record = CallRecord(
            usage=usage,
            cost_usd=self.prices.cost(usage),
            latency_s=latency_s,
            purpose=purpose,
            tags=tags,
            nested=self._depth.get() > 0,
        )
        with self._lock:
            if self.keep_records:
                self._records.append(record)
            if record.cost_usd is not None:
                self._spent += record.cost_usd
        for collector in self._active.get():
            collector.records.append(record)
        if record.cost_usd is not None:
            for allowance in self._allowances.get():
                allowance._add(record.cost_usd)
        if self.ledger is not None:
            self.ledger.append(record)
        return record

    @contextlib.contextmanager
    def in_call(self) -> Iterator[None]:
        """Mark the block as inside a model call, so calls recorded within are ``nested``."""
        token = self._depth.set(self._depth.get() + 1)
        try:
            yield
        finally:
            self._depth.reset(token)

    @contextlib.contextmanager
    def collect(self, **tags: str) -> Iterator[Collector]:
        """Collect the records made inside the block (nested scopes each get them all) and
        tag them, e.g. ``with meter.collect(strategy="rag", query="q001") as calls: ...``."""
        collector = Collector(tags={k: str(v) for k, v in tags.items()})
        token = self._active.set(self._active.get() + (collector,))
        try:
            yield collector
        finally:
            self._active.reset(token)

    @contextlib.contextmanager
    def charging(self, allowance: Allowance) -> Iterator[Allowance]:
        """Charge the calls made inside the block (in this thread / task) to ``allowance``
        too: each is refused before it is made if it would take the allowance past its
        limit, and its cost is added to the allowance once recorded."""
        token = self._allowances.set(self._allowances.get() + (allowance,))
        try:
            yield allowance
        finally:
            self._allowances.reset(token)

    @property
    def budget_active(self) -> bool:
        """Whether a call made now would be checked against any limit (the run or query
        budget, or an allowance this context is charging): only then is it worth estimating."""
        return (
            self.budget.total_usd is not None
            or self.budget.per_query_usd is not None
            or any(a.limited for a in self._allowances.get())
        )

    def check_priced(self, model: str, *, embedding: bool = False) -> None:
        """Raise :class:`~ragft.errors.UnpricedModelError` now if a call to ``model`` could not
        be priced once made: failing after the call would discard a call already paid for and
        leave it out of the ledger. Free and explicitly unpriced models pass."""
        if embedding:
            self.prices.cost(Usage(model=model, kind="embedding", embedding_tokens=1))
        else:
            self.prices.cost(Usage(model=model, input_tokens=1, output_tokens=1))

    # -- budgets -------------------------------------------------------------------------
    def check_budget(self, estimate: Usage) -> None:
        """Raise :class:`BudgetExceededError` if a call estimated at ``estimate`` would take
        the run or the current query past its limit. Free and unpriced models always pass."""
        with self.budgeted(estimate):
            pass

    @contextlib.contextmanager
    def budgeted(self, estimate: Usage) -> Iterator[None]:
        """Admit a call estimated at ``estimate`` (or raise :class:`BudgetExceededError`) and
        hold its estimated cost against the run budget and the allowances being charged until
        the block ends, so concurrent calls cannot together overshoot them. Record the call
        inside the block."""
        if not self.budget_active:
            yield
            return
        est = self.prices.cost(estimate) or 0.0
        if est == 0.0:
            yield
            return
        limit = self.budget.total_usd
        with self._lock:
            committed = self._spent + self._reserved
            if limit is not None and committed + est > limit:
                raise BudgetExceededError(
                    f"budget exceeded: this {estimate.model} call would cost about ${est:.6f}, "
                    f"${committed:.6f} of the ${limit:.6f} run budget is spent or committed. "
                    f"Raise [budget] total_usd in the config or use a cheaper model.",
                    limit_usd=limit,
                    spent_usd=committed,
                    estimate_usd=est,
                    scope="run",
                )
            per_query = self.budget.per_query_usd
            scopes = [c for c in self._active.get() if "query" in c.tags]
            if per_query is not None and scopes:
                q_spent = scopes[-1].cost_usd
                if q_spent + est > per_query:
                    raise BudgetExceededError(
                        f"per-query budget exceeded: this {estimate.model} call would cost about "
                        f"${est:.6f} and ${q_spent:.6f} of the ${per_query:.6f} per-query budget "
                        f"is spent. Raise [budget] per_query_usd or shorten the context (top_k).",
                        limit_usd=per_query,
                        spent_usd=q_spent,
                        estimate_usd=est,
                        scope="query",
                    )
            # The allowances last, still under the lock: a refusal there reserves nothing.
            admitted: list[Allowance] = []
            try:
                for allowance in self._allowances.get():
                    allowance._admit(estimate, est)
                    admitted.append(allowance)
            except BudgetExceededError:
                for allowance in admitted:
                    allowance._release(est)
                raise
            self._reserved += est
        try:
            yield
        finally:
            with self._lock:
                self._reserved -= est
            for allowance in admitted:
                allowance._release(est)

    # -- roll-ups ------------------------------------------------------------------------
    def rollup(self, by: str | None = None) -> dict[str, RollUp]:
        """Totals overall (``by=None`` gives key ``"all"``) or grouped by a tag or ``model``."""
        groups: dict[str, RollUp] = {}
        for record in self.records:
            if by is None:
                key = "all"
            elif by == "model":
                key = record.usage.model
            elif by == "purpose":
                key = record.purpose or "-"
            else:
                key = record.tags.get(by, "-")
            groups.setdefault(key, RollUp()).add(record)
        return groups

    # -- wrapping ------------------------------------------------------------------------
    def chat_model(self, model: ChatModel) -> MeteredChatModel:
        """Wrap ``model`` so every call is metered by this meter."""
        if isinstance(model, MeteredChatModel):
            if model.meter is self:
                return model
            model = model.inner
        return MeteredChatModel(model, self)

    def embedder(self, embedder: Embedder) -> MeteredEmbedder:
        """Wrap ``embedder`` so every call is metered by this meter."""
        if isinstance(embedder, MeteredEmbedder):
            if embedder.meter is self:
                return embedder
            embedder = embedder.inner
        return MeteredEmbedder(embedder, self)


class MeteredChatModel:
    """A :class:`ChatModel` that records each call on a :class:`Meter`.

    ``purpose`` labels the call in roll-ups (``generate``, ``rewrite``, ``classify`` ...).
    """

    def __init__(self, inner: ChatModel, meter: Meter, purpose: str = "chat"):
        # Checked when wrapped, i.e. when a strategy is built: an unpriced model must fail
        # before the first call of a query (a retrieval embedding, say) is made and paid for.
        meter.check_priced(inner.name)
        self.inner = inner
        self.meter = meter
        self.purpose = purpose

    @property
    def name(self) -> str:
        """The wrapped model's id."""
        return self.inner.name

    def with_purpose(self, purpose: str) -> MeteredChatModel:
        """The same model and meter, labelling calls with ``purpose``."""
        return MeteredChatModel(self.inner, self.meter, purpose)

    def _budget_estimate(self, messages: Sequence[Message], max_tokens: int | None) -> Usage:
        # Counting the prompt costs ~0.6 ms: only pay it when a budget is set.
        if not self.meter.budget_active:
            return Usage(model=self.name, source="estimated")
        return self._estimate(messages, max_tokens)

    def _estimate(self, messages: Sequence[Message], max_tokens: int | None) -> Usage:
        return Usage(
            model=self.name,
            input_tokens=count_chat_tokens(messages, self.name),
            output_tokens=max_tokens or 256,
            source="estimated",
        )

    def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float = 0.0,
        logprobs: bool = False,
    ) -> Completion:
        """Check the price and budget, call the model, record its reported usage."""
        with self.meter.budgeted(self._budget_estimate(messages, max_tokens)):
            start = time.perf_counter()
            with self.meter.in_call():
                completion = self.inner.complete(
                    messages, max_tokens=max_tokens, temperature=temperature, logprobs=logprobs
                )
            self.meter.record(
                completion.usage, latency_s=time.perf_counter() - start, purpose=self.purpose
            )
        return completion

    async def acomplete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float = 0.0,
        logprobs: bool = False,
    ) -> Completion:
        """Async :meth:`complete` for backends that have one (the OpenAI SDK's async client);
        metered the same way. Others run :meth:`complete` in a worker thread."""
        inner = getattr(self.inner, "acomplete", None)
        if inner is None:
            import asyncio

            return await asyncio.to_thread(
                self.complete, messages, max_tokens=max_tokens, temperature=temperature, logprobs=logprobs
            )
        with self.meter.budgeted(self._budget_estimate(messages, max_tokens)):
            start = time.perf_counter()
            with self.meter.in_call():
                completion = await inner(
                    messages, max_tokens=max_tokens, temperature=temperature, logprobs=logprobs
                )
            self.meter.record(
                completion.usage, latency_s=time.perf_counter() - start, purpose=self.purpose
            )
        return completion

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int | None = None, temperature: float = 0.0
    ) -> MeteredChatStream:
        """Stream the reply (a :class:`~ragft.models.base.ChatStream`). The budget is checked
        and the call made when iteration starts; the call is recorded when the stream ends
        (or is abandoned). A model that cannot stream answers in one piece."""
        return MeteredChatStream(self, messages, max_tokens=max_tokens, temperature=temperature)


class MeteredChatStream(GeneratedStream):
    """The text deltas of one metered call (a :class:`~ragft.models.base.ChatStream`).

    Iterate once; afterwards :attr:`completion` holds the wrapped model's completion. Stopping
    early (or :meth:`close`) still records the call, billing the text seen as an estimate when
    the model reported no usage.
    """

    def __init__(
        self,
        model: MeteredChatModel,
        messages: Sequence[Message],
        *,
        max_tokens: int | None,
        temperature: float,
    ):
        self._model = model
        self._messages = list(messages)
        self._max_tokens = max_tokens
        self._temperature = temperature
        self._inner: ChatStream | None = None
        super().__init__()

    def _release(self) -> None:
        if isinstance(self._inner, SupportsClose):
            self._inner.close()

    def _run(self) -> Generator[str, None, None]:
        model, meter = self._model, self._model.meter
        inner = model.inner
        if not isinstance(inner, StreamingChatModel):
            self.completion = model.complete(
                self._messages, max_tokens=self._max_tokens, temperature=self._temperature
            )
            yield self.completion.text
            return
        with meter.budgeted(model._budget_estimate(self._messages, self._max_tokens)):
            start = time.perf_counter()
            pieces: list[str] = []
            try:
                self._inner = inner.stream(
                    self._messages, max_tokens=self._max_tokens, temperature=self._temperature
                )
                for delta in self._inner:
                    pieces.append(delta)
                    yield delta
            finally:
                final = self._inner.completion if self._inner is not None else None
                self.completion = final
                usage = (
                    final.usage
                    if final is not None
                    # Abandoned mid-stream: bill what was seen, marked as an estimate.
                    else estimate_chat_usage(model.name, self._messages, "".join(pieces))
                )
                if self._inner is not None:  # no call was made if starting it failed
                    meter.record(usage, latency_s=time.perf_counter() - start, purpose=model.purpose)


class MeteredEmbedder:
    """An :class:`Embedder` that records each call on a :class:`Meter`."""

    def __init__(self, inner: Embedder, meter: Meter, purpose: str = "embed"):
        meter.check_priced(inner.name, embedding=True)  # when wrapped, before any call
        self.inner = inner
        self.meter = meter
        self.purpose = purpose

    @property
    def name(self) -> str:
        """The wrapped embedder's id."""
        return self.inner.name

    @property
    def dimension(self) -> int:
        """The wrapped embedder's vector size."""
        return self.inner.dimension

    def embed(self, texts: Sequence[str], *, kind: EmbedKind = "document") -> Embeddings:
        """Check the price and budget, embed, record the reported usage."""
        est = 0
        if self.meter.budget_active and texts:
            est = sum(count_tokens(t, self.name) for t in texts)
        estimate = Usage(model=self.name, kind="embedding", embedding_tokens=est, source="estimated")
        with self.meter.budgeted(estimate):
            start = time.perf_counter()
            try:
                with self.meter.in_call():
                    result = self.inner.embed(texts, kind=kind)
            except ModelError as exc:
                # Work billed before the failure (earlier batches) is still spent: record it.
                if isinstance(exc.partial_usage, Usage):
                    self.meter.record(exc.partial_usage, latency_s=time.perf_counter() - start,
                                      purpose=f"{self.purpose}_{kind}")
                raise
            self.meter.record(
                result.usage,
                latency_s=time.perf_counter() - start,
                purpose=f"{self.purpose}_{kind}",
            )
        return result
