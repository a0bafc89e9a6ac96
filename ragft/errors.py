"""Every error ragft raises, under one root.

Catch :class:`RagftError` to handle anything ragft reports; catch a subclass to handle one
kind of failure. Where callers naturally expect a built-in (``ValueError`` for bad input,
``KeyError`` for a missing name) the class derives from that too.

Tree::

    RagftError
    ├── ConfigError (ValueError)            a config file or option is wrong
    ├── QueryError (ValueError)             a query a strategy cannot take (empty)
    ├── ModelError                          a model call failed
    │   ├── AuthenticationError             missing/invalid API key
    │   ├── RateLimitError                  429 after the SDK's retries
    │   ├── ModelNotFoundError (KeyError)   unknown or retired model id
    │   ├── ModelTimeoutError (TimeoutError)
    │   ├── ModelUnavailableError           5xx / connection failure after retries
    │   └── ModelResponseError              malformed or unusable response payload
    ├── PricingError
    │   └── UnpricedModelError (KeyError)   model missing from the price table
    ├── BudgetExceededError                 a call would exceed a configured budget
    ├── IndexStoreError                     index missing, corrupt or mismatched
    │   ├── MassRemovalError                a sync would remove most documents; not applied
    │   └── IndexBusyError                  another process is writing the index
    ├── DocumentError (ValueError)          a document could not be loaded
    ├── TrainingDataError (ValueError)      training JSONL failed validation
    ├── FineTuneError                       fine-tuning job problems
    │   ├── FineTuneBackendUnavailable      transient backend failure (5xx, 429); retry
    │   ├── TrainingNotAvailableError       provider refuses fine-tuning (e.g. OpenAI 403)
    │   ├── ModelRetiredError               base model past its shutdown date
    │   ├── JobFailedError                  the job ended failed/cancelled
    │   └── AdapterExportError (ValueError) a LoRA adapter cannot be written as GGUF
    ├── RegistryError (KeyError)            unknown model name/version, gate failures
    └── EvaluationError (ValueError)        bad question set or results file
"""

from __future__ import annotations

from collections.abc import Sequence

from ragft.redact import redact

__all__ = [
    "AdapterExportError",
    "AuthenticationError",
    "BudgetExceededError",
    "ConfigError",
    "DocumentError",
    "EvaluationError",
    "FineTuneBackendUnavailable",
    "FineTuneError",
    "IndexBusyError",
    "IndexStoreError",
    "MassRemovalError",
    "JobFailedError",
    "ModelError",
    "ModelNotFoundError",
    "ModelResponseError",
    "ModelRetiredError",
    "ModelTimeoutError",
    "ModelUnavailableError",
    "PricingError",
    "QueryError",
    "RagftError",
    "RateLimitError",
    "RegistryError",
    "TrainingDataError",
    "TrainingNotAvailableError",
    "UnpricedModelError",
]


class RagftError(Exception):
    """Root of every error raised by ragft.

    Message arguments are passed through :func:`ragft.redact.redact` on construction, so an API
    key that a server echoed into an error body never reaches a traceback, a log or a file."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))

    def __str__(self) -> str:  # KeyError subclasses would otherwise repr() the message
        return str(self.args[0]) if self.args else self.__class__.__name__


class ConfigError(RagftError, ValueError):
    """A configuration file or option is invalid; the message names the key and the fix."""


class QueryError(RagftError, ValueError):
    """The query cannot be answered as given (it is empty)."""


class ModelError(RagftError):
    """A model call (chat, embedding, rerank) failed.

    ``partial_usage`` (a :class:`ragft.answer.Usage`) is set when part of the work was done and
    billed before the failure — e.g. earlier batches of a multi-request embedding — so the
    meter can still record what was spent."""

    def __init__(self, message: str, *, model: str | None = None, status_code: int | None = None):
        super().__init__(message)
        self.model = model
        self.status_code = status_code
        self.partial_usage: object | None = None


class AuthenticationError(ModelError):
    """The API key is missing or was rejected."""


class RateLimitError(ModelError):
    """The provider kept answering 429 after the client's retries."""


class ModelNotFoundError(ModelError, KeyError):
    """The model id is unknown to the provider or to ragft."""


class ModelTimeoutError(ModelError, TimeoutError):
    """The request timed out after the client's retries."""


class ModelUnavailableError(ModelError):
    """The provider failed (5xx) or could not be reached after retries."""


class ModelResponseError(ModelError):
    """The response was malformed or unusable (no choices, no embedding, bad JSON)."""


class PricingError(RagftError):
    """Cost could not be computed."""


class UnpricedModelError(PricingError, KeyError):
    """The model is not in the price table; add it or mark it explicitly unpriced."""


class BudgetExceededError(RagftError):
    """A call was refused because it would take spending past a configured budget.

    ``scope`` is ``"run"`` (the meter's total: nothing more can be spent in this run),
    ``"query"`` (only this query's allowance is used up) or ``"allowance"`` (an
    :class:`~ragft.metering.meter.Allowance` — e.g. one API key's budget — is used up)."""

    def __init__(
        self,
        message: str,
        *,
        limit_usd: float,
        spent_usd: float,
        estimate_usd: float,
        scope: str = "run",
    ):
        super().__init__(message)
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd
        self.estimate_usd = estimate_usd
        self.scope = scope


class IndexStoreError(RagftError):
    """The vector index on disk is missing, corrupt, or built with a different embedder."""


class MassRemovalError(IndexStoreError):
    """A sync would remove every indexed document or more than half of them, which is what a
    wrong or empty corpus directory looks like; nothing was changed. ``removed`` lists them."""

    def __init__(self, message: str, *, removed: Sequence[str] = ()):
        super().__init__(message)
        self.removed = tuple(removed)


class IndexBusyError(IndexStoreError):
    """Another process holds the index's writer lock (raised when not waiting for it)."""


class DocumentError(RagftError, ValueError):
    """A document could not be read or parsed."""


class TrainingDataError(RagftError, ValueError):
    """Training data failed validation. ``problems`` lists every finding with its line number."""

    def __init__(self, message: str, problems: Sequence[object] = ()):
        super().__init__(message)
        self.problems = list(problems)


class FineTuneError(RagftError):
    """A fine-tuning operation failed."""


class FineTuneBackendUnavailable(FineTuneError):
    """The fine-tuning backend failed transiently (HTTP 5xx, 429, connection lost); retrying
    may work. ``JobManager.follow`` keeps polling through a few of these; job state on disk is
    never lost because of one."""


class TrainingNotAvailableError(FineTuneError):
    """The provider refuses to start fine-tuning jobs for this account or model."""


class ModelRetiredError(FineTuneError):
    """The requested base model is past its announced shutdown date."""


class JobFailedError(FineTuneError):
    """A fine-tuning job reached a failed or cancelled state."""


class AdapterExportError(FineTuneError, ValueError):
    """A LoRA adapter cannot be converted for llama.cpp (unsupported architecture or module,
    DoRA, per-module ranks, or a base model it was not trained on); the message says what to
    change."""


class RegistryError(RagftError, KeyError):
    """Unknown model name or version in the registry, or a refused promotion."""


class EvaluationError(RagftError, ValueError):
    """The question set, strategies list or results file for an evaluation is invalid."""
