"""The route an answer took: which strategy decided what, and which strategy it handed on to.

Strategies build a :class:`Route`; people read ``str(route)``
(``"cascade: finetuned confidence 0.41 < 0.80 -> rag | rag: 5 passages from 2 documents ->
gpt-4.1-mini"``) and programs read its fields (the evaluation's route mix counts
``strategy`` and ``decision``), never a parsed string.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Route"]


@dataclass(frozen=True, slots=True)
class Route:
    """One strategy's decision, and the route of the strategy it handed the query to.

    ``strategy`` is the deciding strategy's kind (``rag``, ``router``, ``cascade`` ...).
    ``decision`` is what the route mix counts: a router's label (or ``"default (rag)"``), a
    cascade's ``"kept"`` or ``"fallback"``, ``"abstain"`` when the strategy declined without
    an answer, and ``""`` when it simply answered. ``detail`` is the human-readable account
    (``"procedural (0.93) -> finetuned"``). ``inner`` is the route of what ran next: another
    strategy the query was handed to (router, cascade; shown after ``" | "``) or, with
    ``handoff=False``, the next stage of this strategy's own pipeline (the rewriter's RAG step,
    shown after ``" -> "``).
    """

    strategy: str = ""
    decision: str = ""
    detail: str = ""
    inner: Route | None = None
    handoff: bool = True

    def __str__(self) -> str:
        if not self.strategy:
            return self.detail
        text = f"{self.strategy}: {self.detail}"
        if self.inner is not None:
            text += (" | " if self.handoff else " -> ") + str(self.inner)
        return text
