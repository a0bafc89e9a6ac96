"""The Prometheus exposition text."""

from __future__ import annotations

from ragft.serve.metrics import ServerMetrics


def test_counters_histogram_and_gauge_render_in_text_format() -> None:
    m = ServerMetrics(buckets=(0.1, 1.0))
    m.request_started()
    m.request_started()
    m.request_finished("rag", 200, 0.05)
    m.request_finished("rag", 200, 0.5)
    m.request_started()
    m.usage("rag", prompt=10, completion=3, embedding=7, cost_usd=0.25)
    m.reload("ok")
    text = m.render()
    lines = set(text.splitlines())
    assert 'ragft_requests_total{model="rag",status="200"} 2' in lines
    assert 'ragft_request_duration_seconds_bucket{model="rag",le="0.1"} 1' in lines
    assert 'ragft_request_duration_seconds_bucket{model="rag",le="1"} 2' in lines
    assert 'ragft_request_duration_seconds_bucket{model="rag",le="+Inf"} 2' in lines
    assert 'ragft_request_duration_seconds_sum{model="rag"} 0.55' in lines
    assert 'ragft_tokens_total{model="rag",kind="embedding"} 7' in lines
    assert 'ragft_cost_usd_total{model="rag"} 0.25' in lines
    assert 'ragft_index_reloads_total{result="ok"} 1' in lines
    assert "ragft_requests_in_flight 1" in lines
    assert "# TYPE ragft_request_duration_seconds histogram" in lines
    assert text.endswith("\n")


def test_label_values_are_escaped() -> None:
    m = ServerMetrics()
    m.request_started()
    m.request_finished('we"ird\\name', 404, 0.0)
    assert 'model="we\\"ird\\\\name"' in m.render()
