"""Probe prompts outside the user's domain, for the fine-tuning failure modes.

Two small built-in sets, answered by every evaluated strategy (and by the base model) after the
main questions:

* :data:`GREETINGS` — small talk that has no answer in any knowledge base. A strategy that
  answers one with a trained answer is *overfitting* (the guide's "Hi, how can I help?" ->
  "I see you're asking about returns").
* :data:`GENERAL_KNOWLEDGE` — questions any general model answers; the share the fine-tuned
  strategy gets right, minus the share the base model gets right, is *catastrophic forgetting*.

Probe calls are metered and tagged ``eval_probe`` (not ``eval_strategy``), so the per-strategy
cost check of the main questions is unaffected, and cost ``--no-probes`` avoids them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ragft.metering.meter import Meter
from ragft.metrics import contains_answer
from ragft.strategies.base import Strategy

__all__ = ["GENERAL_KNOWLEDGE", "GREETINGS", "ProbeAnswer", "run_probes"]

ProbeKind = Literal["greeting", "general"]

#: Small talk: nothing to answer from documents or training data.
GREETINGS: tuple[str, ...] = (
    "Hi, how can I help?",
    "Hello!",
    "Good morning, how are you today?",
    "Thanks, that's all for now.",
    "Can you tell me a joke?",
)

#: General knowledge with short, unambiguous gold answers (and aliases).
GENERAL_KNOWLEDGE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("What is the capital of France?", ("Paris",)),
    ("How many days are there in a week?", ("7", "seven")),
    ("Which planet is known as the Red Planet?", ("Mars",)),
    ("Who wrote Romeo and Juliet?", ("Shakespeare",)),
    ("What is the largest ocean on Earth?", ("Pacific",)),
    ("How many minutes are in an hour?", ("60", "sixty")),
    ("What is the chemical symbol for gold?", ("Au",)),
    ("On which continent is Kenya?", ("Africa",)),
    ("What is 12 multiplied by 12?", ("144",)),
    ("What gas do plants absorb from the air for photosynthesis?", ("carbon dioxide", "CO2")),
)


@dataclass(frozen=True, slots=True)
class ProbeAnswer:
    """One strategy's answer to one probe. ``correct`` is ``None`` for greetings (no gold)."""

    kind: ProbeKind
    prompt: str
    answer: str
    abstained: bool
    correct: bool | None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProbeAnswer:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: data.get(k) for k in ("kind", "prompt", "answer", "abstained", "correct", "error")})


def _ask(strategy: Strategy, prompt: str, kind: ProbeKind, golds: tuple[str, ...]) -> ProbeAnswer:
    try:
        answer = strategy.answer(prompt)
    except Exception as exc:  # a probe failing must not end the evaluation
        return ProbeAnswer(kind, prompt, "", False, False if golds else None, f"{type(exc).__name__}: {exc}")
    correct = None if not golds else (not answer.abstained and contains_answer(answer.text, golds) == 1.0)
    return ProbeAnswer(kind, prompt, answer.text, answer.abstained, correct)


def run_probes(strategies: Mapping[str, Strategy], *, meter: Meter, run_id: str) -> dict[str, list[ProbeAnswer]]:
    """Every strategy answers every probe (greetings first); calls are tagged
    ``eval_run=run_id, eval_probe=<strategy>``."""
    out: dict[str, list[ProbeAnswer]] = {}
    for name, strategy in strategies.items():
        answers = []
        with meter.collect(eval_run=run_id, eval_probe=name):
            for prompt in GREETINGS:
                answers.append(_ask(strategy, prompt, "greeting", ()))
            for prompt, golds in GENERAL_KNOWLEDGE:
                answers.append(_ask(strategy, prompt, "general", golds))
        out[name] = answers
    return out
