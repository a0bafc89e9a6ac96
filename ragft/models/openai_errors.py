"""OpenAI SDK failures, read once for every ragft layer that calls the SDK.

:func:`read_api_error` turns any SDK (or payload-parsing) exception into an
:class:`ApiFailure`: what kind of failure it is, the API's own message, the HTTP status and
error code, and what to do about it. :func:`translate_error` makes the
:class:`~ragft.errors.ModelError` a chat or embedding call raises from it; the fine-tuning
backend (:mod:`ragft.finetune.backends.openai`) makes its
:class:`~ragft.errors.FineTuneError` from the same reading, adding only what is specific to
fine-tuning (``training_not_available``, job state kept on disk). So a missing key, a quota
or an outage reads the same whichever command met it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import openai
import pydantic

from ragft.errors import (
    AuthenticationError,
    ModelError,
    ModelNotFoundError,
    ModelResponseError,
    ModelTimeoutError,
    ModelUnavailableError,
    RateLimitError,
)
from ragft.redact import redact, redact_data

__all__ = [
    "MISSING_KEY_HINT",
    "TRANSIENT_KINDS",
    "ApiFailure",
    "FailureKind",
    "read_api_error",
    "translate_error",
    "translated_errors",
]

# Names ragft.config's real knobs: the key is read from the variable `[backend] api_key_env`
# names (OPENAI_API_KEY by default); a `[backend] base_url` needs no key.
MISSING_KEY_HINT = (
    "set OPENAI_API_KEY (or the variable named by `api_key_env` in the config's [backend] "
    "section), or point `base_url` in [backend] at a local OpenAI-compatible server"
)

FailureKind = Literal["auth", "not_found", "quota", "rate_limit", "timeout", "not_implemented",
                      "unavailable", "malformed", "refused", "other"]

#: Failures that may pass if the same call is made again later.
TRANSIENT_KINDS: frozenset[str] = frozenset({"quota", "rate_limit", "timeout", "unavailable"})

_HINTS: Mapping[str, str] = {
    "auth": MISSING_KEY_HINT,
    "quota": "add credits or raise the project's budget",
    "rate_limit": "slow down, or raise max_retries",
    "timeout": "raise the timeout or retry later",
    "unavailable": "retry later or check base_url",
}


@dataclass(frozen=True, slots=True)
class ApiFailure:
    """One failed SDK call, read: ``kind``, the API's own ``message``, the HTTP ``status``
    (``None`` when no response came back), the API's error ``code`` and a ``hint`` saying what
    to do (``""`` where the message says it all)."""

    kind: FailureKind
    message: str
    status: int | None = None
    code: str | None = None
    hint: str = ""

    @property
    def transient(self) -> bool:
        """True when retrying later may succeed (rate limits, timeouts, outages)."""
        return self.kind in TRANSIENT_KINDS


def _api_message(exc: openai.APIError) -> str:
    # The SDK's str() is "Error code: 401 - {'error': {...}}"; the body's own message is what
    # a person needs to read.
    body = exc.body
    if isinstance(body, Mapping):
        message = body.get("message")
        if isinstance(message, str) and message:
            return message
    return exc.message


def _kind(exc: openai.APIError, status: int | None, code: str | None) -> FailureKind:
    if isinstance(exc, openai.AuthenticationError):
        return "auth"
    if isinstance(exc, openai.NotFoundError) or code == "model_not_found":
        return "not_found"
    if isinstance(exc, openai.RateLimitError):
        return "quota" if code == "insufficient_quota" else "rate_limit"
    if isinstance(exc, openai.APITimeoutError):  # before APIConnectionError: it subclasses it
        return "timeout"
    if status == 501:  # not transient: e.g. a llama.cpp server started without --embeddings
        return "not_implemented"
    if isinstance(exc, openai.InternalServerError | openai.APIConnectionError):
        return "unavailable"
    if isinstance(exc, openai.APIResponseValidationError):
        return "malformed"
    if isinstance(exc, openai.BadRequestError):
        return "refused"
    return "other"


def _scrub_sdk_error(exc: Exception) -> None:
    # The SDK exception stays chained as __cause__ (useful when debugging), so the key a server
    # may have echoed into it is masked in place: its args (what str() and tracebacks show),
    # its message and its parsed body.
    exc.args = tuple(redact(a) if isinstance(a, str) else a for a in exc.args)
    if isinstance(exc, openai.APIError):
        exc.message = redact(exc.message)
        exc.body = redact_data(exc.body)


def read_api_error(exc: Exception) -> ApiFailure:
    """Read an SDK exception (or a json/pydantic failure reading a 200 response).

    Secrets in the server's text are masked (see :mod:`ragft.redact`), in the reading and in
    ``exc`` itself, which callers chain as the cause."""
    _scrub_sdk_error(exc)
    status = getattr(exc, "status_code", None)
    if not isinstance(exc, openai.APIError):
        return ApiFailure("malformed", str(exc), status)
    code = exc.code
    if code is None and isinstance(exc.body, Mapping):
        code = exc.body.get("code")
    kind = _kind(exc, status, exc.code)
    return ApiFailure(kind, _api_message(exc), status, code, _HINTS.get(kind, ""))


#: The ModelError each failure kind becomes, and its message (``{model}``, ``{message}`` and
#: ``{hint}`` filled in).
_MODEL_ERRORS: Mapping[str, tuple[type[ModelError], str]] = {
    "auth": (AuthenticationError, "{model}: the API rejected the key ({message}); {hint}"),
    "not_found": (ModelNotFoundError, "model {model!r} was not found by the API ({message}); "
                  "check the model id, and that this key's project has access to it"),
    "quota": (RateLimitError, "{model}: rate limited after retries ({message}); {hint}"),
    "rate_limit": (RateLimitError, "{model}: rate limited after retries ({message}); {hint}"),
    "timeout": (ModelTimeoutError, "{model}: request timed out after retries; {hint}"),
    "not_implemented": (ModelError,
                        "{model}: the server does not implement this endpoint ({message})"),
    "unavailable": (ModelUnavailableError, "{model}: the API is unavailable ({message}); {hint}"),
    "malformed": (ModelResponseError, "{model}: malformed response from the API: {message}"),
    "refused": (ModelError, "{model}: the API refused the request: {message}"),
    "other": (ModelError, "{model}: API error: {message}"),
}


def translate_error(exc: Exception, model: str) -> ModelError:
    """Map an SDK (or payload-parsing) exception to the matching ragft :class:`ModelError`
    (secrets masked, see :func:`read_api_error`)."""
    failure = read_api_error(exc)
    cls, template = _MODEL_ERRORS[failure.kind]
    text = template.format(model=model, message=failure.message, hint=failure.hint)
    return cls(text, model=model, status_code=failure.status)


@contextmanager
def translated_errors(model: str) -> Iterator[None]:
    """Re-raise SDK and payload-parsing exceptions inside the block as ragft ModelErrors."""
    try:
        yield
    except (openai.APIError, json.JSONDecodeError, pydantic.ValidationError) as exc:
        raise translate_error(exc, model) from exc
