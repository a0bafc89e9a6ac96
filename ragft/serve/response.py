"""An :class:`~ragft.answer.Answer` in the OpenAI chat completion shapes.

``usage`` sums every inner model call of the answer (retrieval embeddings, rewrites,
classifications, the generation, a cascade's first attempt): chat input and embedding tokens
are ``prompt_tokens`` (the OpenAI API counts embedding input the same way), outputs are
``completion_tokens``, and the cached / reasoning subsets go in the ``*_details`` objects.
The ``ragft`` object carries what OpenAI's shape has no place for: sources with snippets, the
route, confidence, abstention, cost and the calls themselves.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from ragft.answer import Answer
from ragft.route import Route

__all__ = ["chunk", "completion", "ragft_object", "route_object", "usage_object"]


def usage_object(answer: Answer) -> dict[str, Any]:
    """OpenAI ``usage`` summed over every call behind ``answer``."""
    calls = [c.usage for c in answer.calls]
    prompt = sum(u.input_tokens + u.embedding_tokens for u in calls)
    completion_tokens = sum(u.output_tokens for u in calls)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": sum(u.cached_input_tokens for u in calls)},
        "completion_tokens_details": {"reasoning_tokens": sum(u.reasoning_tokens for u in calls)},
    }


def route_object(route: Route | str) -> dict[str, Any]:
    """The route as people read it (``text``) and as programs do: the deciding ``strategy``,
    its ``decision`` (a router's label, a cascade's ``kept`` / ``fallback``, ``abstain``),
    ``detail``, and the ``inner`` route of what ran next (same fields, or ``null``). A
    third-party strategy that gives its route as plain text gets ``text`` and ``detail``."""
    if not isinstance(route, Route):
        return {"text": str(route), "strategy": "", "decision": "", "detail": str(route), "inner": None}
    return {"text": str(route), **dataclasses.asdict(route)}


def ragft_object(answer: Answer, ignored_messages: int) -> dict[str, Any]:
    """What ragft adds to a completion: sources, route, confidence, money and calls."""
    return {
        "query": answer.query,
        "route": route_object(answer.route),
        "strategy": answer.strategy,
        "sources": [
            {
                "chunk_id": s.chunk_id,
                "document": s.document,
                "title": s.title,
                "score": s.score,
                "snippet": s.snippet,
            }
            for s in answer.sources
        ],
        "confidence": answer.confidence,
        "abstained": answer.abstained,
        "cost_usd": answer.cost_usd,
        "unpriced_calls": answer.unpriced_calls,
        "latency_s": answer.latency_s,
        "ignored_messages": ignored_messages,
        "calls": [
            {
                "model": c.usage.model,
                "kind": c.usage.kind,
                "purpose": c.purpose,
                "input_tokens": c.usage.input_tokens,
                "cached_input_tokens": c.usage.cached_input_tokens,
                "output_tokens": c.usage.output_tokens,
                "embedding_tokens": c.usage.embedding_tokens,
                "usage_source": c.usage.source,
                "cost_usd": c.cost_usd,
                "latency_s": c.latency_s,
            }
            for c in answer.calls
        ],
    }


def completion(request_id: str, model: str, answer: Answer, ignored_messages: int) -> dict[str, Any]:
    """A non-streamed ``chat.completion`` object."""
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage_object(answer),
        "ragft": ragft_object(answer, ignored_messages),
    }


def chunk(
    request_id: str,
    model: str,
    created: int,
    *,
    delta: dict[str, Any] | None = None,
    finish_reason: str | None = None,
    usage: dict[str, Any] | None = None,
    with_usage_field: bool = False,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``chat.completion.chunk``. ``delta=None`` with ``usage`` is the final usage chunk
    (empty ``choices``), as OpenAI sends it when ``stream_options.include_usage`` is set;
    then every other chunk carries ``"usage": null`` (``with_usage_field``)."""
    body: dict[str, Any] = {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    if with_usage_field or usage is not None:
        body["usage"] = usage
    if extra:
        body.update(extra)
    return body
