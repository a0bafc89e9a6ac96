"""The OpenAI SDK behind ragft's model protocols, for api.openai.com or any compatible server.

:class:`OpenAIChatModel` implements :class:`~ragft.models.base.ChatModel` and
:class:`~ragft.models.base.StreamingChatModel`; :class:`OpenAIEmbedder` implements
:class:`~ragft.models.base.Embedder`. Both take an already-built SDK client (see
:func:`make_client`), so nothing here reads the environment: ``ragft.config`` decides keys and
URLs. Every SDK failure leaves as a :class:`~ragft.errors.ModelError` subclass carrying the
model id and, where there was one, the HTTP status code (read by :mod:`ragft.models.openai_errors`,
which the fine-tuning backend shares).

Usage is taken from the response's ``usage`` field. Only when a response carries none (a
server that omits it, a stream whose final usage chunk never came) is it estimated with
tiktoken, and the :class:`~ragft.answer.Usage` then says ``source="estimated"``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Generator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, cast

import httpx
import numpy as np
import openai
from openai.types.chat import ChatCompletion

from ragft.answer import Usage
from ragft.errors import (
    AuthenticationError,
    ConfigError,
    ModelError,
    ModelResponseError,
)
from ragft.models.base import Completion, EmbedKind, Embeddings, GeneratedStream, Message
from ragft.models.openai_errors import MISSING_KEY_HINT, translate_error, translated_errors
from ragft.redact import register_secret

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_EMBEDDING_CONCURRENCY",
    "EMBEDDING_DIMENSIONS",
    "MAX_INPUTS_PER_REQUEST",
    "OpenAIChatModel",
    "OpenAIChatStream",
    "OpenAIEmbedder",
    "make_async_client",
    "make_client",
    "sdk_field",
    "translate_error",
]

#: Where requests go when no ``base_url`` is configured. Passed to the SDK explicitly so that
#: the SDK's own ``OPENAI_BASE_URL`` lookup never redirects traffic behind config's back.
DEFAULT_BASE_URL = "https://api.openai.com/v1"

#: Key sent to OpenAI-compatible local servers, which ignore it but the SDK insists on one.
PLACEHOLDER_API_KEY = "not-needed"

#: Native vector length of OpenAI's embedding models.
EMBEDDING_DIMENSIONS: Mapping[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
# Only the v3 models accept ``dimensions=`` (they are trained to be truncatable).
_SHORTENABLE = frozenset({"text-embedding-3-small", "text-embedding-3-large"})

#: The embeddings endpoint rejects requests with more inputs than this.
MAX_INPUTS_PER_REQUEST = 2048
#: The endpoint also caps the summed tokens of one request (300k at the time of writing).
DEFAULT_MAX_TOKENS_PER_REQUEST = 300_000
#: Requests one embed() call sends at once by default (``[backend] concurrency`` sets it).
DEFAULT_EMBEDDING_CONCURRENCY = 4

# OpenAI's reasoning models reject `max_tokens` (they want `max_completion_tokens`) and any
# temperature other than the default.
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


# --------------------------------------------------------------------------- clients


def make_client(
    *,
    api_key: str | None,
    base_url: str | None,
    timeout: float = 60.0,
    max_retries: int = 2,
    http_client: httpx.Client | None = None,
    connect_timeout: float = 5.0,
) -> openai.OpenAI:
    """Build a synchronous SDK client from explicit settings (no environment lookups).

    With ``base_url`` and no key, a placeholder key is used: OpenAI-compatible local servers
    ignore it. Without either, :class:`~ragft.errors.AuthenticationError` says where to put one.
    ``timeout`` bounds reading a response (long generations need it); ``connect_timeout``
    bounds reaching the server, so an unreachable host fails in seconds, not minutes of
    read-timeout retries.
    """
    return openai.OpenAI(**_client_kwargs(api_key, base_url, timeout, max_retries,
                                          http_client, connect_timeout))


def make_async_client(
    *,
    api_key: str | None,
    base_url: str | None,
    timeout: float = 60.0,
    max_retries: int = 2,
    http_client: httpx.AsyncClient | None = None,
    connect_timeout: float = 5.0,
) -> openai.AsyncOpenAI:
    """The :class:`openai.AsyncOpenAI` twin of :func:`make_client`, same rules."""
    return openai.AsyncOpenAI(**_client_kwargs(api_key, base_url, timeout, max_retries,
                                               http_client, connect_timeout))


def _client_kwargs(
    api_key: str | None,
    base_url: str | None,
    timeout: float,
    max_retries: int,
    http_client: httpx.Client | httpx.AsyncClient | None,
    connect_timeout: float,
) -> dict[str, Any]:
    # One set of client settings for the sync and async SDK clients.
    key, url = _client_settings(api_key, base_url)
    return {
        "api_key": key,
        "base_url": url,
        "timeout": openai.Timeout(timeout, connect=min(connect_timeout, timeout)),
        "max_retries": max_retries,
        # The SDK annotates httpx2 clients but accepts classic httpx ones at runtime (and
        # respx can only intercept those), so the annotation mismatch is deliberate.
        "http_client": cast(Any, http_client),
    }


def _client_settings(api_key: str | None, base_url: str | None) -> tuple[str, str]:
    register_secret(api_key)  # a key given here directly (not through config) is masked too
    if api_key:
        return api_key, base_url or DEFAULT_BASE_URL
    if base_url:
        return PLACEHOLDER_API_KEY, base_url
    raise AuthenticationError(f"no OpenAI API key: {MISSING_KEY_HINT}")


# --------------------------------------------------------------------------- payload reading


def sdk_field(obj: Any, name: str, default: Any = None) -> Any:
    """``obj.name`` of an SDK response object, ``obj[name]`` of a dict, else ``default``.

    The SDK builds responses without validation, so a nested object may still be a dict (or
    anything else the server sent); ``None`` reads as ``default`` too.
    """
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _count(obj: Any, name: str, model: str) -> int | None:
    value = sdk_field(obj, name)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ModelResponseError(
            f"{model}: usage.{name} is not a token count: {value!r}", model=model
        )
    return value


def _reported_usage(raw: Any, model: str) -> Usage | None:
    """Usage from an OpenAI ``usage`` object, or ``None`` when the server reported none."""
    if raw is None:
        return None
    prompt = _count(raw, "prompt_tokens", model)
    completion = _count(raw, "completion_tokens", model)
    if prompt is None or completion is None:
        return None
    cached = _count(sdk_field(raw, "prompt_tokens_details"), "cached_tokens", model) or 0
    reasoning = _count(sdk_field(raw, "completion_tokens_details"), "reasoning_tokens", model) or 0
    try:
        return Usage(
            model=model,
            kind="chat",
            input_tokens=prompt,
            cached_input_tokens=cached,
            output_tokens=completion,
            reasoning_tokens=reasoning,
            source="reported",
        )
    except ValueError as exc:  # e.g. cached > prompt: the server's numbers are inconsistent
        raise ModelResponseError(
            f"{model}: inconsistent usage in response: {exc}", model=model
        ) from exc


def _estimated_usage(messages: Sequence[Message], text: str, model: str) -> Usage:
    # Imported here so this module loads even where metering is unavailable; only responses
    # without usage need it.
    from ragft.tokens import estimate_chat_usage

    return estimate_chat_usage(model, messages, text)


def _token_logprobs(choice: Any, model: str) -> tuple[float, ...] | None:
    content = sdk_field(sdk_field(choice, "logprobs"), "content")
    if content is None:
        return None
    if not isinstance(content, list):
        raise ModelResponseError(f"{model}: logprobs.content is not a list", model=model)
    values: list[float] = []
    for item in content:
        lp = sdk_field(item, "logprob")
        if isinstance(lp, bool) or not isinstance(lp, int | float) or math.isnan(lp):
            raise ModelResponseError(f"{model}: token logprob is not a number: {lp!r}", model=model)
        values.append(float(lp))
    return tuple(values)


def _first_choice(response: Any, model: str) -> Any:
    if not isinstance(response, ChatCompletion):
        raise ModelResponseError(
            f"{model}: expected a chat.completion object, got {type(response).__name__}: "
            f"{str(response)[:200]!r}",
            model=model,
        )
    choices = response.choices
    if not isinstance(choices, list) or not choices:
        raise ModelResponseError(f"{model}: response has no choices", model=model)
    return choices[0]


def _message_text(choice: Any, model: str) -> str:
    message = sdk_field(choice, "message")
    if message is None:
        raise ModelResponseError(f"{model}: response choice has no message", model=model)
    content = sdk_field(message, "content")
    if content is None:
        refusal = sdk_field(message, "refusal")
        if refusal:
            raise ModelResponseError(f"{model}: the model refused: {refusal}", model=model)
        raise ModelResponseError(
            f"{model}: response message has no content (tool call or empty reply)", model=model
        )
    if not isinstance(content, str):
        raise ModelResponseError(f"{model}: message content is not text: {content!r}", model=model)
    return content


# --------------------------------------------------------------------------- chat


def _is_reasoning_model(model: str) -> bool:
    base = model.split(":")[1] if model.startswith("ft:") and ":" in model[3:] else model
    return base.startswith(_REASONING_PREFIXES)


class OpenAIChatModel:
    """A chat model served through the OpenAI SDK (OpenAI itself or a compatible server).

    ``name`` is the model id exactly as given; it is what usage records carry for pricing,
    even when the API answers with a dated snapshot id.
    """

    def __init__(
        self,
        model: str,
        *,
        client: openai.OpenAI,
        async_client: openai.AsyncOpenAI | None = None,
        default_max_tokens: int | None = None,
    ) -> None:
        if not model:
            raise ConfigError("OpenAIChatModel needs a model id, e.g. 'gpt-4.1-mini'")
        if default_max_tokens is not None and default_max_tokens < 1:
            raise ConfigError(f"default_max_tokens must be >= 1, got {default_max_tokens}")
        self._model = model
        self._client = client
        self._async_client = async_client
        self._default_max_tokens = default_max_tokens

    @property
    def name(self) -> str:
        """The model id as given (used for pricing and logs)."""
        return self._model

    def __repr__(self) -> str:
        return f"OpenAIChatModel({self._model!r})"

    def _params(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None,
        temperature: float,
        logprobs: bool,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self._model,
            "messages": [dict(m) for m in messages],
        }
        limit = max_tokens if max_tokens is not None else self._default_max_tokens
        if _is_reasoning_model(self._model):
            # These models refuse `max_tokens` and non-default temperatures outright; sending
            # the protocol's default 0.0 would make every call a 400.
            if limit is not None:
                params["max_completion_tokens"] = limit
        else:
            params["temperature"] = temperature
            if limit is not None:
                params["max_tokens"] = limit
        if logprobs:
            params["logprobs"] = True
        return params

    def _completion(self, response: Any, messages: Sequence[Message], logprobs: bool) -> Completion:
        choice = _first_choice(response, self._model)
        text = _message_text(choice, self._model)
        usage = _reported_usage(response.usage, self._model)
        if usage is None:
            usage = _estimated_usage(messages, text, self._model)
        finish = sdk_field(choice, "finish_reason")
        return Completion(
            text=text,
            usage=usage,
            model=self._model,
            finish_reason=finish if isinstance(finish, str) and finish else "unknown",
            logprobs=_token_logprobs(choice, self._model) if logprobs else None,
        )

    def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float = 0.0,
        logprobs: bool = False,
    ) -> Completion:
        """Generate one reply; usage comes from the response (estimated only if it has none)."""
        params = self._params(
            messages, max_tokens=max_tokens, temperature=temperature, logprobs=logprobs
        )
        with translated_errors(self._model):
            response = self._client.chat.completions.create(**params)
        return self._completion(response, messages, logprobs)

    async def acomplete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float = 0.0,
        logprobs: bool = False,
    ) -> Completion:
        """Async :meth:`complete` over the ``async_client`` given at construction."""
        if self._async_client is None:
            raise ConfigError(
                f"{self!r} has no async client: construct it with "
                "async_client=make_async_client(...) to use acomplete()"
            )
        params = self._params(
            messages, max_tokens=max_tokens, temperature=temperature, logprobs=logprobs
        )
        with translated_errors(self._model):
            response = await self._async_client.chat.completions.create(**params)
        return self._completion(response, messages, logprobs)

    def stream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float = 0.0,
    ) -> OpenAIChatStream:
        """Start streaming a reply; iterate for text deltas, then read ``.completion``.

        The request asks for ``stream_options.include_usage`` so the final chunk carries the
        real usage. HTTP errors surface here; errors mid-stream surface while iterating.
        """
        params = self._params(
            messages, max_tokens=max_tokens, temperature=temperature, logprobs=False
        )
        params["stream"] = True
        params["stream_options"] = {"include_usage": True}
        with translated_errors(self._model):
            chunks = self._client.chat.completions.create(**params)
        return OpenAIChatStream(chunks, model=self._model, messages=messages)


class OpenAIChatStream(GeneratedStream):
    """Text deltas of one streamed reply (a :class:`~ragft.models.base.ChatStream`).

    Iterate once; afterwards :attr:`completion` holds the full text and the usage the final
    chunk reported, or a tiktoken estimate marked ``estimated`` when that chunk never came.
    Use as a context manager (or call :meth:`close`) to release the connection if you stop
    reading early.
    """

    def __init__(self, chunks: Any, *, model: str, messages: Sequence[Message]) -> None:
        self._chunks = chunks
        self._model = model
        self._messages = list(messages)
        super().__init__()

    def _release(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()

    def _run(self) -> Generator[str, None, None]:
        parts: list[str] = []
        raw_usage: Any = None
        finish: str | None = None
        try:
            with translated_errors(self._model):
                for chunk in self._chunks:
                    usage = sdk_field(chunk, "usage")
                    if usage is not None:
                        raw_usage = usage
                    choices = sdk_field(chunk, "choices") or []
                    if not isinstance(choices, list):
                        raise ModelResponseError(
                            f"{self._model}: stream chunk choices is not a list", model=self._model
                        )
                    for choice in choices:
                        if (sdk_field(choice, "index") or 0) != 0:
                            continue  # we never ask for n > 1
                        text = sdk_field(sdk_field(choice, "delta"), "content")
                        if isinstance(text, str) and text:
                            parts.append(text)
                            yield text
                        reason = sdk_field(choice, "finish_reason")
                        if isinstance(reason, str) and reason:
                            finish = reason
        finally:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        text = "".join(parts)
        usage_value = _reported_usage(raw_usage, self._model) or _estimated_usage(
            self._messages, text, self._model
        )
        self.completion = Completion(
            text=text, usage=usage_value, model=self._model, finish_reason=finish or "unknown"
        )


# --------------------------------------------------------------------------- embeddings


class OpenAIEmbedder:
    """Embeddings through the OpenAI SDK, batched within the endpoint's limits.

    Vectors come back float32, in input order, L2-normalised (so inner product is cosine, even
    for compatible servers that do not normalise). Over-long inputs raise rather than being
    truncated: a silently shortened chunk would be indexed under text it does not represent.

    One :meth:`embed` call split into several requests sends up to ``concurrency`` of them at
    once (threads sharing the SDK client, which is thread-safe). Each request is retried on its
    own by the SDK (``max_retries`` of the client, backing off on 429 as the server's
    ``Retry-After`` asks), so a rate-limited batch waits without resending the others. Once a
    batch has failed for good no further batch is started; the ones in flight finish, and the
    error raised (the first failed batch's, in input order) carries the usage of every batch
    that succeeded in ``partial_usage``: those were billed.
    """

    def __init__(
        self,
        model: str,
        *,
        client: openai.OpenAI,
        dimension: int | None = None,
        batch_size: int = 256,
        max_tokens_per_input: int = 8191,
        max_tokens_per_request: int = DEFAULT_MAX_TOKENS_PER_REQUEST,
        concurrency: int = DEFAULT_EMBEDDING_CONCURRENCY,
    ) -> None:
        if not model:
            raise ConfigError("OpenAIEmbedder needs a model id, e.g. 'text-embedding-3-small'")
        native = EMBEDDING_DIMENSIONS.get(model)
        if dimension is None:
            if native is None:
                raise ConfigError(
                    f"unknown embedding model {model!r}: "
                    "pass dimension= (the length of its vectors)"
                )
            dimension = native
        if dimension < 1:
            raise ConfigError(f"dimension must be >= 1, got {dimension}")
        self._send_dimensions = False
        if native is not None and dimension != native:
            if dimension > native:
                raise ConfigError(
                    f"{model} vectors have {native} dimensions; dimension={dimension} is larger"
                )
            if model not in _SHORTENABLE:
                raise ConfigError(
                    f"{model} cannot shorten its vectors (only text-embedding-3 models accept "
                    f"dimensions=); use dimension={native}"
                )
            self._send_dimensions = True
        if not 1 <= batch_size <= MAX_INPUTS_PER_REQUEST:
            raise ConfigError(
                f"batch_size must be between 1 and {MAX_INPUTS_PER_REQUEST}, got {batch_size}"
            )
        if max_tokens_per_input < 1:
            raise ConfigError(f"max_tokens_per_input must be >= 1, got {max_tokens_per_input}")
        if max_tokens_per_request < max_tokens_per_input:
            raise ConfigError(
                f"max_tokens_per_request ({max_tokens_per_request}) must be at least "
                f"max_tokens_per_input ({max_tokens_per_input}), "
                "or a long input could never be sent"
            )
        if concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
        self._model = model
        self._client = client
        self._dimension = dimension
        self._batch_size = batch_size
        self._max_tokens_per_input = max_tokens_per_input
        self._max_tokens_per_request = max_tokens_per_request
        self._concurrency = concurrency

    @property
    def name(self) -> str:
        """The embedding model id as given."""
        return self._model

    @property
    def dimension(self) -> int:
        """Length of every returned vector (the requested one for shortened v3 vectors)."""
        return self._dimension

    @property
    def concurrency(self) -> int:
        """Most requests one :meth:`embed` call has in flight at once."""
        return self._concurrency

    @property
    def texts_per_call(self) -> int:
        """Texts one :meth:`embed` call should carry to keep every concurrent request busy
        (callers that slice a corpus, like the knowledge base, use this as their slice size)."""
        return self._batch_size * self._concurrency

    def __repr__(self) -> str:
        return f"OpenAIEmbedder({self._model!r}, dimension={self._dimension})"

    def _token_counts(self, texts: Sequence[str]) -> list[int]:
        # Lazy for the same reason as _estimated_usage: metering is another layer's module.
        from ragft.tokens import count_tokens

        counts: list[int] = []
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"input {i} is {type(text).__name__}, not str")
            if not text:
                raise ModelError(
                    f"input {i} is empty: the embeddings API rejects empty strings; drop it first",
                    model=self._model,
                )
            n = count_tokens(text, self._model)
            if n > self._max_tokens_per_input:
                raise ModelError(
                    f"input {i} has {n} tokens, over {self._model}'s limit of "
                    f"{self._max_tokens_per_input}; split it into smaller chunks "
                    "(ragft does not truncate silently)",
                    model=self._model,
                )
            counts.append(n)
        return counts

    def _batches(self, counts: Sequence[int]) -> list[range]:
        batches: list[range] = []
        start, tokens = 0, 0
        for i, n in enumerate(counts):
            full = i - start >= self._batch_size or tokens + n > self._max_tokens_per_request
            if i > start and full:
                batches.append(range(start, i))
                start, tokens = i, 0
            tokens += n
        if start < len(counts):
            batches.append(range(start, len(counts)))
        return batches

    def _request(self, inputs: list[str]) -> tuple[np.ndarray, int | None]:
        extra: dict[str, Any] = {"dimensions": self._dimension} if self._send_dimensions else {}
        with translated_errors(self._model):
            # "float" explicitly: the SDK would otherwise ask for base64, which not every
            # OpenAI-compatible server implements. The raw response, because the SDK's own
            # parse builds a typed value per float: ~1 s of CPU (under the GIL, so concurrent
            # batches queue on it) for 256 vectors of 1,536, where json.loads takes ~50 ms.
            # Status errors and retries are the SDK's either way.
            raw = self._client.embeddings.with_raw_response.create(
                model=self._model, input=inputs, encoding_format="float", **extra
            )
            response = json.loads(raw.content)
        if not isinstance(response, Mapping):
            raise ModelResponseError(
                f"{self._model}: expected an embeddings list, got {type(response).__name__}",
                model=self._model,
            )
        data = response.get("data")
        if not isinstance(data, list) or len(data) != len(inputs):
            got = len(data) if isinstance(data, list) else "no"
            raise ModelResponseError(
                f"{self._model}: sent {len(inputs)} inputs, got {got} embeddings back",
                model=self._model,
            )
        indices = [sdk_field(item, "index") for item in data]
        if sorted(i if isinstance(i, int) else -1 for i in indices) != list(range(len(inputs))):
            raise ModelResponseError(
                f"{self._model}: embedding indices are not 0..{len(inputs) - 1}", model=self._model
            )
        try:
            # The API may answer out of order; `index` is each vector's input position.
            ordered = [item for _, item in sorted(zip(indices, data), key=lambda pair: pair[0])]
            vectors = np.asarray([sdk_field(item, "embedding") for item in ordered], dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise ModelResponseError(
                f"{self._model}: embeddings are not numeric vectors: {exc}", model=self._model
            ) from exc
        if vectors.ndim != 2 or vectors.shape[1] != self._dimension:
            raise ModelResponseError(
                f"{self._model}: expected vectors of length {self._dimension}, "
                f"got shape {vectors.shape}",
                model=self._model,
            )
        if not np.isfinite(vectors).all():
            raise ModelResponseError(
                f"{self._model}: embeddings contain NaN or infinity", model=self._model
            )
        usage = response.get("usage")
        tokens = _count(usage, "prompt_tokens", self._model)
        if tokens is None:
            tokens = _count(usage, "total_tokens", self._model)
        return vectors, tokens

    def embed(self, texts: Sequence[str], *, kind: EmbedKind = "document") -> Embeddings:
        """Embed ``texts`` (``kind`` is ignored: OpenAI embeddings are symmetric).

        Raises :class:`~ragft.errors.ModelError` naming the input for an empty or over-long
        text, before any request is sent.
        """
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of strings, not a single str")
        texts = list(texts)
        counts = self._token_counts(texts)
        batches = self._batches(counts)
        results = self._run_batches([[texts[i] for i in b] for b in batches])
        rows: list[np.ndarray] = []
        total = 0
        all_reported = True
        failure: ModelError | None = None
        for batch, outcome in zip(batches, results, strict=True):
            if isinstance(outcome, ModelError):
                failure = failure or outcome
                continue
            if outcome is None:  # never sent: an earlier failure stopped the run
                continue
            vectors, tokens = outcome
            rows.append(vectors)
            if tokens is None:
                # This batch's server gave no usage: count it ourselves, and say so below.
                all_reported = False
                tokens = sum(counts[i] for i in batch)
            total += tokens
        if failure is not None:
            if total:  # batches that succeeded were billed: let the meter record them
                failure.partial_usage = Usage(
                    model=self._model, kind="embedding", embedding_tokens=total,
                    source="reported" if all_reported else "estimated",
                )
            raise failure
        matrix = np.vstack(rows) if rows else np.zeros((0, self._dimension), dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        # Zero vectors stay zero rather than becoming NaN.
        matrix = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
        usage = Usage(
            model=self._model,
            kind="embedding",
            embedding_tokens=total,
            source="reported" if all_reported else "estimated",
        )
        return Embeddings(vectors=matrix, usage=usage)

    def _run_batches(
        self, inputs: list[list[str]]
    ) -> list[tuple[np.ndarray, int | None] | ModelError | None]:
        """Send every batch, at most ``concurrency`` at once; one outcome per batch, in order.

        An outcome is the batch's ``(vectors, tokens)``, its :class:`ModelError`, or ``None``
        when it was never sent because another batch had already failed.
        """
        outcomes: list[tuple[np.ndarray, int | None] | ModelError | None] = [None] * len(inputs)
        if self._concurrency == 1 or len(inputs) <= 1:
            for i, batch in enumerate(inputs):
                try:
                    outcomes[i] = self._request(batch)
                except ModelError as exc:
                    outcomes[i] = exc
                    break
            return outcomes
        pending = iter(enumerate(inputs))
        running: dict[Future[tuple[np.ndarray, int | None]], int] = {}
        failed = False
        pool = ThreadPoolExecutor(
            max_workers=min(self._concurrency, len(inputs)), thread_name_prefix="ragft-embed"
        )
        try:
            while True:
                while not failed and len(running) < self._concurrency:
                    nxt = next(pending, None)
                    if nxt is None:
                        break
                    running[pool.submit(self._request, nxt[1])] = nxt[0]
                if not running:
                    return outcomes
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    i = running.pop(future)
                    try:
                        outcomes[i] = future.result()
                    except ModelError as exc:
                        outcomes[i] = exc
                        failed = True
        finally:
            # Normally nothing is left; on an unexpected exception (or Ctrl-C) nothing new
            # starts, and requests already sent are not waited for.
            pool.shutdown(wait=False, cancel_futures=True)
