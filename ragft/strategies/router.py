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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from ragft.errors import ConfigError
from ragft.metering.meter import Meter
from ragft.models.base import ChatModel
from ragft.prompts import REFUSAL_TEXT, classifier_prompt, router_system_prompt
from ragft.route import Route
from ragft.strategies.base import Draft, Strategy, messages_for, metered, with_route

__all__ = [
    "Classification",
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
    system prompt its training examples carry (:func:`ragft.prompts.router_system_prompt`)."""

    def _prompt(self) -> str:
        return router_system_prompt(self.labels)


class Router(Strategy):
    """Classify, then dispatch to the strategy configured for the class.

    ``routes`` maps a label to a strategy or to :data:`REFUSE`. ``default_route`` (a key of
    ``routes``' values' names or ``REFUSE``) takes queries the classifier could not label.
    """

    kind = "router"

    def __init__(
        self,
        classifier: QueryClassifier,
        routes: Mapping[str, Strategy | str],
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
        self.routes = dict(routes)
        targets = {self._target_name(t): t for t in self.routes.values()}
        if default_route not in targets and default_route != REFUSE:
            raise ConfigError(
                f"router default_route {default_route!r} is not one of the routes' targets "
                f"{sorted(targets)} or {REFUSE!r}"
            )
        self.default_route = default_route
        self._default_target: Strategy | str = targets.get(default_route, REFUSE)
        if not 0.0 <= min_score <= 1.0:
            raise ConfigError(f"router min_score must be in [0, 1], got {min_score}")
        self.min_score = min_score

    @staticmethod
    def _target_name(target: Strategy | str) -> str:
        return target if isinstance(target, str) else target.name

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
            target = self.routes[verdict.label]
            return target, Route(self.kind, verdict.label,
                                 f"{verdict.label} ({score}) -> {self._target_name(target)}")
        return self._default_target, Route(self.kind, f"default ({self.default_route})",
                                           f"{reason} -> default {self.default_route}")

    def _draft(self, query: str) -> Draft:
        target, route = self.decide(query)
        if isinstance(target, str):  # REFUSE
            return Draft(text=REFUSAL_TEXT, route=route, abstained=True, confidence=None)
        inner = target.draft(query)
        return with_route(inner, replace(route, inner=inner.route))
