"""The price table: what a call costs, from a data file shipped in the package.

Prices are USD per 1M tokens. A fine-tuned id ``ft:BASE-SNAPSHOT:org:suffix:id`` is priced at
its base model's fine-tuned rates; a dated snapshot (``gpt-4.1-mini-2025-04-14``) at its base
model's. Models under a ``free_prefixes`` entry (the offline local backend) cost 0 but are still
counted — except for their *compute time*: a run on self-hosted hardware (LoRA training) that
reports ``compute_seconds`` is billed at ``gpu_usd_per_hour`` when the table has one (the
config's ``[prices] gpu_usd_per_hour``), so renting a GPU shows up in the ledger and in cost
comparisons. Any other unknown model raises :class:`UnpricedModelError` unless the table lists it as
explicitly unpriced, in which case its cost is ``None`` — never a silent 0.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from ragft.answer import Usage
from ragft.errors import ConfigError, UnpricedModelError

__all__ = ["ModelPrice", "PriceTable", "RetiredModelWarning", "resolve_base_model"]

_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")
_PER_TOKEN = 1e-6


class RetiredModelWarning(UserWarning):
    """A model past (or near) its announced shutdown date is being used."""


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """Prices of one base model in USD per 1M tokens (``None``: not offered)."""

    input: float | None = None
    cached_input: float | None = None
    output: float | None = None
    ft_input: float | None = None
    ft_cached_input: float | None = None
    ft_output: float | None = None
    training: float | None = None
    embedding: float | None = None
    shutdown: dt.date | None = None

    @classmethod
    def from_mapping(cls, model: str, data: Mapping[str, Any]) -> ModelPrice:
        """Build from a price-file entry, validating keys and values."""
        known = {f for f in cls.__slots__}  # type: ignore[attr-defined]
        unknown = set(data) - known
        if unknown:
            raise ConfigError(
                f"price entry for {model!r} has unknown keys {sorted(unknown)}; "
                f"allowed: {sorted(known)}"
            )
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key == "shutdown":
                values[key] = dt.date.fromisoformat(value) if value else None
            else:
                if value is not None and (not isinstance(value, (int, float)) or value < 0):
                    raise ConfigError(f"price {model}.{key} must be a number >= 0, got {value!r}")
                values[key] = None if value is None else float(value)
        return cls(**values)


def resolve_base_model(model: str) -> tuple[str, bool]:
    """``(base model, is_fine_tuned)`` for a model id, dropping snapshot dates.

    >>> resolve_base_model("ft:gpt-4.1-mini-2025-04-14:acme:support:9xYz")
    ('gpt-4.1-mini', True)
    """
    fine_tuned = model.startswith("ft:")
    base = model.split(":")[1] if fine_tuned else model
    return _SNAPSHOT.sub("", base), fine_tuned


@dataclass(frozen=True)
class PriceTable:
    """Model prices plus the rules for free and explicitly unpriced models."""

    models: Mapping[str, ModelPrice]
    free_prefixes: tuple[str, ...] = ("local/", "local-ft:", "lora:")
    unpriced: frozenset[str] = frozenset()
    batch_discount: float = 0.5
    as_of: str = ""
    gpu_usd_per_hour: float = 0.0
    #: ``(chat model, embedding model)`` whose prices the free local models are charged at, for a
    #: simulation (see :meth:`simulating`); ``None``: local models cost 0.
    simulated_as: tuple[str, str] | None = None
    _warned: set[str] = field(default_factory=set, compare=False, repr=False)

    @classmethod
    def load(cls, path: str | Path | None = None) -> PriceTable:
        """Load the bundled table, or a JSON file with the same layout."""
        if path is None:
            text = resources.files("ragft").joinpath("data/prices.json").read_text("utf-8")
            origin = "ragft/data/prices.json"
        else:
            try:
                text = Path(path).read_text("utf-8")
            except OSError as exc:
                raise ConfigError(f"cannot read price table {path}: {exc}") from exc
            origin = str(path)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"price table {origin} is not valid JSON: {exc}") from exc
        models = {
            name: ModelPrice.from_mapping(name, entry) for name, entry in data["models"].items()
        }
        return cls(
            models=models,
            free_prefixes=tuple(data.get("free_prefixes", cls.free_prefixes)),
            unpriced=frozenset(data.get("unpriced", ())),
            batch_discount=float(data.get("batch_discount", 0.5)),
            as_of=str(data.get("as_of", "")),
        )

    def with_overrides(
        self,
        models: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        unpriced: Iterable[str] = (),
        free_prefixes: Iterable[str] = (),
        gpu_usd_per_hour: float | None = None,
    ) -> PriceTable:
        """A copy with extra or replaced model prices, unpriced names, free prefixes and the
        price of an hour of self-hosted compute."""
        merged = dict(self.models)
        for name, entry in (models or {}).items():
            merged[name] = ModelPrice.from_mapping(name, entry)
        return replace(
            self,
            models=merged,
            unpriced=self.unpriced | frozenset(unpriced),
            free_prefixes=self.free_prefixes + tuple(free_prefixes),
            gpu_usd_per_hour=self.gpu_usd_per_hour if gpu_usd_per_hour is None
            else float(gpu_usd_per_hour),
            _warned=set(),
        )

    def simulating(self, chat_model: str, embedding_model: str = "text-embedding-3-small") -> PriceTable:
        """A copy that charges the free local models as if they were ``chat_model`` (a local
        fine-tuned model at its fine-tuned rates, training at its training rate) and
        ``embedding_model``: a **simulation**, so cost comparisons mean something offline.
        Everything that shows such a cost must say it is simulated (:attr:`simulated_as`)."""
        chat = self.models.get(chat_model)
        if chat is None or chat.input is None or chat.output is None:
            chat_models = sorted(m for m, p in self.models.items() if p.input is not None)
            raise ConfigError(f"cannot simulate prices as {chat_model!r}: not a priced chat model; "
                              f"use one of {', '.join(chat_models)}")
        embed = self.models.get(embedding_model)
        if embed is None or embed.embedding is None:
            raise ConfigError(f"cannot simulate embedding prices as {embedding_model!r}: not a "
                              "priced embedding model")
        return replace(self, simulated_as=(chat_model, embedding_model), _warned=set())

    def is_free(self, model: str) -> bool:
        """True for models run by ragft's own local backend."""
        return model.startswith(self.free_prefixes)

    def lookup(self, model: str) -> tuple[ModelPrice, bool] | None:
        """``(price, is_fine_tuned)``; ``None`` when explicitly unpriced; raises when unknown."""
        if model in self.models:
            return self.models[model], False
        base, fine_tuned = resolve_base_model(model)
        if base in self.models:
            return self.models[base], fine_tuned
        if model in self.unpriced or base in self.unpriced:
            return None
        raise UnpricedModelError(
            f"no price for model {model!r}. Add it to the config's [prices.models] table, e.g. "
            f'"{base}" = {{ input = 0.40, cached_input = 0.10, output = 1.60 }}, or list it under '
            f"[prices] unpriced = [\"{model}\"] to record its calls with an unknown cost"
        )

    def shutdown_date(self, model: str) -> dt.date | None:
        """Announced shutdown date of ``model`` (or its base), if any."""
        if self.is_free(model):
            return None
        try:
            found = self.lookup(model)
        except UnpricedModelError:
            return None
        return found[0].shutdown if found else None

    def warn_if_retired(self, model: str, today: dt.date | None = None) -> dt.date | None:
        """Warn once per model when it is past its shutdown date; return that date."""
        date = self.shutdown_date(model)
        today = today or dt.date.today()
        if date is not None and date <= today and model not in self._warned:
            self._warned.add(model)
            warnings.warn(
                f"model {model!r} was shut down on {date.isoformat()}; calls to it will fail. "
                f"Move to a current model and update the config.",
                RetiredModelWarning,
                stacklevel=3,
            )
        return date

    def cost(self, usage: Usage) -> float | None:
        """USD cost of one call, ``None`` for an explicitly unpriced model.

        Cached input tokens are a subset of input tokens: the uncached remainder is billed at
        the input rate and the cached part at the cached rate. Reasoning tokens are already
        inside output tokens. Batch calls get the table's batch discount (not training).
        Self-hosted compute time (``compute_seconds``) costs ``gpu_usd_per_hour`` pro rata.
        """
        compute = usage.compute_seconds / 3600.0 * self.gpu_usd_per_hour
        if self.is_free(usage.model):
            if self.simulated_as is None:
                return compute
            chat, embed = self.simulated_as
            price = self.models[embed] if usage.embedding_tokens else self.models[chat]
            # A local fine-tuned model is charged at the fine-tuned rates (shorter prompts, dearer
            # tokens), the rest of the local backend at the base rates.
            return self._cost(usage, price, usage.model.startswith("local-ft:")) + compute
        found = self.lookup(usage.model)
        if found is None:
            return None
        price, fine_tuned = found
        return self._cost(usage, price, fine_tuned) + compute

    def _cost(self, usage: Usage, price: ModelPrice, fine_tuned: bool) -> float:
        total = 0.0
        if usage.input_tokens or usage.output_tokens:
            rate_in = price.ft_input if fine_tuned else price.input
            rate_cached = price.ft_cached_input if fine_tuned else price.cached_input
            rate_out = price.ft_output if fine_tuned else price.output
            if rate_in is None or rate_out is None:
                what = "fine-tuned chat" if fine_tuned else "chat"
                raise UnpricedModelError(f"model {usage.model!r} has no {what} price in the table")
            if rate_cached is None:  # no cache discount offered
                rate_cached = rate_in
            uncached = usage.input_tokens - usage.cached_input_tokens
            total += uncached * rate_in + usage.cached_input_tokens * rate_cached
            total += usage.output_tokens * rate_out
        if usage.embedding_tokens:
            if price.embedding is None:
                raise UnpricedModelError(f"model {usage.model!r} has no embedding price")
            total += usage.embedding_tokens * price.embedding
        if usage.batch:
            total *= self.batch_discount
        if usage.training_tokens:
            if price.training is None:
                raise UnpricedModelError(
                    f"model {usage.model!r} cannot be fine-tuned according to the price table"
                )
            total += usage.training_tokens * price.training
        return total * _PER_TOKEN
