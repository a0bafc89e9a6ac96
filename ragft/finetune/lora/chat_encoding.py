"""Chat JSONL → token ids and labels, with the loss on assistant tokens only.

Each example is rendered with the base model's *own* chat template. The tokens of every
assistant turn (its text and the template's end-of-turn marker) are trained; system and user
tokens, the template's framing and assistant turns with ``"weight": 0`` get label ``-100``
and only condition the model. Turn boundaries are found by rendering each prefix of the
conversation (``messages[:i]`` with the generation prompt, then ``messages[:i+1]``): a
template whose rendering of a prefix is not a prefix of the whole is refused rather than
trained on misaligned labels.

Problems are collected for the whole file and raised together, each with its line number,
before any training starts: the checks of :func:`ragft.finetune.data.validate_file` (no
assistant turn, unknown roles, empty content, bad JSON, ...), roles a plain chat template
cannot express (``tool``/``function``), and examples longer than ``max_length`` tokens
(never silently truncated).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragft.errors import TrainingDataError
from ragft.finetune.data import DataProblem, validate_file

__all__ = ["IGNORE_INDEX", "TRAINABLE_ROLES", "EncodedExample", "encode_file", "encode_messages"]

#: Label of tokens that are input only (PyTorch's cross-entropy ``ignore_index``).
IGNORE_INDEX = -100
#: Roles a LoRA example may use: what every chat template renders.
TRAINABLE_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True, slots=True)
class EncodedExample:
    """One tokenised example: ``labels[i]`` is ``input_ids[i]`` where trained, else -100."""

    line: int
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]

    @property
    def n_tokens(self) -> int:
        """Tokens the model reads (what training is metered by)."""
        return len(self.input_ids)

    @property
    def n_trained(self) -> int:
        """Tokens that carry loss (the assistant's)."""
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


class _TemplateMisaligned(Exception):
    pass


def _ids(tokenizer: Any, messages: Sequence[Mapping[str, str]], *, generation: bool) -> list[int]:
    out = tokenizer.apply_chat_template(
        list(messages), tokenize=True, add_generation_prompt=generation, return_dict=True
    )
    return list(out["input_ids"])


def encode_messages(
    messages: Sequence[Mapping[str, Any]], tokenizer: Any, *, line: int = 0
) -> EncodedExample:
    """Tokenise one conversation with ``tokenizer``'s chat template and label its assistant
    turns (those without ``"weight": 0``). Raises :class:`TrainingDataError` if the template
    renders a prefix of the conversation differently from the whole."""
    plain = [{"role": str(m["role"]), "content": str(m.get("content") or "")} for m in messages]
    full = _ids(tokenizer, plain, generation=False)
    labels = [IGNORE_INDEX] * len(full)
    for i, message in enumerate(messages):
        if message.get("role") != "assistant" or message.get("weight", 1) == 0:
            continue
        start = len(_ids(tokenizer, plain[:i], generation=True)) if i else 0
        upto = _ids(tokenizer, plain[: i + 1], generation=False)
        if full[: len(upto)] != upto or start > len(upto):
            raise TrainingDataError(
                f"line {line}: the base model's chat template renders a conversation's prefix "
                "differently from the whole conversation, so assistant tokens cannot be located; "
                "use a model whose template is prefix-stable (ChatML, Llama, ...)"
            )
        labels[start : len(upto)] = full[start : len(upto)]
    return EncodedExample(line, tuple(full), tuple(labels))


def encode_file(
    path: str | Path, tokenizer: Any, *, max_length: int, min_examples: int = 1
) -> list[EncodedExample]:
    """Validate and encode a chat fine-tuning JSONL file for LoRA training.

    Raises :class:`TrainingDataError` listing every problem with its line number (and
    ``.problems``); nothing is returned — so nothing is trained — unless the whole file is
    usable.
    """
    path = Path(path)
    report = validate_file(path, model="gpt-4o-mini", min_examples=min_examples,
                           max_tokens_per_example=10**9)
    problems: list[DataProblem] = list(report.problems)
    bad_lines = {p.line for p in problems}
    examples: list[EncodedExample] = []
    text = path.read_text("utf-8").split("\n")
    for number, raw in enumerate(text, start=1):
        if not raw.strip() or number in bad_lines:
            continue
        row = json.loads(raw)
        messages = row["messages"]
        roles = [m.get("role") for m in messages]
        odd = sorted({str(r) for r in roles if r not in TRAINABLE_ROLES})
        if odd:
            problems.append(DataProblem(
                number, "unsupported_role",
                f"role(s) {odd} cannot be rendered by a chat template for LoRA training; use "
                f"only {list(TRAINABLE_ROLES)}"))
            continue
        encoded = encode_messages(messages, tokenizer, line=number)
        if encoded.n_tokens > max_length:
            problems.append(DataProblem(
                number, "too_many_tokens",
                f"example has {encoded.n_tokens} tokens with the base model's chat template, over "
                f"max_length {max_length}; shorten or split it, or raise max_length"))
            continue
        if encoded.n_trained == 0:
            problems.append(DataProblem(
                number, "nothing_to_train",
                "no assistant tokens to learn (every assistant turn has weight 0)"))
            continue
        examples.append(encoded)
    if problems:
        problems.sort(key=lambda p: (p.line is None, p.line or 0))
        shown = "\n".join(f"  {p}" for p in problems[:25])
        if len(problems) > 25:
            shown += f"\n  ... and {len(problems) - 25} more"
        raise TrainingDataError(
            f"training file {path} has {len(problems)} problem(s); nothing was trained:\n{shown}",
            problems,
        )
    return examples
