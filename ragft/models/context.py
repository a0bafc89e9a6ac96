"""How retrieved passages are fenced inside a prompt, and read back out.

Both sides live here, in the models layer, so the strategies that write the prompt and the
local reader that answers from it agree on one format. Fencing keeps retrieved text from
posing as instructions: passages sit inside ``<passage>`` tags, the system prompt says that
everything inside them is data, and any fence-like markup inside a passage is neutralised so a
document cannot close its own fence.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "Passage",
    "format_context",
    "last_user_message",
    "pack_passages",
    "parse_context",
    "parse_search_query",
    "split_question",
]

_FENCE = re.compile(r"</?\s*(context|passage)\b[^>]*>", re.IGNORECASE)
_PASSAGE = re.compile(
    r'<passage id="(?P<id>[^"]*)" source="(?P<source>[^"]*)">\n(?P<text>.*?)\n</passage>',
    re.DOTALL,
)
_QUESTION_MARK = "\nQuestion: "
_SEARCH = re.compile(r'<context search="(?P<q>[^"]*)">')


@dataclass(frozen=True, slots=True)
class Passage:
    """One retrieved passage as placed in a prompt: ``id`` is the citation label."""

    id: str
    source: str
    text: str


def _neutralise(text: str) -> str:
    # Replace the angle brackets of anything that looks like our fence so it reads as text.
    return _FENCE.sub(lambda m: m.group(0).replace("<", "‹").replace(">", "›"), text)


def _attr(value: str) -> str:
    return value.replace('"', "'").replace("\n", " ")


def pack_passages(
    chunks: Sequence[tuple[str, str]], *, context_tokens: int, count: Callable[[str], int]
) -> list[Passage]:
    """Passages numbered from 1 for ``chunks`` (``(document, text)``, best first), keeping
    whole chunks while their tokens (by ``count``) fit in ``context_tokens``; the first chunk
    is always kept. The RAG strategies and the builder of their fine-tuning data
    (:mod:`ragft.finetune.rag_examples`) both pack with this, so a tuned generator is trained
    on exactly the context it is later sent."""
    passages: list[Passage] = []
    used = 0
    for document, text in chunks:
        tokens = count(text)
        if passages and used + tokens > context_tokens:
            break
        used += tokens
        passages.append(Passage(str(len(passages) + 1), document, text))
    return passages


def format_context(passages: Sequence[Passage], question: str, *, search_query: str | None = None) -> str:
    """The user-message body: fenced passages, then the question.

    ``search_query`` records a rewritten query the passages were retrieved with (as an
    attribute of the fence), so a reader can use the rewrite's vocabulary while answering the
    user's own question.
    """
    blocks = [
        f'<passage id="{_attr(p.id)}" source="{_attr(p.source)}">\n{_neutralise(p.text)}\n</passage>'
        for p in passages
    ]
    opening = f'<context search="{_attr(search_query)}">' if search_query else "<context>"
    return opening + "\n" + "\n".join(blocks) + "\n</context>" + _QUESTION_MARK + question.strip()


def parse_context(text: str) -> list[Passage]:
    """Passages fenced by :func:`format_context` in ``text`` (empty when there are none)."""
    start = text.find("<context")
    end = text.rfind("</context>")
    if start < 0 or end < start:
        return []
    body = text[start:end]
    return [Passage(m["id"], m["source"], m["text"]) for m in _PASSAGE.finditer(body)]


def parse_search_query(text: str) -> str | None:
    """The ``search_query`` recorded by :func:`format_context`, if any."""
    m = _SEARCH.search(text)
    return m["q"] if m else None


def split_question(text: str) -> str:
    """The question part of a user message built by :func:`format_context` (or all of it)."""
    at = text.rfind(_QUESTION_MARK)
    return text[at + len(_QUESTION_MARK) :].strip() if at >= 0 else text.strip()


def last_user_message(messages: Sequence[Mapping[str, str]]) -> str:
    """Content of the last ``user`` message ("" when there is none or it has no content)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return str(message.get("content") or "")
    return ""
