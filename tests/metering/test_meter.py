"""The meter records every call, rolls up exactly, persists a ledger and enforces budgets."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pytest

from ragft.answer import Usage
from ragft.errors import BudgetExceededError, ConfigError
from ragft.metering.meter import Allowance, Budget, Ledger, Meter, RollUp
from ragft.models.base import Completion, Embeddings, Message


class FixedChat:
    """A tiny real ChatModel: replies with a fixed text and the usage it is given."""

    def __init__(self, name: str, usage: dict[str, int], text: str = "ok"):
        self._name = name
        self.usage = usage
        self.text = text
        self.calls = 0

    @property
    def name(self) -> str:
        return self._name

    def complete(self, messages: Sequence[Message], *, max_tokens=None, temperature=0.0, logprobs=False):
        self.calls += 1
        return Completion(text=self.text, usage=Usage(model=self._name, **self.usage), model=self._name)


class CountingEmbedder:
    name = "text-embedding-3-small"
    dimension = 4

    def embed(self, texts, *, kind="document"):
        return Embeddings(
            np.ones((len(texts), 4), dtype=np.float32),
            Usage(model=self.name, kind="embedding", embedding_tokens=10 * len(texts)),
        )


MSGS = [{"role": "user", "content": "hi"}]


def test_records_and_prices_each_call() -> None:
    meter = Meter()
    chat = meter.chat_model(FixedChat("gpt-4.1-mini", {"input_tokens": 1000, "cached_input_tokens": 500, "output_tokens": 100}))
    chat.complete(MSGS)
    (rec,) = meter.records
    assert rec.cost_usd == pytest.approx((500 * 0.40 + 500 * 0.10 + 100 * 1.60) / 1e6)
    assert rec.usage.source == "reported" and rec.latency_s >= 0


def test_collect_scopes_tag_and_gather_exactly_their_calls() -> None:
    meter = Meter(tags={"run": "r1"})
    chat = meter.chat_model(FixedChat("gpt-4o-mini", {"input_tokens": 100, "output_tokens": 10}))
    emb = meter.embedder(CountingEmbedder())
    chat.complete(MSGS)  # outside any scope
    with meter.collect(strategy="rag") as outer:
        with meter.collect(query="q1") as inner:
            emb.embed(["a", "b"], kind="query")
            chat.complete(MSGS)
        chat.complete(MSGS)
    assert len(inner.records) == 2 and len(outer.records) == 3 and len(meter.records) == 4
    assert inner.records[0].tags == {"run": "r1", "strategy": "rag", "query": "q1"}
    assert inner.records[0].purpose == "embed_query"
    by_strategy = meter.rollup("strategy")
    assert by_strategy["rag"].calls == 3 and by_strategy["-"].calls == 1
    total = meter.rollup()["all"]
    assert total.cost_usd == pytest.approx(sum(r.cost_usd for r in meter.records))
    assert total.embedding_tokens == 20


def test_collectors_are_isolated_between_threads() -> None:
    meter = Meter()
    chat = meter.chat_model(FixedChat("local/x", {"input_tokens": 1}))
    results: dict[int, int] = {}

    def work(i: int) -> None:
        with meter.collect(query=str(i)) as c:
            for _ in range(i + 1):
                chat.complete(MSGS)
        results[i] = len(c.records)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {0: 1, 1: 2, 2: 3, 3: 4}


def test_budget_refuses_a_call_that_would_exceed_the_run_limit() -> None:
    inner = FixedChat("gpt-4.1", {"input_tokens": 1000, "output_tokens": 1000})
    meter = Meter(budget=Budget(total_usd=0.02))
    chat = meter.chat_model(inner)
    chat.complete(MSGS, max_tokens=1000)  # ~$0.01
    chat.complete(MSGS, max_tokens=1000)  # spent 0.01 + estimate ~0.008 < 0.02: allowed
    with pytest.raises(BudgetExceededError, match="run budget") as err:
        chat.complete(MSGS, max_tokens=1000)  # spent 0.02 + estimate > 0.02: refused
    assert inner.calls == 2  # the refused call never reached the model
    assert err.value.limit_usd == 0.02 and err.value.spent_usd == pytest.approx(0.02)


def test_per_query_budget() -> None:
    meter = Meter(budget=Budget(per_query_usd=0.005))
    chat = meter.chat_model(FixedChat("gpt-4.1", {"input_tokens": 1000, "output_tokens": 200}))
    with meter.collect(query="q1"):
        chat.complete(MSGS, max_tokens=200)  # 0.0036
        with pytest.raises(BudgetExceededError, match="per-query"):
            chat.complete(MSGS, max_tokens=200)
    with meter.collect(query="q2"):
        chat.complete(MSGS, max_tokens=200)  # a new query starts fresh


def test_free_models_pass_any_budget() -> None:
    meter = Meter(budget=Budget(total_usd=0.0))
    meter.chat_model(FixedChat("local/reader", {"input_tokens": 10**6})).complete(MSGS)
    assert len(meter.records) == 1


def test_negative_budget_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        Budget(total_usd=-1)


def test_ledger_round_trip_and_torn_tail(tmp_path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    meter = Meter(ledger=ledger)
    chat = meter.chat_model(FixedChat("gpt-4o-mini", {"input_tokens": 7, "output_tokens": 3}))
    for _ in range(3):
        chat.complete(MSGS)
    with open(ledger.path, "a") as fh:
        fh.write('{"usage": {"model": "gpt-4o')  # a crash mid-write
    back = ledger.read()
    assert [r.to_dict() for r in back] == [r.to_dict() for r in meter.records]
    assert RollUp.of(back).cost_usd == pytest.approx(meter.spent_usd)


def test_ledger_corruption_in_the_middle_is_reported(tmp_path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_text('garbage\n{"usage": {"model": "m"}, "cost_usd": 0}\n')
    with pytest.raises(ConfigError, match="line 1"):
        Ledger(path).read()


def test_abandoned_stream_is_billed_as_an_estimate() -> None:
    meter = Meter()

    class Stream:
        def __init__(self):
            self.completion = None

        def __iter__(self):
            yield "Hello"
            yield " world"
            self.completion = Completion("Hello world", Usage(model="gpt-4.1-mini", input_tokens=9, output_tokens=2), "gpt-4.1-mini")

    class Streamer(FixedChat):
        def stream(self, messages, *, max_tokens=None, temperature=0.0):
            return Stream()

    chat = meter.chat_model(Streamer("gpt-4.1-mini", {}))
    assert "".join(chat.stream(MSGS)) == "Hello world"
    assert meter.records[-1].usage.source == "reported"
    gen = chat.stream(MSGS)
    next(iter(gen))
    gen.close()  # consumer stops early: no final usage chunk
    last = meter.records[-1]
    assert last.usage.source == "estimated" and last.usage.output_tokens >= 1


def test_scopes_of_one_meter_ignore_another_meters_calls() -> None:
    a, b = Meter(), Meter()
    chat_b = b.chat_model(FixedChat("local/x", {"input_tokens": 1}))
    with a.collect(query="q") as scope:
        chat_b.complete(MSGS)
    assert scope.records == [] and len(b.records) == 1


def test_calls_made_inside_a_call_are_nested_and_their_time_not_double_counted() -> None:
    meter = Meter()
    emb = meter.embedder(CountingEmbedder())

    class EmbeddingChat(FixedChat):
        def complete(self, messages, **kw):
            emb.embed(["inner lookup"], kind="query")  # a local model embedding its input
            return super().complete(messages, **kw)

    chat = meter.chat_model(EmbeddingChat("local/x", {"input_tokens": 3}))
    with meter.collect(query="q") as scope:
        emb.embed(["top-level query"], kind="query")
        chat.complete(MSGS)
    top, inner, outer = scope.records  # recorded in completion order
    assert (top.nested, inner.nested, outer.nested) == (False, True, False)
    roll = RollUp.of(scope.records)
    assert roll.latency_s == pytest.approx(top.latency_s + outer.latency_s)
    assert roll.embedding_tokens == 20  # tokens of nested calls still count


def test_an_unpriced_model_is_refused_before_the_call_is_made() -> None:
    # Raising only when the finished call is priced would throw away a call already paid for
    # (and leave it out of the ledger); the price table is checked when the model is wrapped,
    # i.e. when a strategy is built, before any call of any query.
    from ragft.errors import UnpricedModelError

    meter = Meter()
    inner = FixedChat("my-vllm-model", {"input_tokens": 5, "output_tokens": 2})
    with pytest.raises(UnpricedModelError, match="my-vllm-model"):
        meter.chat_model(inner)
    assert inner.calls == 0 and meter.records == []

    class UnknownEmbedder(CountingEmbedder):
        name = "my-embedder"

    with pytest.raises(UnpricedModelError, match="my-embedder"):
        meter.embedder(UnknownEmbedder())
    # Chatting with an embedding-only model is refused the same way.
    with pytest.raises(UnpricedModelError, match="no chat price"):
        meter.chat_model(FixedChat("text-embedding-3-small", {"input_tokens": 1}))
    # Explicitly unpriced models still run, recorded with an unknown cost.
    listed = Meter(Meter().prices.with_overrides(unpriced=["my-vllm-model"]))
    listed.chat_model(inner).complete(MSGS)
    assert inner.calls == 1 and listed.records[0].cost_usd is None


def test_appending_after_a_torn_tail_keeps_every_later_record(tmp_path) -> None:
    # A crash mid-write leaves a partial last line with no newline. The next run appends to
    # the same ledger (the home ledger, an eval re-run into the same --out): its records must
    # not be glued onto the torn line and lost with it.
    ledger = Ledger(tmp_path / "ledger.jsonl")
    chat = Meter(ledger=ledger).chat_model(FixedChat("gpt-4o-mini", {"input_tokens": 7, "output_tokens": 3}))
    chat.complete(MSGS)
    with open(ledger.path, "a") as fh:
        fh.write('{"usage": {"model": "gpt-4o')  # the crash
    later = Meter(ledger=ledger)
    later.chat_model(FixedChat("gpt-4o-mini", {"input_tokens": 70, "output_tokens": 30})).complete(MSGS)
    back = ledger.read()
    assert [r.usage.input_tokens for r in back] == [7, 70]
    # Other corruption in the middle is still reported, not skipped.
    with open(ledger.path, "a") as fh:
        fh.write("garbage\n")
    later.chat_model(FixedChat("gpt-4o-mini", {"input_tokens": 1, "output_tokens": 1})).complete(MSGS)
    with pytest.raises(ConfigError, match="line 4"):
        ledger.read()


def test_concurrent_calls_cannot_overshoot_the_run_budget() -> None:
    import time as _time
    from concurrent.futures import ThreadPoolExecutor

    class SlowChat(FixedChat):
        def complete(self, messages, **kw):
            _time.sleep(0.05)  # all threads are past the budget check before any records
            return super().complete(messages, **kw)

    from ragft.tokens import count_chat_tokens

    # The model reports exactly what the meter estimates: ~$0.008 a call.
    prompt = count_chat_tokens(MSGS, "gpt-4.1")
    inner = SlowChat("gpt-4.1", {"input_tokens": prompt, "output_tokens": 1000})
    meter = Meter(budget=Budget(total_usd=0.035))
    chat = meter.chat_model(inner)

    def call(_):
        try:
            chat.complete(MSGS, max_tokens=1000)
            return "ok"
        except BudgetExceededError as exc:
            assert exc.scope == "run"
            return "refused"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(call, range(8)))
    # 4 x $0.008 fit in $0.035; without reservations all 8 would pass the check at once.
    assert outcomes.count("ok") == 4 and inner.calls == 4
    assert meter.spent_usd <= 0.035


def test_async_calls_are_metered_too() -> None:
    import asyncio

    class AsyncChat(FixedChat):
        async def acomplete(self, messages, **kw):
            return super().complete(messages, **kw)

    meter = Meter()
    chat = meter.chat_model(AsyncChat("gpt-4o-mini", {"input_tokens": 10, "output_tokens": 2}))
    plain = meter.chat_model(FixedChat("gpt-4o-mini", {"input_tokens": 10, "output_tokens": 2}))

    async def main():
        with meter.collect(query="q") as scope:
            await chat.acomplete(MSGS)
            await plain.acomplete(MSGS)  # no async backend: runs in a thread, still metered
        return scope

    scope = asyncio.run(main())
    assert len(scope.records) == 2 and len(meter.records) == 2


def test_an_allowance_caps_the_calls_charged_to_it_and_only_those() -> None:
    inner = FixedChat("gpt-4.1", {"input_tokens": 1000, "output_tokens": 1000})
    meter = Meter()  # no run budget: the allowances alone limit
    chat = meter.chat_model(inner)
    alice, bob = Allowance("key-1", Budget(total_usd=0.02)), Allowance("key-2", Budget(total_usd=0.02))
    with meter.charging(alice):
        chat.complete(MSGS, max_tokens=1000)  # ~$0.01
        chat.complete(MSGS, max_tokens=1000)
        with pytest.raises(BudgetExceededError, match="key-1") as err:
            chat.complete(MSGS, max_tokens=1000)
    assert err.value.scope == "allowance" and inner.calls == 2
    assert alice.spent_usd == pytest.approx(meter.spent_usd)
    with meter.charging(bob):
        chat.complete(MSGS, max_tokens=1000)  # another key has its own allowance
    chat.complete(MSGS, max_tokens=1000)  # and calls charged to none are not limited by either
    assert bob.spent_usd == pytest.approx(0.01) and inner.calls == 4


def test_an_allowance_refusal_reserves_nothing_and_threads_keep_their_own() -> None:
    # Room for one ~$0.008 estimate in the run budget: a reservation leaked by the refused
    # call would leave none for the next one.
    meter = Meter(budget=Budget(total_usd=0.009))
    chat = meter.chat_model(FixedChat("gpt-4.1", {"input_tokens": 10, "output_tokens": 10}))
    tiny = Allowance("key-1", Budget(total_usd=0.001))
    seen: list[str] = []

    def charged() -> None:
        with meter.charging(tiny):
            try:
                chat.complete(MSGS, max_tokens=1000)
            except BudgetExceededError as exc:
                seen.append(exc.scope)

    thread = threading.Thread(target=charged)
    thread.start()
    thread.join()
    assert seen == ["allowance"]
    chat.complete(MSGS, max_tokens=1000)  # this thread charges no allowance: admitted
    assert meter.spent_usd < 0.001 and tiny.spent_usd == 0.0


def test_a_meter_that_keeps_no_records_still_collects_budgets_and_logs(tmp_path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    meter = Meter(ledger=ledger, budget=Budget(total_usd=0.015), keep_records=False)
    chat = meter.chat_model(FixedChat("gpt-4.1", {"input_tokens": 1000, "output_tokens": 1000}))
    with meter.collect(query="q1") as calls:
        chat.complete(MSGS, max_tokens=1000)
    assert meter.records == [] and len(calls.records) == 1 and len(ledger.read()) == 1
    assert meter.spent_usd == pytest.approx(0.01)
    with pytest.raises(BudgetExceededError):
        chat.complete(MSGS, max_tokens=1000)  # the run budget still counts what was spent
