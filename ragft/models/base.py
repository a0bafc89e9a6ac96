"""The seams between ragft and any model: :class:`ChatModel` and :class:`Embedder`.

Backends (OpenAI SDK, the offline local backend, fine-tuned local models) implement these
protocols and report real token usage on every result. Nothing here knows about metering:
:mod:`ragft.metering.meter` wraps any model to record its calls.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, Self, runtime_checkable

import numpy as np

from ragft.answer import Usage

__all__ = [
    "ChatModel",
    "ChatStream",
    "Completion",
    "Embedder",
    "Embeddings",
    "EmbedKind",
    "GeneratedStream",
    "Message",
    "StreamingChatModel",
    "SupportsClose",
    "confidence_from_logprobs",
    "follows_prompts",
    "texts_per_call",
]

#: An OpenAI-style chat message: ``{"role": "system"|"user"|"assistant", "content": "..."}``.
Message = Mapping[str, str]
EmbedKind = Literal["query", "document"]


def confidence_from_logprobs(logprobs: Sequence[float]) -> float | None:
    """Mean per-token probability of the generated answer, ``exp(mean(logprob))``.

    The geometric mean is length-neutral: a long fluent answer is not penalised for its
    length the way the joint probability would be. Returns ``None`` for an empty sequence.
    """
    if not logprobs:
        return None
    return float(math.exp(sum(logprobs) / len(logprobs)))


@dataclass(frozen=True, slots=True)
class Completion:
    """The result of one chat call.

    ``logprobs`` holds the sampled tokens' log-probabilities when they were requested and the
    backend returns them. ``score`` is a backend's own confidence in ``[0, 1]`` (the local
    models report one); :attr:`confidence` prefers it and otherwise derives one from logprobs.
    """

    text: str
    usage: Usage
    model: str
    finish_reason: str = "stop"
    logprobs: tuple[float, ...] | None = None
    score: float | None = None
    #: Chunk/document ids the backend itself cited, e.g. the local reader's chosen passages.
    citations: tuple[str, ...] = ()

    @property
    def confidence(self) -> float | None:
        """The backend's score, else ``exp(mean logprob)``, else ``None`` when unknown."""
        if self.score is not None:
            return self.score
        if self.logprobs:
            return confidence_from_logprobs(self.logprobs)
        return None


@runtime_checkable
class ChatModel(Protocol):
    """Anything that turns chat messages into a :class:`Completion` with usage."""

    @property
    def name(self) -> str:
        """The model id used for pricing and logs (e.g. ``gpt-4.1-mini``, ``local/reader``)."""
        ...

    def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float = 0.0,
        logprobs: bool = False,
    ) -> Completion:
        """Generate one reply to ``messages``."""
        ...


class ChatStream(Protocol):
    """An iterator of text deltas; ``completion`` is set once the stream is exhausted."""

    completion: Completion | None

    def __iter__(self) -> Iterator[str]:
        """Yield text deltas as they arrive."""
        ...


class GeneratedStream:
    """A :class:`ChatStream` produced by one generator, :meth:`_run`, which yields the deltas
    and sets :attr:`completion` when it finishes. Iterate once (a second iteration yields
    nothing). Use as a context manager, or call :meth:`close`, to stop early and release what
    the stream holds."""

    completion: Completion | None

    def __init__(self) -> None:
        self.completion = None
        self._iterator = self._run()

    def _run(self) -> Generator[str, None, None]:
        """Yield the deltas; set :attr:`completion` at the end."""
        raise NotImplementedError
        yield  # pragma: no cover  (makes this a generator function)

    def _release(self) -> None:
        """Release what the stream holds, after its generator is closed (nothing by default)."""

    def __iter__(self) -> Iterator[str]:
        """Yield text deltas as they arrive."""
        return self._iterator

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop reading and release the stream; ``completion`` stays ``None`` if unfinished."""
        self._iterator.close()
        self._release()


@runtime_checkable
class StreamingChatModel(ChatModel, Protocol):
    """A chat model that can also stream its reply."""

    def stream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float = 0.0,
    ) -> ChatStream:
        """Stream one reply; usage is on ``stream.completion`` after iteration."""
        ...


def follows_prompts(model: ChatModel) -> bool:
    """Whether ``model`` does what its prompt asks. Models that answer one fixed way whatever
    the prompt (the offline extractive reader, the local fine-tuned memories and classifiers)
    declare ``follows_prompts = False``: a feature that sends its own scoring or labelling
    prompt (an LLM reranker or classifier) cannot use them. Any other model is assumed to."""
    return bool(getattr(model, "follows_prompts", True))


def texts_per_call(embedder: object, default: int) -> int:
    """How many texts ``embedder`` wants per :meth:`Embedder.embed` call (``default`` if it
    does not say). An embedder that sends concurrent requests (OpenAI's) declares
    ``texts_per_call`` to get slices big enough to keep them all busy. Wrappers (metered,
    cached) expose what they wrap as ``.inner`` and declare nothing, so the chain is followed
    to the first object that answers."""
    obj: object | None = embedder
    seen: set[int] = set()
    while obj is not None and id(obj) not in seen:
        seen.add(id(obj))
        value = getattr(obj, "texts_per_call", None)
        if value is not None:
            return int(value)
        obj = getattr(obj, "inner", None)
    return default


@runtime_checkable
class SupportsClose(Protocol):
    """A model holding a resource (a server process, a connection) to release when done."""

    def close(self) -> None:
        """Release the resource; calling it twice is harmless."""
        ...


@dataclass(frozen=True, slots=True)
class Embeddings:
    """Vectors for a batch of texts (rows in input order, float32) and the call's usage.

    ``truncated`` lists the rows whose text was longer than the model's input window
    (``window`` tokens) and was cut before embedding, so callers can say so.
    """

    vectors: np.ndarray
    usage: Usage
    truncated: tuple[int, ...] = ()
    window: int | None = None

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2:
            raise ValueError(f"Embeddings.vectors must be 2-D, got shape {self.vectors.shape}")


@runtime_checkable
class Embedder(Protocol):
    """Anything that maps texts to fixed-size vectors, reporting the tokens it embedded."""

    @property
    def name(self) -> str:
        """The model id used for pricing, caching and index compatibility checks."""
        ...

    @property
    def dimension(self) -> int:
        """Length of every vector this embedder returns."""
        ...

    def embed(self, texts: Sequence[str], *, kind: EmbedKind = "document") -> Embeddings:
        """Embed ``texts``; ``kind`` lets asymmetric models prefix queries differently."""
        ...
