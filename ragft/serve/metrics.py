"""``GET /metrics``: counters and a latency histogram in the Prometheus text format (0.0.4).

Written here rather than with ``prometheus_client``: the server needs three counters, one
gauge and one histogram, the format is a few lines of text, and that library keeps a
process-global registry (two apps in one process — tests, an embedding application — would
share and collide on it). :class:`ServerMetrics` is per app and thread-safe.

Labels stay bounded: ``model`` is a served strategy name or ``"-"`` (a client cannot create
series by sending invented model names), ``status`` an HTTP status code.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["LATENCY_BUCKETS", "ServerMetrics"]

#: Upper bounds (seconds) of the request latency histogram.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels, extra: Iterable[tuple[str, str]] = ()) -> str:
    pairs = [*labels, *extra]
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class _Histogram:
    def __init__(self, buckets: Sequence[float]):
        self.buckets = tuple(buckets)
        self.counts = [0] * len(self.buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
        self.total += 1
        self.sum += value


class ServerMetrics:
    """What ``ragft serve`` counts, rendered by :meth:`render`."""

    def __init__(self, buckets: Sequence[float] = LATENCY_BUCKETS):
        self._lock = threading.Lock()
        self._buckets = tuple(buckets)
        self._requests: dict[Labels, int] = defaultdict(int)
        self._latency: dict[Labels, _Histogram] = {}
        self._tokens: dict[Labels, int] = defaultdict(int)
        self._cost: dict[Labels, float] = defaultdict(float)
        self._reloads: dict[Labels, int] = defaultdict(int)
        self._in_flight = 0

    def request_started(self) -> None:
        """One more request is being answered."""
        with self._lock:
            self._in_flight += 1

    def request_finished(self, model: str, status: int, seconds: float) -> None:
        """A request ended with ``status`` after ``seconds`` (queueing included)."""
        with self._lock:
            self._in_flight -= 1
            self._requests[(("model", model), ("status", str(status)))] += 1
            key: Labels = (("model", model),)
            if key not in self._latency:
                self._latency[key] = _Histogram(self._buckets)
            self._latency[key].observe(seconds)

    def usage(self, model: str, *, prompt: int, completion: int, embedding: int, cost_usd: float) -> None:
        """Tokens and cost of one answer's calls."""
        with self._lock:
            for kind, n in (("prompt", prompt), ("completion", completion), ("embedding", embedding)):
                self._tokens[(("model", model), ("kind", kind))] += n
            self._cost[(("model", model),)] += cost_usd

    def reload(self, result: str) -> None:
        """An index reload finished: ``ok`` or ``error``."""
        with self._lock:
            self._reloads[(("result", result),)] += 1

    @property
    def in_flight(self) -> int:
        """Requests being answered now."""
        with self._lock:
            return self._in_flight

    def render(self) -> str:
        """The exposition text."""
        with self._lock:
            histogram: list[str] = []
            for key, hist in sorted(self._latency.items()):
                name = "ragft_request_duration_seconds"
                for bound, count in zip(hist.buckets, hist.counts, strict=True):
                    histogram.append(f"{name}_bucket{_labels(key, [('le', _number(bound))])} {count}")
                histogram.append(f"{name}_bucket{_labels(key, [('le', '+Inf')])} {hist.total}")
                histogram.append(f"{name}_sum{_labels(key)} {_number(hist.sum)}")
                histogram.append(f"{name}_count{_labels(key)} {hist.total}")
            families = [
                _family("ragft_requests_total", "counter",
                        "Chat completion requests by model and HTTP status.", self._requests),
                _family("ragft_request_duration_seconds", "histogram",
                        "Chat completion latency, queueing included.", {}, histogram),
                _family("ragft_tokens_total", "counter",
                        "Tokens of every inner model call, by model and kind.", self._tokens),
                _family("ragft_cost_usd_total", "counter",
                        "Priced cost of the answers, by model (USD).", self._cost),
                _family("ragft_index_reloads_total", "counter",
                        "Index reloads after a new version was saved.", self._reloads),
                _family("ragft_requests_in_flight", "gauge",
                        "Requests being answered now.", {(): self._in_flight}),
            ]
        return "\n".join(line for family in families for line in family) + "\n"


def _family(
    name: str, kind: str, help_text: str, samples: dict[Labels, Any], lines: Sequence[str] = ()
) -> list[str]:
    """One metric family: its HELP and TYPE lines, then a line per labelled sample (or the
    pre-rendered ``lines`` of a histogram)."""
    out = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    out += [f"{name}{_labels(k)} {_number(v)}" for k, v in sorted(samples.items())]
    return out + list(lines)
