"""Pattern 3: a router that classifies each query and dispatches it.

Classes map to routes in the config (``factual -> rag``, ``procedural -> finetuned``,
``creative -> base``, ``out_of_scope -> refuse``). Three classifiers share one protocol:
keyword rules, a zero-shot LLM prompt, and a trained classifier (a fine-tuned model whose reply
is the label, e.g. the local logistic-regression router). A label the classifier cannot give —
unparsable text, a class with no route, a score under ``min_score`` — goes to the configured
default route, and the route string says why.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from ragft.errors import ConfigError, RagftError
from ragft.metering.meter import Meter
from ragft.models.base import ChatModel
from ragft.prompts import REFUSAL_TEXT, ROUTER_SYSTEM, classifier_prompt
from ragft.route import Route
from ragft.strategies.base import Draft, Strategy, messages_for, metered, with_route

__all__ = [
    "Classification",
    "LazyTarget",
    "LLMClassifier",
    "QueryClassifier",
    "REFUSE",
    "Router",
    "RulesClassifier",
    "TrainedClassifier",
    "DEFAULT_LABELS",
]

#: Route name meaning "decline politely without calling a model".
REFUSE = "refuse"
DEFAULT_LABELS: tuple[str, ...] = ("factual", "procedural", "creative", "out_of_scope")


@dataclass(frozen=True, slots=True)
class Classification:
    """A classifier's verdict. ``label`` is ``None`` when it could not produce a known one;
    ``raw`` keeps what it said, for the route and for debugging."""

    label: str | None
    score: float | None
    raw: str


class QueryClassifier(Protocol):
    """Anything that labels a query with one of ``labels``."""

    labels: tuple[str, ...]

    def classify(self, query: str) -> Classification:
        """Label ``query``."""
        ...


def parse_label(text: str, labels: Sequence[str]) -> str | None:
    """The label ``text`` names: exact match first, then a unique label mentioned as a word
    (``"Category: procedural."``). Ambiguous or absent -> ``None``."""
    norm = re.sub(r"[\s-]+", "_", text.strip().strip(".\"'` ").lower())
    if norm in labels:
        return norm
    found = {label for label in labels if re.search(rf"(?<![a-z]){re.escape(label)}(?![a-z])", norm)}
    return found.pop() if len(found) == 1 else None


class RulesClassifier:
    """Keyword rules, checked in order; the first class whose pattern matches wins.

    Cheap and predictable; a good default when no trained router exists. ``rules`` maps a
    label to a regular expression.
    """

    DEFAULT_RULES: Mapping[str, str] = {
        "creative": r"\b(write|draft|compose|poem|haiku|story|slogan|joke|brainstorm|rephrase)\b",
        "procedural": r"\b(how (do|can|should) (i|we)|how to|steps?|process|procedure|request|set ?up|configure|rotate|file an?)\b",
        "factual": r"\b(what|which|when|who|where|how (many|much|long)|is there|does|do we)\b",
    }

    def __init__(self, rules: Mapping[str, str] | None = None, *, fallback: str = "out_of_scope"):
        self.rules = {k: re.compile(v, re.IGNORECASE) for k, v in (rules or self.DEFAULT_RULES).items()}
        self.fallback = fallback
        self.labels = tuple(dict.fromkeys([*self.rules, fallback]))

    def classify(self, query: str) -> Classification:
        """First matching rule's label (score 1.0), else the fallback label (score 0.5)."""
        for label, pattern in self.rules.items():
            if pattern.search(query):
                return Classification(label, 1.0, f"rule:{label}")
        return Classification(self.fallback, 0.5, "rule:none")


class LLMClassifier:
    """Zero-shot classification by a chat model. Unparsable replies give ``label=None``."""

    def __init__(
        self,
        model: ChatModel,
        *,
        meter: Meter,
        labels: Sequence[str] = DEFAULT_LABELS,
        descriptions: Mapping[str, str] | None = None,
    ):
        self.model = metered(model, meter, "classify")
        self.labels = tuple(labels)
        self.descriptions = dict(descriptions or {})

    def _prompt(self) -> str:
        return classifier_prompt(self.labels, self.descriptions)

    def classify(self, query: str) -> Classification:
        """Ask the model; confidence comes from its token logprobs when available."""
        completion = self.model.complete(messages_for(self._prompt(), query), max_tokens=8, logprobs=True)
        return Classification(parse_label(completion.text, self.labels), completion.confidence, completion.text)


class TrainedClassifier(LLMClassifier):
    """A fine-tuned classifier: a model trained to reply with the label (OpenAI fine-tune or
    the local router model, which reports the class probability as its score). It is sent the
    system prompt its training examples carry (:data:`ragft.prompts.ROUTER_SYSTEM`)."""

    def _prompt(self) -> str:
        return ROUTER_SYSTEM

    @property
    def stored_min_score(self) -> float | None:
        """The routing threshold stored with the trained model (the local router chooses one
        on validation data), or ``None`` when the model has none (e.g. an OpenAI fine-tune)."""
        model: object = self.model
        while model is not None:
            value = getattr(model, "min_score", None)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
            model = getattr(model, "inner", None)  # through the meter's wrappers
        return None


@dataclass(frozen=True)
class LazyTarget:
    """A route's strategy, built the first time a query takes the route: a route no query
    needs costs nothing and cannot fail (``classifier = "rules"`` works without the fine-tuned
    models that only some routes use)."""

    name: str
    build: Callable[[], Strategy]


class Router(Strategy):
    """Classify, then dispatch to the strategy configured for the class.

    ``routes`` maps a label to a strategy, a :class:`LazyTarget` or :data:`REFUSE`.
    ``default_route`` (a key of ``routes``' values' names or ``REFUSE``) takes queries the
    classifier could not label. A target that cannot be built raises its error with the route
    named (``router route 'procedural' -> 'finetuned': ...``).
    """

    kind = "router"

    def __init__(
        self,
        classifier: QueryClassifier,
        routes: Mapping[str, Strategy | LazyTarget | str],
        *,
        meter: Meter,
        default_route: str,
        min_score: float = 0.0,
        name: str | None = None,
    ):
        super().__init__(meter=meter, name=name)
        for label, target in routes.items():
            if isinstance(target, str) and target != REFUSE:
                raise ConfigError(f"router route {label!r} -> {target!r}: give a strategy or {REFUSE!r}")
        self.classifier = classifier
        self.routes: dict[str, Strategy | LazyTarget | str] = dict(routes)
        targets = {self._target_name(t): t for t in self.routes.values()}
        if default_route not in targets and default_route != REFUSE:
            raise ConfigError(
                f"router default_route {default_route!r} is not one of the routes' targets "
                f"{sorted(targets)} or {REFUSE!r}"
            )
        self.default_route = default_route
        self._default_target: Strategy | LazyTarget | str = targets.get(default_route, REFUSE)
        self._built: dict[str, Strategy] = {}
        self._build_lock = threading.Lock()
        if not 0.0 <= min_score <= 1.0:
            raise ConfigError(f"router min_score must be in [0, 1], got {min_score}")
        self.min_score = min_score

    @staticmethod
    def _target_name(target: Strategy | LazyTarget | str) -> str:
        return target if isinstance(target, str) else target.name

    def _ready(self, label: str, target: Strategy | LazyTarget | str) -> Strategy | str:
        """``target`` as a strategy (built once, under a lock) or :data:`REFUSE`."""
        if not isinstance(target, LazyTarget):
            return target
        with self._build_lock:
            if target.name not in self._built:
                try:
                    self._built[target.name] = target.build()
                except RagftError as exc:
                    # Keep the error's class (callers catch RegistryError etc.), name the route.
                    exc.args = (f"router route {label!r} -> {target.name!r}: {exc}", *exc.args[1:])
                    raise
            return self._built[target.name]

    def decide(self, query: str) -> tuple[Strategy | str, Route]:
        """The target for ``query`` and the route explaining the decision."""
        verdict = self.classifier.classify(query)
        score = "?" if verdict.score is None else f"{verdict.score:.2f}"
        if verdict.label is None:
            reason = f"unparsable label {verdict.raw.strip()[:40]!r}"
        elif verdict.label not in self.routes:
            reason = f"label {verdict.label!r} has no route"
        elif verdict.score is not None and verdict.score < self.min_score:
            reason = f"{verdict.label} ({score}) < min score {self.min_score:.2f}"
        else:
            target = self._ready(verdict.label, self.routes[verdict.label])
            return target, Route(self.kind, verdict.label,
                                 f"{verdict.label} ({score}) -> {self._target_name(target)}")
        default = self._ready("default_route", self._default_target)
        return default, Route(self.kind, f"default ({self.default_route})",
                                           f"{reason} -> default {self.default_route}")

    def _draft(self, query: str) -> Draft:
        target, route = self.decide(query)
        if isinstance(target, str):  # REFUSE
            return Draft(text=REFUSAL_TEXT, route=route, abstained=True, confidence=None)
        inner = target.draft(query)
        return with_route(inner, replace(route, inner=inner.route))
