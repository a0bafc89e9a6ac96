"""The metered wrappers expose the protocols and nothing more: backend extras are reached through
``.inner``; a metered stream is a real :class:`~ragft.models.base.ChatStream`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from ragft.answer import Usage
from ragft.metering.meter import Meter, MeteredChatStream
from ragft.models.base import Completion, Message
from ragft.models.local import ExtractiveReader, HashingEmbedder

MSGS = [{"role": "user", "content": "Say hello"}]


class StreamingChat:
    """A chat model that streams two deltas and reports usage at the end; counts close()."""

    name = "gpt-4.1-mini"

    def __init__(self) -> None:
        self.closed = 0

    def complete(self, messages: Sequence[Message], *, max_tokens=None, temperature=0.0, logprobs=False):
        return Completion("Hello world", Usage(model=self.name, input_tokens=9, output_tokens=2), self.name)

    def stream(self, messages: Sequence[Message], *, max_tokens=None, temperature=0.0) -> Stream:
        return Stream(self)


class Stream:
    def __init__(self, model: StreamingChat) -> None:
        self.model = model
        self.completion: Completion | None = None

    def __iter__(self) -> Iterator[str]:
        yield "Hello"
        yield " world"
        self.completion = self.model.complete(MSGS)

    def close(self) -> None:
        self.model.closed += 1


def test_backend_attributes_are_reached_through_inner_only() -> None:
    meter = Meter()
    reader = ExtractiveReader(None, min_confidence=0.3)
    chat = meter.chat_model(reader)
    assert chat.inner is reader and chat.inner.min_confidence == 0.3
    assert not hasattr(chat, "min_confidence") and chat.name == reader.name
    inner = HashingEmbedder(32)
    inner.batch_size = 7  # type: ignore[attr-defined]  # a backend extra
    embedder = meter.embedder(inner)
    assert embedder.inner.batch_size == 7 and embedder.dimension == 32  # type: ignore[attr-defined]
    assert not hasattr(embedder, "batch_size")


def test_a_metered_stream_is_a_chat_stream_with_the_completion() -> None:
    meter = Meter()
    stream = meter.chat_model(StreamingChat()).stream(MSGS)
    assert isinstance(stream, MeteredChatStream) and stream.completion is None
    assert meter.records == []  # nothing is called before iteration starts
    assert "".join(stream) == "Hello world"
    assert stream.completion is not None and stream.completion.usage.output_tokens == 2
    assert [r.usage.source for r in meter.records] == ["reported"]
    assert list(stream) == []  # one iteration only; nothing billed twice
    assert len(meter.records) == 1


def test_closing_a_stream_early_bills_an_estimate_and_closes_the_backend_stream() -> None:
    meter = Meter()
    model = StreamingChat()
    with meter.chat_model(model).stream(MSGS) as stream:
        assert next(iter(stream)) == "Hello"
    assert model.closed == 1 and stream.completion is None
    (record,) = meter.records
    assert record.usage.source == "estimated" and record.usage.output_tokens >= 1


def test_a_model_that_cannot_stream_answers_in_one_piece() -> None:
    meter = Meter()
    stream = meter.chat_model(ExtractiveReader(None)).stream(
        [{"role": "user", "content": "<context>\n</context>\nQuestion: anything?"}])
    pieces = list(stream)
    assert len(pieces) == 1 and stream.completion is not None and pieces[0] == stream.completion.text
    assert len(meter.records) == 1


def test_a_stream_over_budget_is_refused_before_the_call() -> None:
    from ragft.errors import BudgetExceededError
    from ragft.metering.meter import Budget

    meter = Meter(budget=Budget(total_usd=1e-9))
    model = StreamingChat()
    stream = meter.chat_model(model).stream(MSGS, max_tokens=1000)
    with pytest.raises(BudgetExceededError):
        list(stream)
    assert meter.records == [] and model.closed == 0
