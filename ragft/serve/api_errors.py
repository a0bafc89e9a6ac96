"""Errors as the OpenAI API shapes them: ``{"error": {"message", "type", "param", "code"}}``
with the matching HTTP status, so OpenAI clients raise their usual exception classes
(``BadRequestError``, ``AuthenticationError``, ``NotFoundError``, ``RateLimitError`` …).

:func:`from_exception` maps ragft's own exceptions once, here. Messages sent to clients never
contain an API key, and for server-side failures (backend down, index unreadable) they say
what kind of failure it was while the details — paths, upstream URLs — go to the server log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ragft import errors

__all__ = ["APIError", "from_exception"]

# Statuses whose retry cannot succeed: the openai SDK honours ``x-should-retry: false``
# instead of retrying 429 (budget spent) and the like with backoff.
_FINAL = {400, 401, 404, 413, 429}


@dataclass
class APIError(Exception):
    """An error response in OpenAI's shape (raise it from a handler; the app renders it)."""

    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None

    def __str__(self) -> str:
        return f"{self.status} {self.code or self.type}: {self.message}"

    def body(self) -> dict[str, Any]:
        """The JSON body OpenAI clients parse."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def headers(self) -> dict[str, str]:
        """Response headers: tells the SDK not to retry what cannot succeed on retry."""
        return {"x-should-retry": "false"} if self.status in _FINAL else {}

    def encoded(self) -> bytes:
        """The body as bytes (also used as an SSE ``data:`` payload mid-stream)."""
        return json.dumps(self.body(), ensure_ascii=False).encode("utf-8")


def from_exception(exc: BaseException) -> APIError:
    """The API error a request failing with ``exc`` answers with (500 for the unexpected)."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, errors.BudgetExceededError):
        return APIError(429, str(exc), type="insufficient_quota", code="budget_exceeded")
    if isinstance(exc, errors.QueryError):
        return APIError(400, str(exc), code="invalid_query", param="messages")
    if isinstance(exc, errors.ModelError):
        return APIError(
            503,
            f"the model backend failed ({type(exc).__name__}); the server log has the details",
            type="server_error",
            code="backend_unavailable",
        )
    if isinstance(exc, (errors.IndexStoreError, errors.RegistryError)):
        return APIError(
            503,
            f"the knowledge base or model registry is not usable ({type(exc).__name__}); "
            f"the server log has the details",
            type="server_error",
            code="index_unavailable",
        )
    return APIError(
        500, "internal error; the server log has the details", type="server_error", code="internal_error"
    )
