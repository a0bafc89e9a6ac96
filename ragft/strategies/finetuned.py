"""A model alone, no retrieval: the fine-tuned model, or the base model for open tasks."""

from __future__ import annotations

from ragft import defaults
from ragft.metering.meter import Meter
from ragft.models.base import ChatModel
from ragft.prompts import BASE_SYSTEM, GENERATOR_SYSTEM
from ragft.route import Route
from ragft.strategies.base import Draft, Strategy, is_abstention, messages_for, metered

__all__ = ["BaseChat", "FineTuned"]


class FineTuned(Strategy):
    """The fine-tuned model answers from its weights alone.

    Token logprobs are requested so the answer carries a confidence (the local fine-tuned
    models report their own score instead); the cascade uses it. The system prompt is the one
    the generator's training examples carry (:data:`ragft.prompts.GENERATOR_SYSTEM`).
    """

    kind = "finetuned"

    def __init__(
        self,
        model: ChatModel,
        *,
        meter: Meter,
        system_prompt: str = GENERATOR_SYSTEM,
        max_tokens: int = defaults.MAX_TOKENS,
        name: str | None = None,
    ):
        super().__init__(meter=meter, name=name)
        self.model = metered(model, meter, "generate")
        self.system_prompt = system_prompt
        self.max_tokens = max_tokens

    def _draft(self, query: str) -> Draft:
        completion = self.model.complete(
            messages_for(self.system_prompt, query), max_tokens=self.max_tokens, logprobs=True
        )
        confidence = completion.confidence
        shown = "unknown" if confidence is None else f"{confidence:.2f}"
        return Draft(
            text=completion.text,
            route=Route(self.kind, detail=f"{self.model.name} (confidence {shown})"),
            confidence=confidence,
            abstained=is_abstention(completion.text),
        )


class BaseChat(FineTuned):
    """The base chat model alone: for open-ended requests (drafting, rewriting text) that
    need no company knowledge. Same mechanics as :class:`FineTuned`, different model and prompt."""

    kind = "base"

    def __init__(self, model: ChatModel, *, meter: Meter, max_tokens: int = defaults.MAX_TOKENS, name: str | None = None):
        super().__init__(
            model,
            meter=meter,
            system_prompt=BASE_SYSTEM,
            max_tokens=max_tokens,
            name=name,
        )
