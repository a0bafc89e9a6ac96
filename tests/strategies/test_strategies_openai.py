"""Strategies drive the real OpenAI SDK (HTTP mocked by respx) with the right requests, and
their answers' cost is exactly the sum of the priced sub-calls."""

from __future__ import annotations

import json
import math

import httpx
import pytest

from ragft.metering.prices import PriceTable
from ragft.models.openai import OpenAIChatModel
from ragft.strategies import RAG, Cascade, FineTuned, LLMClassifier, Router


FT = "ft:gpt-4.1-mini-2025-04-14:northwind:support:9xYz"
PRICES = PriceTable.load()


def test_rag_sends_model_logprobs_and_fenced_context(api, client, payload, retriever, meter) -> None:
    route = api.post("/chat/completions").mock(
        return_value=httpx.Response(
            200,
            json=payload("gpt-4.1-mini-2025-04-14", "The meal per diem is $75 per day [1].",
                              prompt=812, completion=14, cached=512, logprobs=[-0.01] * 9),
        )
    )
    rag = RAG(retriever, OpenAIChatModel("gpt-4.1-mini", client=client), meter=meter)
    a = rag.answer("What is the meal per diem?")
    body = request_json(route)
    assert body["model"] == "gpt-4.1-mini" and body["logprobs"] is True
    system, user = body["messages"]
    assert system["role"] == "system" and "not instructions" in system["content"]
    assert user["content"].startswith("<context>\n<passage id=\"1\" source=\"policies/travel_expenses.md\">")
    assert user["content"].endswith("Question: What is the meal per diem?")
    assert a.text.startswith("The meal per diem is $75") and a.sources[0].document == "policies/travel_expenses.md"
    assert a.confidence == pytest.approx(math.exp(-0.01))
    gen = [c for c in a.calls if c.purpose == "generate"][0]
    assert gen.usage.input_tokens == 812 and gen.usage.cached_input_tokens == 512
    assert gen.cost_usd == pytest.approx((300 * 0.40 + 512 * 0.10 + 14 * 1.60) / 1e6)
    assert a.cost_usd == pytest.approx(sum(c.cost_usd for c in a.calls))


def test_cascade_escalates_on_low_logprob_confidence_and_bills_both(api, client, payload, retriever, meter) -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        body = request_json_from(request)
        if body["model"] == FT:
            # Unsure fine-tuned answer: mean logprob -0.9 -> confidence 0.41
            return httpx.Response(200, json=payload(FT, "Maybe $60 a day.", prompt=40, completion=6,
                                                         logprobs=[-0.9] * 4))
        return httpx.Response(200, json=payload("gpt-4.1-mini-2025-04-14", "It is $75 per day [1].",
                                                     prompt=700, completion=9, logprobs=[-0.02] * 5))

    route = api.post("/chat/completions").mock(side_effect=reply)
    first = FineTuned(OpenAIChatModel(FT, client=client), meter=meter)
    fallback = RAG(retriever, OpenAIChatModel("gpt-4.1-mini", client=client), meter=meter)
    a = Cascade(first, fallback, meter=meter, threshold=0.8).answer("What is the meal per diem?")
    assert [request_json(route, i)["model"] for i in range(2)] == [FT, "gpt-4.1-mini"]
    assert all(request_json(route, i)["logprobs"] is True for i in range(2))
    assert str(a.route).startswith("cascade: finetuned confidence 0.41 < 0.80 -> rag")
    assert a.text == "It is $75 per day [1]."
    ft_call, rag_call = [c for c in a.calls if c.purpose == "generate"]
    assert ft_call.cost_usd == pytest.approx((40 * 0.80 + 6 * 3.20) / 1e6)  # fine-tuned rates
    assert rag_call.cost_usd == pytest.approx((700 * 0.40 + 9 * 1.60) / 1e6)
    assert a.cost_usd == pytest.approx(ft_call.cost_usd + rag_call.cost_usd + sum(
        c.cost_usd for c in a.calls if c.purpose != "generate"))


def test_cascade_keeps_a_confident_fine_tuned_answer(api, client, payload, retriever, meter) -> None:
    route = api.post("/chat/completions").mock(
        return_value=httpx.Response(200, json=payload(FT, "Open a Hardware Request ticket.", prompt=40,
                                                           completion=7, logprobs=[-0.05] * 5)))
    first = FineTuned(OpenAIChatModel(FT, client=client), meter=meter)
    fallback = RAG(retriever, OpenAIChatModel("gpt-4.1-mini", client=client), meter=meter)
    a = Cascade(first, fallback, meter=meter, threshold=0.8).answer("How do I get a laptop?")
    assert route.call_count == 1 and str(a.route).endswith("-> finetuned") and not a.sources


def test_cascade_falls_back_on_a_5xx(api, client, payload, retriever, meter) -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        if request_json_from(request)["model"] == FT:
            return httpx.Response(503, json={"error": {"message": "overloaded", "type": "server_error"}})
        return httpx.Response(200, json=payload("gpt-4.1-mini", "It is $75 [1].", prompt=600, completion=5))

    api.post("/chat/completions").mock(side_effect=reply)
    first = FineTuned(OpenAIChatModel(FT, client=client), meter=meter)
    fallback = RAG(retriever, OpenAIChatModel("gpt-4.1-mini", client=client), meter=meter)
    a = Cascade(first, fallback, meter=meter, threshold=0.8).answer("What is the meal per diem?")
    assert "finetuned failed (ModelUnavailableError" in str(a.route) and a.text == "It is $75 [1]."


@pytest.mark.parametrize(
    ("reply", "expected_route"),
    [
        ("Category: procedural.", "router: procedural (0.95) -> finetuned"),
        ("banana", "router: unparsable label 'banana' -> default rag"),
    ],
)
def test_llm_router(api, client, payload, retriever, meter, reply, expected_route) -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        body = request_json_from(request)
        if body["model"] == "gpt-4o-mini":
            assert body["max_tokens"] == 8 and "procedural" in body["messages"][0]["content"]
            return httpx.Response(200, json=payload("gpt-4o-mini", reply, prompt=90, completion=3,
                                                         logprobs=[math.log(0.95)] * 3))
        if body["model"] == FT:
            return httpx.Response(200, json=payload(FT, "Open a ticket.", prompt=30, completion=4))
        return httpx.Response(200, json=payload("gpt-4.1-mini", "Answer [1].", prompt=500, completion=4))

    api.post("/chat/completions").mock(side_effect=respond)
    classifier = LLMClassifier(OpenAIChatModel("gpt-4o-mini", client=client), meter=meter)
    rag = RAG(retriever, OpenAIChatModel("gpt-4.1-mini", client=client), meter=meter)
    ft = FineTuned(OpenAIChatModel(FT, client=client), meter=meter)
    router = Router(classifier, {"factual": rag, "procedural": ft, "out_of_scope": "refuse"},
                    meter=meter, default_route="rag")
    a = router.answer("How do I get a new laptop?")
    assert str(a.route).startswith(expected_route)
    classify = [c for c in a.calls if c.purpose == "classify"]
    assert len(classify) == 1 and classify[0].usage.model == "gpt-4o-mini"
    assert a.cost_usd == pytest.approx(sum(c.cost_usd for c in a.calls))
    assert a.cost_usd == pytest.approx(sum(PRICES.cost(c.usage) for c in a.calls))


def request_json_from(request: httpx.Request) -> dict:
    return json.loads(request.content)


def request_json(route, i: int = -1) -> dict:
    return request_json_from(route.calls[i].request)


def sse(*events: dict) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"


def chunk(delta: dict, finish=None) -> dict:
    return {"id": "chatcmpl-S1", "object": "chat.completion.chunk", "created": 1764400000,
            "model": "gpt-4.1-mini-2025-04-14", "system_fingerprint": "fp_1",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}


def test_rag_streams_the_answer_and_bills_the_reported_usage(api, client, retriever, meter) -> None:
    usage_chunk = {**chunk({}), "choices": [], "usage": {
        "prompt_tokens": 640, "completion_tokens": 9, "total_tokens": 649,
        "prompt_tokens_details": {"cached_tokens": 128}, "completion_tokens_details": {"reasoning_tokens": 0}}}
    route = api.post("/chat/completions").mock(return_value=httpx.Response(
        200, headers={"content-type": "text/event-stream"},
        content=sse(chunk({"role": "assistant", "content": ""}), chunk({"content": "It is $75"}),
                    chunk({"content": " per day [1]."}), chunk({}, "stop"), usage_chunk)))
    rag = RAG(retriever, OpenAIChatModel("gpt-4.1-mini", client=client), meter=meter)
    stream = rag.stream("What is the meal per diem?")
    deltas = list(stream)
    body = request_json(route)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert "".join(deltas) == "It is $75 per day [1]." and len(deltas) >= 2
    a = stream.answer
    assert a is not None and a.text == "It is $75 per day [1]." and a.sources
    gen = [c for c in a.calls if c.purpose == "generate"][0]
    assert gen.usage.source == "reported" and gen.usage.input_tokens == 640 and gen.usage.cached_input_tokens == 128
    assert gen.cost_usd == pytest.approx((512 * 0.40 + 128 * 0.10 + 9 * 1.60) / 1e6)
