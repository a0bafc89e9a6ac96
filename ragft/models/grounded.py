"""A fine-tuned local generator used *over retrieved context* (pattern 1 on the local backend).

An OpenAI fine-tune given a prompt with passages reads them like any chat model, in its tuned
style. The local fine-tuned generator is a memory of trained answers and cannot read. This
wrapper gives it the same two abilities: when the question is one it was trained on (its
calibrated confidence reaches its threshold) it answers in its trained house style, citing the
passage from the document its answer refers to when that passage was retrieved; otherwise it
reads the passages with the extractive reader. The completion is one call with one usage.
"""

from __future__ import annotations

from collections.abc import Sequence

from ragft.tokens import estimate_chat_usage
from ragft.models.base import ChatModel, Completion, Message
from ragft.models.context import last_user_message, parse_context, split_question

__all__ = ["GroundedGenerator"]


class GroundedGenerator:
    """``memory`` answers questions it knows; ``reader`` answers from context otherwise."""

    #: Both parts answer their fixed way (see :func:`~ragft.models.base.follows_prompts`).
    follows_prompts = False

    def __init__(self, memory: ChatModel, reader: ChatModel, *, threshold: float = 0.5):
        self.memory = memory
        self.reader = reader
        self.threshold = threshold

    @property
    def name(self) -> str:
        """The fine-tuned model's id (what is priced and reported)."""
        return self.memory.name

    def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float = 0.0,
        logprobs: bool = False,
    ) -> Completion:
        """Answer from memory when confident, else from the fenced passages."""
        user = last_user_message(messages)
        passages = parse_context(user)
        question = split_question(user)
        system = [m for m in messages if m.get("role") == "system"]
        recalled = self.memory.complete(
            [*system, {"role": "user", "content": question}], max_tokens=max_tokens
        )
        conf = recalled.confidence
        if not passages or (conf is not None and conf >= self.threshold):
            cited = tuple(p.id for p in passages if p.source and p.source in recalled.text)
            text, score, citations = recalled.text, conf, cited
        else:
            read = self.reader.complete(messages, max_tokens=max_tokens)
            text, score, citations = read.text, read.confidence, read.citations
        usage = estimate_chat_usage(self.name, messages, text)
        return Completion(text=text, usage=usage, model=self.name, score=score, citations=citations)
