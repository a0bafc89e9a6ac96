"""Pattern 2: a fine-tuned query rewriter in front of retrieval.

Users ask "cab money back?"; the documents say "ground transportation reimbursement". The
rewriter turns the query into the documents' vocabulary, retrieval runs on the rewrite (and,
by default, on the original too, fused, so a bad rewrite cannot lose what the original found),
and the answer is generated for the *original* question. The rewrite is shown in the route.
"""

from __future__ import annotations


from ragft.metering.meter import Meter
from ragft.models.base import ChatModel
from ragft.prompts import REWRITER_SYSTEM
from ragft.rag.hits import fuse_hits
from ragft.route import Route
from ragft.strategies.base import Draft, Strategy, messages_for, metered, with_route
from ragft.strategies.rag import RAG

__all__ = ["RewriteRAG"]


class RewriteRAG(Strategy):
    """Rewrite the query with ``rewriter``, retrieve, then answer with ``rag``'s generator.

    The rewriter is sent the system prompt its training examples carry
    (:data:`ragft.prompts.REWRITER_SYSTEM`).
    """

    kind = "rewrite_rag"

    def __init__(
        self,
        rewriter: ChatModel,
        rag: RAG,
        *,
        meter: Meter,
        include_original: bool = True,
        system_prompt: str = REWRITER_SYSTEM,
        name: str | None = None,
    ):
        super().__init__(meter=meter, name=name)
        self.rewriter = metered(rewriter, meter, "rewrite")
        self.rag = rag
        self.include_original = include_original
        self.system_prompt = system_prompt

    def rewrite(self, query: str) -> str:
        """The rewritten query (the original when the rewriter returns nothing usable)."""
        completion = self.rewriter.complete(messages_for(self.system_prompt, query), max_tokens=64)
        text = " ".join(completion.text.split())
        return text.strip("\"'") or query

    def _draft(self, query: str) -> Draft:
        rewritten = self.rewrite(query)
        hits = list(self.rag.retrieve(rewritten))
        if self.include_original and rewritten != query:
            k = len(hits) or (self.rag.top_k or 5)
            hits = fuse_hits([hits, list(self.rag.retrieve(query))], k)
        draft = self.rag.generate(
            query, hits, "rag", search_query=rewritten if rewritten != query else None
        )
        # The RAG step is this strategy's next stage, not a strategy it handed the query to.
        route = Route(self.kind, draft.route.decision, f"{query!r} -> {rewritten!r}",
                      inner=draft.route, handoff=False)
        return with_route(draft, route)
