"""Price table arithmetic, checked against hand-computed figures."""

from __future__ import annotations

import datetime as dt
import json
import warnings

import pytest

from ragft.answer import Usage
from ragft.errors import ConfigError, UnpricedModelError
from ragft.metering.prices import PriceTable, RetiredModelWarning, resolve_base_model


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.load()


def test_cached_tokens_are_a_subset_billed_at_the_cached_rate(table: PriceTable) -> None:
    # gpt-4.1-mini: 0.40 in, 0.10 cached, 1.60 out per 1M.
    u = Usage(model="gpt-4.1-mini", input_tokens=10_000, cached_input_tokens=4_000, output_tokens=500)
    expected = (6_000 * 0.40 + 4_000 * 0.10 + 500 * 1.60) / 1e6  # = 0.0036
    assert table.cost(u) == pytest.approx(expected)
    assert expected == pytest.approx(0.0036)


def test_reasoning_tokens_are_not_billed_twice(table: PriceTable) -> None:
    a = Usage(model="gpt-4.1", input_tokens=100, output_tokens=1_000)
    b = Usage(model="gpt-4.1", input_tokens=100, output_tokens=1_000, reasoning_tokens=600)
    assert table.cost(a) == table.cost(b) == pytest.approx((100 * 2.0 + 1_000 * 8.0) / 1e6)


def test_fine_tuned_ids_use_the_base_models_fine_tuned_rates(table: PriceTable) -> None:
    model = "ft:gpt-4.1-mini-2025-04-14:acme:support:9xYz"
    assert resolve_base_model(model) == ("gpt-4.1-mini", True)
    u = Usage(model=model, input_tokens=1_000_000, cached_input_tokens=0, output_tokens=1_000_000)
    assert table.cost(u) == pytest.approx(0.80 + 3.20)


def test_snapshot_ids_price_as_their_base(table: PriceTable) -> None:
    u = Usage(model="gpt-4o-mini-2024-07-18", input_tokens=1_000_000)
    assert table.cost(u) == pytest.approx(0.15)


def test_embedding_and_training_prices(table: PriceTable) -> None:
    # The seed's example: 10M tokens with text-embedding-3-small = $0.20.
    emb = Usage(model="text-embedding-3-small", kind="embedding", embedding_tokens=10_000_000)
    assert table.cost(emb) == pytest.approx(0.20)
    train = Usage(model="gpt-4o-mini", kind="training", training_tokens=2_000_000)
    assert table.cost(train) == pytest.approx(6.00)


def test_batch_calls_are_half_price(table: PriceTable) -> None:
    u = Usage(model="gpt-4.1-nano", input_tokens=1_000_000, output_tokens=1_000_000, batch=True)
    assert table.cost(u) == pytest.approx((0.10 + 0.40) / 2)


def test_local_models_are_free_but_counted(table: PriceTable) -> None:
    assert table.cost(Usage(model="local/extractive-reader", input_tokens=500)) == 0.0
    assert table.cost(Usage(model="local-ft:generator:support:job1", output_tokens=5)) == 0.0


def test_unknown_model_is_an_error_not_zero(table: PriceTable) -> None:
    with pytest.raises(UnpricedModelError, match="no price for model 'mystery-7b'"):
        table.cost(Usage(model="mystery-7b", input_tokens=1))


def test_explicitly_unpriced_model_costs_none(table: PriceTable) -> None:
    t = table.with_overrides(unpriced=["mystery-7b"])
    assert t.cost(Usage(model="mystery-7b", input_tokens=1)) is None


def test_overrides_add_models_and_validate(table: PriceTable) -> None:
    t = table.with_overrides({"my-model": {"input": 1.0, "output": 2.0}})
    assert t.cost(Usage(model="my-model", input_tokens=1_000_000, output_tokens=1_000_000)) == 3.0
    with pytest.raises(ConfigError, match="unknown keys"):
        table.with_overrides({"x": {"inptu": 1.0}})
    with pytest.raises(ConfigError, match=">= 0"):
        table.with_overrides({"x": {"input": -1}})


def test_model_without_fine_tuned_price_refuses_ft_id(table: PriceTable) -> None:
    with pytest.raises(UnpricedModelError, match="fine-tuned chat"):
        table.cost(Usage(model="ft:gpt-5-mini:acme::x", input_tokens=1))


def test_retirement_dates_and_warning(table: PriceTable) -> None:
    assert table.shutdown_date("gpt-4.1-nano") == dt.date(2026, 10, 23)
    assert table.shutdown_date("ft:gpt-4o-mini-2024-07-18:a::b") == dt.date(2027, 1, 14)
    t = table.with_overrides()
    with pytest.warns(RetiredModelWarning, match="shut down on 2026-10-23"):
        t.warn_if_retired("gpt-4.1-nano", today=dt.date(2026, 11, 29))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t.warn_if_retired("gpt-4.1-nano", today=dt.date(2026, 11, 29))  # warned once only
        t.warn_if_retired("gpt-4.1-mini", today=dt.date(2026, 11, 29))  # not yet retired


def test_custom_price_file(tmp_path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"models": {"m": {"input": 1, "output": 1}}, "unpriced": ["u"]}))
    t = PriceTable.load(path)
    assert t.cost(Usage(model="u", input_tokens=3)) is None
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        PriceTable.load(path)


def test_usage_rejects_impossible_values() -> None:
    with pytest.raises(ValueError, match="subset"):
        Usage(model="m", input_tokens=1, cached_input_tokens=2)
    with pytest.raises(ValueError, match=">= 0"):
        Usage(model="m", output_tokens=-1)


def test_self_hosted_compute_time_is_billed_only_at_a_configured_gpu_price(
        table: PriceTable) -> None:
    run = Usage(model="local/SmolLM2-135M-Instruct", kind="training", training_tokens=50_000,
                compute_seconds=1800.0)
    assert table.cost(run) == 0.0  # local, no GPU price: $0 (the tokens are still counted)
    rented = table.with_overrides(gpu_usd_per_hour=2.5)
    assert rented.cost(run) == pytest.approx(1.25)  # half an hour at $2.50/h
    assert rented.cost(Usage(model="lora:p1:ftjob-lora-1", input_tokens=10)) == 0.0
    assert rented.with_overrides().gpu_usd_per_hour == 2.5  # kept by later overrides
    with pytest.raises(ValueError, match="compute_seconds"):
        Usage(model="local/x", compute_seconds=-1.0)
