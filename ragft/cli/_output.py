"""How answers and usage are shown on the terminal (one place, shared by every command)."""

from __future__ import annotations

import json
import textwrap

from ragft.answer import Answer
from ragft.metering.meter import RollUp

__all__ = ["format_answer", "format_usage", "answer_json"]


def format_usage(roll: RollUp, latency_s: float | None = None) -> str:
    """One line: calls, tokens by kind, cost (and how many calls were unpriced/estimated)."""
    parts = [f"{roll.calls} model call{'s' if roll.calls != 1 else ''}"]
    if roll.input_tokens or roll.output_tokens:
        cached = f" (cached {roll.cached_input_tokens:,})" if roll.cached_input_tokens else ""
        parts.append(f"in {roll.input_tokens:,} tok{cached}, out {roll.output_tokens:,} tok")
    if roll.embedding_tokens:
        parts.append(f"embed {roll.embedding_tokens:,} tok")
    if roll.training_tokens:
        parts.append(f"train {roll.training_tokens:,} tok")
    cost = f"${roll.cost_usd:.6f}"
    if roll.unpriced_calls:
        cost += f" + {roll.unpriced_calls} unpriced"
    parts.append(cost)
    if roll.estimated_calls:
        parts.append(f"{roll.estimated_calls} estimated by tiktoken")
    if latency_s is not None:
        parts.append(f"{latency_s:.2f} s")
    return " · ".join(parts)


def format_answer(answer: Answer, *, width: int = 100) -> str:
    """Answer text, numbered sources with snippets, route, confidence and a usage line."""
    lines = ["Answer:"]
    lines += textwrap.wrap(answer.text, width=width, initial_indent="  ", subsequent_indent="  ") or ["  "]
    if answer.sources:
        lines.append("Sources:")
        for i, s in enumerate(answer.sources, start=1):
            lines.append(f"  [{i}] {s.document}  (score {s.score:.3f}, chunk {s.chunk_id})")
            snippet = " ".join(s.snippet.split())
            lines += textwrap.wrap(f'"{snippet}"', width=width, initial_indent="      ", subsequent_indent="      ")
    lines.append(f"Route: {answer.route}")
    if answer.confidence is not None:
        lines.append(f"Confidence: {answer.confidence:.2f}")
    lines.append("Usage: " + format_usage(RollUp.of(answer.calls), answer.latency_s))
    return "\n".join(lines)


def answer_json(answer: Answer) -> str:
    """The answer as indented JSON (all calls included)."""
    return json.dumps(answer.to_dict(), indent=2)
