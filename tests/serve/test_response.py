"""Answers in the OpenAI shapes: usage sums, the route's fields, the chunk forms."""

from __future__ import annotations

from ragft.answer import Answer, CallRecord, Source, Usage
from ragft.route import Route
from ragft.serve.response import chunk, completion, route_object, usage_object


def _answer() -> Answer:
    route = Route("cascade", "fallback", "finetuned confidence 0.41 < 0.80 -> rag",
                  inner=Route("rag", detail="5 passages from 2 documents -> gpt-4.1-mini"))
    calls = (
        CallRecord(Usage(model="text-embedding-3-small", kind="embedding", embedding_tokens=9), 0.0, 0.01),
        CallRecord(Usage(model="ft:gpt-4.1-mini:o:s:1", input_tokens=50, output_tokens=5), 0.001, 0.2),
        CallRecord(Usage(model="gpt-4.1-mini", input_tokens=700, cached_input_tokens=512, output_tokens=40,
                         reasoning_tokens=10), 0.002, 0.5),
    )
    return Answer(text="$75 [1]", query="per diem?", route=route, calls=calls, strategy="cascade",
                  sources=(Source("c1", "policies/travel.md", 0.9, "The meal per diem is $75."),))


def test_usage_sums_every_inner_call() -> None:
    usage = usage_object(_answer())
    assert usage["prompt_tokens"] == 9 + 50 + 700 and usage["completion_tokens"] == 45
    assert usage["total_tokens"] == 804
    assert usage["prompt_tokens_details"] == {"cached_tokens": 512}
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 10}


def test_the_route_is_given_as_text_and_fields() -> None:
    route = route_object(_answer().route)
    assert route["text"] == ("cascade: finetuned confidence 0.41 < 0.80 -> rag | "
                             "rag: 5 passages from 2 documents -> gpt-4.1-mini")
    assert (route["strategy"], route["decision"]) == ("cascade", "fallback")
    assert route["inner"]["strategy"] == "rag" and route["inner"]["inner"] is None
    # A third-party strategy that still gives plain text.
    assert route_object("mine: did it") == {"text": "mine: did it", "strategy": "", "decision": "",
                                            "detail": "mine: did it", "inner": None}


def test_completion_and_chunks() -> None:
    body = completion("chatcmpl-1", "cascade", _answer(), ignored_messages=2)
    assert body["choices"][0]["message"]["content"] == "$75 [1]"
    assert body["ragft"]["cost_usd"] == 0.003 and body["ragft"]["ignored_messages"] == 2
    assert body["ragft"]["sources"][0]["snippet"] == "The meal per diem is $75."
    assert len(body["ragft"]["calls"]) == 3
    final = chunk("chatcmpl-1", "cascade", 1, usage={"total_tokens": 1})
    assert final["choices"] == [] and final["usage"] == {"total_tokens": 1}
    delta = chunk("chatcmpl-1", "cascade", 1, delta={"content": "x"}, with_usage_field=True)
    assert delta["usage"] is None and delta["choices"][0]["delta"] == {"content": "x"}
    assert "usage" not in chunk("chatcmpl-1", "cascade", 1, delta={"content": "x"})
