"""The strategy base: the public draft() composites call, streams built from their generator,
and strategies that own (and close) the parts from_config built for them."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from ragft.answer import Usage
from ragft.components import Components, build_meter
from ragft.config import load_config
from ragft.metering.meter import Meter
from ragft.models.base import Completion, Message
from ragft.models.registry import ModelEnvironment, register_chat_model
from ragft.route import Route
from ragft.strategies import (
    RAG,
    AnswerStream,
    BaseChat,
    Cascade,
    Draft,
    Router,
    RulesClassifier,
    Strategy,
    build_strategy,
    from_config,
)

PREFIX = "test-owned:"
BUILT: list[OwnedChat] = []


class OwnedChat:
    """A chat model holding a resource; records its close() calls."""

    def __init__(self, name: str):
        self.name = name
        self.closed = 0

    def complete(self, messages: Sequence[Message], *, max_tokens=None, temperature=0.0, logprobs=False):
        return Completion("an open answer", Usage(model=self.name, input_tokens=4, output_tokens=3), self.name)

    def close(self) -> None:
        self.closed += 1


def _owned(model_id: str, env: ModelEnvironment) -> OwnedChat:
    BUILT.append(OwnedChat(model_id))
    return BUILT[-1]


register_chat_model(PREFIX, _owned, replace=True)


class Sure(Strategy):
    """Answers every query with full confidence, one metered call."""

    kind = "sure"

    def __init__(self, model, *, meter: Meter):
        super().__init__(meter=meter)
        self.model = meter.chat_model(model).with_purpose("generate")

    def _draft(self, query: str) -> Draft:
        text = self.model.complete([{"role": "user", "content": query}]).text
        return Draft(text=text, route=Route(self.kind, detail="always"), confidence=1.0)


def test_draft_is_public_and_runs_in_the_callers_scope(meter) -> None:
    sure = Sure(OwnedChat(f"{PREFIX}x"), meter=Meter(prices=meter.prices.with_overrides(
        {}, free_prefixes=[PREFIX])))
    with sure.meter.collect(strategy="outer", query="q") as scope:
        draft = sure.draft("hello")
    assert draft.text == "an open answer" and draft.confidence == 1.0
    assert [r.tags["strategy"] for r in scope.records] == ["outer"]  # no scope of its own


def test_composites_hand_the_query_to_their_parts_through_draft(retriever, reader) -> None:
    meter = Meter()
    meter.prices = meter.prices.with_overrides({}, free_prefixes=[PREFIX])
    sure = Sure(OwnedChat(f"{PREFIX}x"), meter=meter)
    rag = RAG(retriever, reader, meter=meter)
    cascade = Cascade(sure, rag, meter=meter, threshold=0.5)
    answer = cascade.answer("What is the meal per diem?")
    assert answer.text == "an open answer" and str(answer.route).startswith("cascade: sure confidence 1.00")
    assert [c.tags["strategy"] for c in answer.calls] == ["cascade"]
    router = Router(RulesClassifier(), {"factual": sure, "procedural": rag, "creative": sure,
                                        "out_of_scope": "refuse"}, meter=meter, default_route="sure")
    routed = router.answer("What is the meal per diem?")
    assert routed.route.inner is not None and routed.route.inner.strategy in ("sure", "rag")
    assert all(c.tags["strategy"] == "router" for c in routed.calls)


def test_an_answer_stream_returns_its_answer_when_exhausted_only(retriever, reader, meter) -> None:
    rag = RAG(retriever, reader, meter=meter)
    stream = rag.stream("What is the meal per diem?")
    assert isinstance(stream, AnswerStream) and stream.answer is None
    text = "".join(stream)
    assert stream.answer is not None and stream.answer.text == text and stream.answer.calls
    assert list(stream) == [] and stream.answer.text == text  # iterated once; answer kept
    partial = rag.stream("What is the meal per diem?")
    next(iter(partial))
    assert partial.answer is None  # stopped early: no answer


def test_a_strategy_without_token_streaming_yields_its_text_once(meter) -> None:
    meter.prices = meter.prices.with_overrides({}, free_prefixes=[PREFIX])
    stream = BaseChat(OwnedChat(f"{PREFIX}b"), meter=meter).stream("Write a haiku")
    assert list(stream) == ["an open answer"]
    assert stream.answer is not None and stream.answer.strategy == "base" and len(stream.answer.calls) == 1


@pytest.fixture
def cfg(tmp_path):
    return load_config(env={}, overrides={"home": str(tmp_path), "models.chat": f"{PREFIX}chat",
                                          "prices.free_prefixes": [PREFIX]})


def test_from_config_strategies_own_and_close_their_parts(cfg) -> None:
    BUILT.clear()
    with from_config(cfg, strategy="base") as strategy:
        assert strategy.answer("Write a haiku").text == "an open answer"
        (model,) = BUILT
        assert model.closed == 0
    assert model.closed == 1
    strategy.close()  # harmless twice
    assert model.closed == 1


def test_a_strategy_given_its_parts_leaves_them_to_the_caller(cfg) -> None:
    BUILT.clear()
    meter = build_meter(cfg, ledger=False)
    with Components(cfg, meter) as parts:
        strategy = build_strategy(cfg, strategy="base", meter=meter, parts=parts)
        strategy.answer("Write a haiku")
        strategy.close()
        assert BUILT[0].closed == 0  # still the caller's
    assert BUILT[0].closed == 1


def test_a_strategy_that_fails_to_build_releases_what_it_built(cfg) -> None:
    from ragft.errors import ConfigError

    BUILT.clear()
    # The LLM classifier's chat model is built, then a route names no strategy. (Route targets
    # themselves are built lazily, on the first query that takes them.)
    failing = cfg.with_overrides(**{"strategy.router.classifier": "llm",
                                    "strategy.router.routes": {"factual": "nope"},
                                    "strategy.router.default_route": "refuse"})
    with pytest.raises(ConfigError, match="router route 'factual' -> 'nope': unknown strategy"):
        from_config(failing, strategy="router")
    assert [m.closed for m in BUILT] == [1]
