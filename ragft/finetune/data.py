"""Training data for fine-tuning: build OpenAI chat JSONL, split it, validate it, price it.

The file format is OpenAI's chat fine-tuning format, one example a line::

    {"messages": [{"role": "system", "content": "..."},
                  {"role": "user", "content": "How do I reset my password?"},
                  {"role": "assistant", "content": "Open Settings > Security ..."}]}

One builder per *purpose* (what the tuned model is for): :func:`generator_examples` (answer
questions without retrieval), :func:`rewriter_examples` (rewrite a search query) and
:func:`router_examples` (classify a query; the assistant says only the label). The same files
train the local backend (:mod:`ragft.finetune.backends.local`) and OpenAI jobs.

:func:`validate_file` runs the checks of the OpenAI cookbook's "Data preparation and analysis
for chat model fine-tuning" and reports every problem with its 1-based line number, so a file
is fixed in one pass instead of one upload-and-reject cycle per mistake.
:func:`estimate_training` computes billed tokens and cost before anything is spent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ragft.errors import ConfigError, FineTuneError, ModelRetiredError, TrainingDataError
from ragft.serialize import to_record
from ragft.storage import atomic_write_text
from ragft.metering.prices import ModelPrice, PriceTable
from ragft.tokens import count_chat_tokens, count_tokens
# The training prompts are the serving prompts: both come from ragft.prompts (re-exported here).
from ragft.prompts import (
    GENERATOR_SYSTEM,
    REWRITER_SYSTEM,
    ROUTER_SYSTEM,
)
from ragft.textutil import content_words

__all__ = [
    "ALLOWED_MESSAGE_KEYS",
    "ALLOWED_ROLES",
    "DEFAULT_MAX_TOKENS_PER_EXAMPLE",
    "GENERATOR_SYSTEM",
    "MIN_EXAMPLES",
    "PURPOSES",
    "REWRITER_SYSTEM",
    "ROUTER_SYSTEM",
    "DataProblem",
    "Example",
    "Purpose",
    "Split",
    "TokenStats",
    "TrainingEstimate",
    "ValidationReport",
    "auto_epochs",
    "check_base_model",
    "detect_purpose",
    "estimate_training",
    "example_key",
    "generator_examples",
    "message_text",
    "read_jsonl",
    "rewriter_examples",
    "router_examples",
    "split_examples",
    "validate_examples",
    "validate_file",
    "write_jsonl",
]

#: One training example: ``{"messages": [...]}`` (chat purposes) or, for the local embedding
#: adapter, ``{"query": ..., "passage": ...}``.
Example = dict[str, Any]

#: What a tuned model is for. ``adapter`` (a query-embedding adapter) trains only locally.
Purpose = Literal["generator", "rewriter", "router", "adapter"]
PURPOSES: tuple[str, ...] = ("generator", "rewriter", "router", "adapter")

#: OpenAI's per-example context limit for training, as used by the cookbook's checks.
DEFAULT_MAX_TOKENS_PER_EXAMPLE = 65_536
#: OpenAI rejects training files with fewer examples (it recommends 50–100 to start).
MIN_EXAMPLES = 10

ALLOWED_ROLES = frozenset({"system", "user", "assistant", "tool", "function"})
ALLOWED_MESSAGE_KEYS = frozenset(
    {"role", "content", "name", "weight", "function_call", "tool_calls", "tool_call_id"}
)


#: How router files built before the label list left the prompt begin (still recognised).
_LISTING_ROUTER_PREFIX = "Classify the user's query into exactly one of these labels:"


# --------------------------------------------------------------------------- builders


def _pairs(
    items: Iterable[Mapping[str, Any] | Sequence[str]], first: str, second: str, what: str
) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    problems: list[DataProblem] = []
    for number, item in enumerate(items, start=1):
        if isinstance(item, Mapping):
            a, b = item.get(first), item.get(second)
        elif isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 2:
            a, b = item
        else:
            problems.append(DataProblem(number, "bad_item", f"expected a {{{first!r}, {second!r}}} "
                                        f"object or a pair, got {type(item).__name__}"))
            continue
        for key, value in ((first, a), (second, b)):
            if not isinstance(value, str) or not value.strip():
                problems.append(DataProblem(
                    number, "empty_field", f"{key!r} is missing or empty; give a non-empty string"
                ))
        if isinstance(a, str) and isinstance(b, str) and a.strip() and b.strip():
            out.append((a.strip(), b.strip()))
    if problems:
        raise TrainingDataError(
            f"{len(problems)} problem(s) in the {what} input:\n"
            + "\n".join(f"  {p}" for p in problems[:20]),
            problems,
        )
    return out


def _chat(system: str | None, user: str, assistant: str) -> Example:
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return {"messages": messages}


def generator_examples(
    pairs: Iterable[Mapping[str, Any] | Sequence[str]],
    *,
    system: str | None = GENERATOR_SYSTEM,
    question_key: str = "question",
    answer_key: str = "answer",
) -> list[Example]:
    """Chat examples teaching a model to answer ``question`` with ``answer``.

    ``pairs`` are mappings (``{"question", "answer"}`` by default) or ``(question, answer)``
    tuples. Raises :class:`TrainingDataError` listing every empty or malformed item.
    """
    return [_chat(system, q, a) for q, a in _pairs(pairs, question_key, answer_key, "generator")]


def rewriter_examples(
    pairs: Iterable[Mapping[str, Any] | Sequence[str]],
    *,
    system: str | None = REWRITER_SYSTEM,
    query_key: str = "query",
    rewrite_key: str = "rewrite",
) -> list[Example]:
    """Chat examples teaching a model to turn ``query`` into a better search query ``rewrite``."""
    return [_chat(system, q, r) for q, r in _pairs(pairs, query_key, rewrite_key, "rewriter")]


def router_examples(
    labelled: Iterable[Mapping[str, Any] | Sequence[str]],
    labels: Sequence[str],
    *,
    system: str | None = None,
    text_key: str = "query",
    label_key: str = "label",
) -> list[Example]:
    """Chat examples teaching a classifier: the assistant's reply is exactly the label.

    Every label must be one of ``labels`` (a typo in the data would otherwise silently create
    a new class). The default system prompt is :data:`~ragft.prompts.ROUTER_SYSTEM` — what
    ``TrainedClassifier`` sends at query time, and what lets :func:`detect_purpose` recognise
    the file. It does not list the labels: the model learns them from the examples, and a
    list repeated in every example is billed in every example.
    """
    if not labels:
        raise TrainingDataError("router_examples needs a non-empty list of labels")
    allowed = list(dict.fromkeys(labels))
    pairs = _pairs(labelled, text_key, label_key, "router")
    bad = [
        DataProblem(i, "unknown_label", f"label {lab!r} is not one of {allowed}; fix the label "
                    "or add it to the labels")
        for i, (_, lab) in enumerate(pairs, start=1)
        if lab not in allowed
    ]
    if bad:
        raise TrainingDataError(
            f"{len(bad)} unknown label(s):\n" + "\n".join(f"  {p}" for p in bad[:20]), bad
        )
    prompt = system if system is not None else ROUTER_SYSTEM
    return [_chat(prompt, q, lab) for q, lab in pairs]


# --------------------------------------------------------------------------- files


def write_jsonl(examples: Iterable[Mapping[str, Any]], path: str | Path) -> Path:
    """Write one JSON object a line, atomically (the file is complete or untouched)."""
    lines = [json.dumps(ex, ensure_ascii=False, separators=(",", ":")) for ex in examples]
    path = Path(path)
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return path


def read_jsonl(path: str | Path) -> list[Example]:
    """Read a JSONL file of objects; raises :class:`TrainingDataError` naming bad lines.

    Blank lines are skipped here (use :func:`validate_file` to be told about them).
    """
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise TrainingDataError(f"cannot read {path}: {exc}") from exc
    out: list[Example] = []
    problems: list[DataProblem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(DataProblem(number, "invalid_json", f"not valid JSON ({exc.msg})"))
            continue
        if not isinstance(obj, dict):
            problems.append(DataProblem(number, "not_object", "expected a JSON object"))
            continue
        out.append(obj)
    if problems:
        raise TrainingDataError(
            f"{path}: {len(problems)} unreadable line(s):\n"
            + "\n".join(f"  {p}" for p in problems[:20]),
            problems,
        )
    return out


# --------------------------------------------------------------------------- splitting


def _first_user_text(example: Mapping[str, Any]) -> str | None:
    if "query" in example and "messages" not in example:
        return str(example["query"])
    for message in example.get("messages") or ():
        if isinstance(message, Mapping) and message.get("role") == "user":
            return str(message.get("content"))
    return None


def example_key(example: Mapping[str, Any]) -> str:
    """What :func:`split_examples` hashes: the normalised first user message (or ``query``).

    Keying on the question rather than the whole example keeps every example of one
    question in the same split — a corrected answer does not move it, and two answers to one
    question cannot leak across train and test.
    """
    text = _first_user_text(example)
    if text is None:
        text = json.dumps(example, sort_keys=True, ensure_ascii=False)
    return " ".join(text.lower().split())


@dataclass(frozen=True, slots=True)
class Split:
    """Train / validation / test partitions of a list of examples."""

    train: list[Example]
    validation: list[Example]
    test: list[Example]

    def sizes(self) -> dict[str, int]:
        """Number of examples per partition."""
        return {"train": len(self.train), "validation": len(self.validation),
                "test": len(self.test)}


def split_examples(
    examples: Iterable[Example], *, validation: float = 0.1, test: float = 0.1, seed: int = 0
) -> Split:
    """Deterministic hash-based split: each example's partition depends only on its own key.

    The SHA-256 of ``seed`` and :func:`example_key` is mapped to ``u`` in ``[0, 1)``:
    ``u < test`` goes to test, ``u < test + validation`` to validation, the rest to train.
    Adding or removing an example therefore never moves another one (a random shuffle would),
    so a growing dataset keeps a stable held-out set. Fractions are expected, not exact: small
    sets can come out a few examples off.
    """
    if not (0 <= validation < 1 and 0 <= test < 1 and validation + test < 1):
        raise ConfigError(
            f"validation ({validation}) and test ({test}) must be in [0, 1) and sum below 1"
        )
    parts: dict[str, list[Example]] = {"train": [], "validation": [], "test": []}
    for example in examples:
        digest = hashlib.sha256(f"{seed}\x00{example_key(example)}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64
        name = "test" if u < test else "validation" if u < test + validation else "train"
        parts[name].append(example)
    return Split(**parts)


# --------------------------------------------------------------------------- purpose


def message_text(example: Mapping[str, Any], role: str, *, last: bool = False) -> str:
    """The content of a chat example's first (``last=True``: last) message with ``role``,
    ``""`` when there is none — e.g. the question (``"user"``) and reply (``"assistant"``,
    last) a trainer learns from."""
    messages = [m for m in example.get("messages") or () if isinstance(m, Mapping)]
    for message in reversed(messages) if last else messages:
        if message.get("role") == role:
            return str(message.get("content") or "")
    return ""


def detect_purpose(examples: Sequence[Mapping[str, Any]]) -> Purpose:
    """Guess what a training file is for.

    ``{"query", "passage"}`` rows are embedding-adapter pairs. Chat files written by this
    module's builders are recognised by their system prompt. Otherwise: a file whose replies
    are one-word labels that repeat (on average three times or more, any number of distinct
    labels) is a router; one whose replies repeat most of the
    user's words (query + expansion) is a rewriter; anything else is a generator. Pass the
    purpose explicitly when the guess could be wrong.
    """
    if not examples:
        raise TrainingDataError("cannot detect the purpose of an empty training set")
    first = examples[0]
    if "messages" not in first and "query" in first and ("passage" in first or "positive" in first):
        return "adapter"
    system = message_text(first, "system")
    if system == ROUTER_SYSTEM or system.startswith(_LISTING_ROUTER_PREFIX):
        return "router"
    if system == REWRITER_SYSTEM:
        return "rewriter"
    if system == GENERATOR_SYSTEM:
        return "generator"
    replies = [message_text(ex, "assistant", last=True).strip() for ex in examples]
    distinct = set(replies)
    label_like = all(r and len(r.split()) == 1 and len(r) <= 40 for r in replies)
    # Labels repeat (on average three times or more) however many there are: a 150-intent
    # set is as much a router as a 4-class one. One-word *answers* rarely repeat that often.
    if label_like and len(distinct) <= max(2, len(replies) // 3):
        return "router"
    recalls = []
    for ex, reply in zip(examples, replies, strict=True):
        user = set(content_words(_first_user_text(ex) or ""))
        if user:
            recalls.append(len(user & set(content_words(reply))) / len(user))
    if recalls and statistics.fmean(recalls) >= 0.6:
        return "rewriter"
    return "generator"


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True, slots=True)
class DataProblem:
    """One finding in a training file. ``line`` is 1-based; ``None`` for whole-file findings."""

    line: int | None
    code: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line is not None else self.message

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return to_record(self)


@dataclass(frozen=True, slots=True)
class TokenStats:
    """Distribution of a per-example count (tokens, messages)."""

    min: int = 0
    mean: float = 0.0
    median: float = 0.0
    max: int = 0
    total: int = 0

    @classmethod
    def of(cls, values: Sequence[int]) -> TokenStats:
        """Stats of ``values`` (all zero when empty)."""
        if not values:
            return cls()
        return cls(
            min=min(values),
            mean=statistics.fmean(values),
            median=float(statistics.median(values)),
            max=max(values),
            total=sum(values),
        )


@dataclass(frozen=True)
class ValidationReport:
    """Everything :func:`validate_file` found, plus the dataset's token statistics.

    ``problems`` make the file unusable for training (OpenAI would reject it or silently
    train on something else); ``warnings`` are worth a look but do not block.
    ``billed_tokens_per_epoch`` is Σ min(limit, tokens per example), what one epoch bills.
    """

    source: str
    model: str
    n_examples: int
    problems: tuple[DataProblem, ...]
    warnings: tuple[DataProblem, ...]
    tokens: TokenStats
    assistant_tokens: TokenStats
    messages: TokenStats
    max_tokens_per_example: int
    n_over_limit: int
    billed_tokens_per_epoch: int
    tokens_per_example: tuple[int, ...] = field(repr=False, default=())

    @property
    def ok(self) -> bool:
        """True when there are no blocking problems."""
        return not self.problems

    def raise_for_problems(self) -> None:
        """Raise :class:`TrainingDataError` carrying every problem, if there are any."""
        if self.problems:
            shown = "\n".join(f"  {p}" for p in self.problems[:25])
            more = len(self.problems) - 25
            if more > 0:
                shown += f"\n  ... and {more} more"
            raise TrainingDataError(
                f"training file {self.source} has {len(self.problems)} problem(s):\n{shown}",
                self.problems,
            )

    def summary(self) -> str:
        """A human-readable multi-line summary (what ``ragft finetune validate`` prints)."""
        lines = [
            f"{self.source}: {self.n_examples} examples, tokenised for {self.model}",
            f"  tokens/example: min {self.tokens.min}, mean {self.tokens.mean:.1f}, "
            f"max {self.tokens.max} (limit {self.max_tokens_per_example})",
            f"  assistant tokens/example: min {self.assistant_tokens.min}, "
            f"mean {self.assistant_tokens.mean:.1f}, max {self.assistant_tokens.max}",
            f"  messages/example: min {self.messages.min}, max {self.messages.max}",
            f"  billed tokens per epoch: {self.billed_tokens_per_epoch}",
        ]
        for warning in self.warnings:
            lines.append(f"  warning: {warning}")
        if self.problems:
            lines.append(f"  {len(self.problems)} problem(s):")
            lines.extend(f"    {p}" for p in self.problems)
        else:
            lines.append("  no problems found")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "source": self.source,
            "model": self.model,
            "n_examples": self.n_examples,
            "ok": self.ok,
            "problems": [p.to_dict() for p in self.problems],
            "warnings": [w.to_dict() for w in self.warnings],
            "tokens": to_record(self.tokens),
            "assistant_tokens": to_record(self.assistant_tokens),
            "messages": to_record(self.messages),
            "max_tokens_per_example": self.max_tokens_per_example,
            "n_over_limit": self.n_over_limit,
            "billed_tokens_per_epoch": self.billed_tokens_per_epoch,
        }


def _message_for_count(message: Mapping[str, Any]) -> dict[str, str]:
    # The model sees role, content, name and tool/function calls as text; ``weight`` is a
    # training directive, not input, so it is not tokenised.
    out: dict[str, str] = {}
    for key, value in message.items():
        if key == "weight" or value is None:
            continue
        out[key] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return out


def _check_message(line: int, index: int, message: Any, problems: list[DataProblem]) -> None:
    where = f"message {index + 1}"
    if not isinstance(message, Mapping):
        problems.append(DataProblem(line, "message_not_object",
                                    f"{where} is {type(message).__name__}, expected an object "
                                    "with 'role' and 'content'"))
        return
    role = message.get("role")
    if "role" not in message:
        problems.append(DataProblem(line, "message_missing_role",
                                    f"{where} has no 'role'; add one of {sorted(ALLOWED_ROLES)}"))
    elif role not in ALLOWED_ROLES:
        problems.append(DataProblem(
            line, "unrecognized_role", f"{where} has role {role!r}; use one of "
            f"{sorted(ALLOWED_ROLES)}"
        ))
    unknown = sorted(set(message) - ALLOWED_MESSAGE_KEYS)
    if unknown:
        problems.append(DataProblem(line, "unrecognized_key",
                                    f"{where} has unknown key(s) {unknown}; allowed keys are "
                                    f"{sorted(ALLOWED_MESSAGE_KEYS)} — remove or rename them"))
    has_call = bool(message.get("function_call") or message.get("tool_calls"))
    if "content" not in message and not has_call:
        problems.append(DataProblem(
            line, "message_missing_content",
            f"{where} ({role or 'no role'}) has no 'content'; add the text"
        ))
    elif "content" in message:
        content = message["content"]
        if content is None:
            if not has_call:
                problems.append(DataProblem(line, "empty_content",
                                            f"{where} ({role}) has null content; give it text"))
        elif not isinstance(content, str):
            problems.append(DataProblem(line, "content_not_string",
                                        f"{where} ({role}) content is {type(content).__name__}; "
                                        "it must be a string"))
        elif not content.strip():
            problems.append(DataProblem(line, "empty_content",
                                        f"{where} ({role}) has empty content; give it text or "
                                        "drop the message"))
    if "weight" in message:
        if message.get("weight") not in (0, 1):
            problems.append(DataProblem(line, "bad_weight",
                                        f"{where} has weight {message.get('weight')!r}; "
                                        "weight must be 0 or 1"))
        elif role != "assistant":
            problems.append(DataProblem(line, "bad_weight",
                                        f"{where} ({role}) has a weight; only assistant messages "
                                        "can be weighted"))


def _validate(
    rows: Sequence[tuple[int, Any]],
    *,
    source: str,
    model: str,
    max_tokens_per_example: int,
    min_examples: int,
    blank_lines: Sequence[int] = (),
) -> ValidationReport:
    problems: list[DataProblem] = [
        DataProblem(n, "blank_line", "blank line; remove it (every line must be one example)")
        for n in blank_lines
    ]
    warnings: list[DataProblem] = []
    seen: dict[str, int] = {}
    token_counts: list[int] = []
    assistant_counts: list[int] = []
    message_counts: list[int] = []
    n_over = 0
    billed = 0
    n_examples = 0
    n_no_system = 0
    n_no_user = 0
    for line, obj in rows:
        if isinstance(obj, json.JSONDecodeError):
            problems.append(DataProblem(line, "invalid_json",
                                        f"not valid JSON ({obj.msg} at column {obj.colno}); "
                                        "each line must be one complete JSON object"))
            continue
        if not isinstance(obj, dict):
            problems.append(DataProblem(line, "not_object",
                                        f"expected a JSON object, got {type(obj).__name__}"))
            continue
        n_examples += 1
        if "messages" not in obj:
            problems.append(DataProblem(line, "missing_messages",
                                        "no 'messages' key; each example needs "
                                        '{"messages": [{"role": ..., "content": ...}, ...]}'))
            continue
        messages = obj["messages"]
        if not isinstance(messages, list) or not messages:
            problems.append(DataProblem(line, "messages_not_list",
                                        "'messages' must be a non-empty list of message objects"))
            continue
        before = len(problems)
        for index, message in enumerate(messages):
            _check_message(line, index, message, problems)
        roles = [m.get("role") for m in messages if isinstance(m, Mapping)]
        if "assistant" not in roles:
            problems.append(DataProblem(line, "missing_assistant",
                                        "assistant message missing; add the reply the model "
                                        "should learn"))
        if "system" not in roles:
            n_no_system += 1
        if "user" not in roles:
            n_no_user += 1
        key = json.dumps(obj, sort_keys=True, ensure_ascii=False)
        if key in seen:
            problems.append(DataProblem(line, "duplicate",
                                        f"exact duplicate of line {seen[key]}; remove one"))
        else:
            seen[key] = line
        if len(problems) > before and any(
            p.code in {"message_not_object", "content_not_string"} for p in problems[before:]
        ):
            continue  # cannot be tokenised meaningfully
        valid = [m for m in messages if isinstance(m, Mapping)]
        n_tokens = count_chat_tokens([_message_for_count(m) for m in valid], model)
        n_assistant = sum(
            count_tokens(m.get("content") or "", model)
            for m in valid
            if m.get("role") == "assistant" and isinstance(m.get("content"), str)
        )
        token_counts.append(n_tokens)
        assistant_counts.append(n_assistant)
        message_counts.append(len(messages))
        billed += min(n_tokens, max_tokens_per_example)
        if n_tokens > max_tokens_per_example:
            n_over += 1
            problems.append(DataProblem(line, "too_many_tokens",
                                        f"example has {n_tokens} tokens, over the "
                                        f"{max_tokens_per_example}-token limit; it would be "
                                        "truncated — shorten or split it"))
    if n_examples < min_examples:
        problems.append(DataProblem(None, "too_few_examples",
                                    f"only {n_examples} example(s); fine-tuning needs at least "
                                    f"{min_examples} (50-100 well-chosen ones is a good start)"))
    if n_no_system:
        warnings.append(DataProblem(None, "missing_system",
                                    f"{n_no_system} example(s) have no system message; use the "
                                    "same system prompt in training and at inference"))
    if n_no_user:
        warnings.append(DataProblem(None, "missing_user",
                                    f"{n_no_user} example(s) have no user message"))
    problems.sort(key=lambda p: (p.line is None, p.line or 0))
    return ValidationReport(
        source=source,
        model=model,
        n_examples=n_examples,
        problems=tuple(problems),
        warnings=tuple(warnings),
        tokens=TokenStats.of(token_counts),
        assistant_tokens=TokenStats.of(assistant_counts),
        messages=TokenStats.of(message_counts),
        max_tokens_per_example=max_tokens_per_example,
        n_over_limit=n_over,
        billed_tokens_per_epoch=billed,
        tokens_per_example=tuple(token_counts),
    )


def validate_file(
    path: str | Path,
    *,
    model: str,
    max_tokens_per_example: int = DEFAULT_MAX_TOKENS_PER_EXAMPLE,
    min_examples: int = MIN_EXAMPLES,
    raise_on_error: bool = False,
) -> ValidationReport:
    """Check a chat fine-tuning JSONL file the way the OpenAI cookbook does, line by line.

    Problems found (each with its 1-based line number and the fix): a line that is not valid
    JSON or not an object; no ``messages`` list; a message that is not an object, lacks a role
    or content, has a role outside {system, user, assistant, tool, function}, has keys other
    than role/content/name/weight/function_call/tool_calls/tool_call_id, has empty or
    non-string content, or a weight other than 0/1; no assistant message; more tokens than
    ``max_tokens_per_example`` (counted with ``model``'s tokenizer); an exact duplicate of an
    earlier line; blank lines; and, for the whole file, fewer than ``min_examples`` examples.
    With ``raise_on_error`` a file with problems raises :class:`TrainingDataError`.
    """
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError as exc:
        raise TrainingDataError(f"{path} is not UTF-8 text ({exc}); re-save it as UTF-8") from exc
    except OSError as exc:
        raise TrainingDataError(f"cannot read training file {path}: {exc}") from exc
    rows: list[tuple[int, Any]] = []
    blanks: list[int] = []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline does not start another line
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            blanks.append(number)
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            rows.append((number, exc))
    report = _validate(
        rows,
        source=str(path),
        model=model,
        max_tokens_per_example=max_tokens_per_example,
        min_examples=min_examples,
        blank_lines=blanks,
    )
    if raise_on_error:
        report.raise_for_problems()
    return report


def validate_examples(
    examples: Sequence[Any],
    *,
    model: str,
    max_tokens_per_example: int = DEFAULT_MAX_TOKENS_PER_EXAMPLE,
    min_examples: int = MIN_EXAMPLES,
    raise_on_error: bool = False,
    source: str = "<examples>",
) -> ValidationReport:
    """:func:`validate_file` for examples in memory; "line" numbers are 1-based positions."""
    report = _validate(
        list(enumerate(examples, start=1)),
        source=source,
        model=model,
        max_tokens_per_example=max_tokens_per_example,
        min_examples=min_examples,
    )
    if raise_on_error:
        report.raise_for_problems()
    return report


# --------------------------------------------------------------------------- cost

#: The cookbook's default-epochs rule (OpenAI's "auto" n_epochs): aim for 3 epochs, but see
#: at least 100 and at most 25,000 example-passes in total, within 1..25 epochs.
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25


def auto_epochs(n_examples: int) -> int:
    """Epochs OpenAI picks for ``n_epochs="auto"``, per the cookbook's rule.

    * 3 epochs by default;
    * small sets: if ``n × 3 < 100``, ``min(25, ceil(100 / n))`` so the model sees at least
      ~100 example-passes (the cookbook writes ``100 // n``; ragft rounds up so the estimate
      never undershoots the bill);
    * large sets: if ``n × 3 > 25,000``, ``max(1, floor(25,000 / n))``.

    >>> auto_epochs(10), auto_epochs(30), auto_epochs(100), auto_epochs(10_000)
    (10, 4, 3, 2)
    """
    if n_examples <= 0:
        raise ValueError("auto_epochs needs at least one example")
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_DEFAULT_EPOCHS, math.ceil(MIN_TARGET_EXAMPLES / n_examples))
    if n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return TARGET_EPOCHS


def _fine_tunable(prices: PriceTable, today: dt.date) -> list[str]:
    return sorted(
        name
        for name, p in prices.models.items()
        if p.training is not None and (p.shutdown is None or p.shutdown > today)
    )


def check_base_model(
    model: str, prices: PriceTable, *, today: dt.date | None = None
) -> ModelPrice | None:
    """The price entry of a fine-tunable base ``model``; ``None`` for ragft's free local models.

    Raises :class:`ModelRetiredError` when the price table's ``shutdown`` date has passed, and
    :class:`FineTuneError` when the model is unknown or has no training price.
    """
    today = today or dt.date.today()
    if prices.is_free(model):
        return None
    alternatives = _fine_tunable(prices, today)
    hint = (
        f"fine-tunable models still running: {', '.join(alternatives)}"
        if alternatives
        else "no OpenAI model in the price table can still be fine-tuned; train locally with "
        "`--backend local`"
    )
    try:
        found = prices.lookup(model)
    except KeyError:
        raise FineTuneError(f"unknown base model {model!r}: it is not in the price table; {hint}") \
            from None
    if found is None:
        raise FineTuneError(f"base model {model!r} is explicitly unpriced, so its training cost "
                            f"cannot be estimated; {hint}")
    price, _ = found
    if price.training is None:
        raise FineTuneError(f"{model!r} cannot be fine-tuned (no training price); {hint}")
    if price.shutdown is not None and price.shutdown <= today:
        raise ModelRetiredError(
            f"base model {model!r} was shut down on {price.shutdown.isoformat()}: it can no "
            f"longer be fine-tuned or served; {hint}"
        )
    return price


@dataclass(frozen=True, slots=True)
class TrainingEstimate:
    """What a fine-tuning job will bill, before it runs.

    ``billed_tokens = tokens_per_epoch × epochs`` where ``tokens_per_epoch`` is
    Σ min(limit, tokens per example); ``cost_usd = billed_tokens × rate / 1M``.
    ``shutdown`` is the base model's announced shutdown: the tuned model stops working then.
    """

    model: str
    n_examples: int
    epochs: int
    epochs_auto: bool
    tokens_per_epoch: int
    billed_tokens: int
    rate_per_million: float
    cost_usd: float
    max_tokens_per_example: int
    n_over_limit: int
    shutdown: dt.date | None = None

    def summary(self) -> str:
        """One paragraph for the CLI."""
        how = "auto" if self.epochs_auto else "given"
        text = (
            f"{self.n_examples} examples × {self.epochs} epochs ({how}) on {self.model}: "
            f"{self.tokens_per_epoch} tokens/epoch, {self.billed_tokens} billed tokens "
            f"× ${self.rate_per_million:.2f}/1M = ${self.cost_usd:.4f}"
        )
        if self.n_over_limit:
            text += f" ({self.n_over_limit} example(s) truncated at {self.max_tokens_per_example})"
        if self.shutdown:
            text += (f"\nnote: {self.model} shuts down on {self.shutdown.isoformat()}; "
                     "a model fine-tuned from it stops working then too")
        return text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the shutdown date as ISO text)."""
        return to_record(self)


def estimate_training(
    source: str | Path | Sequence[Mapping[str, Any]],
    *,
    model: str,
    epochs: int | Literal["auto"] = "auto",
    prices: PriceTable | None = None,
    today: dt.date | None = None,
    max_tokens_per_example: int = DEFAULT_MAX_TOKENS_PER_EXAMPLE,
) -> TrainingEstimate:
    """Billed training tokens and cost of fine-tuning ``model`` on ``source``.

    ``source`` is a JSONL path or a list of examples. Tokens per example are counted with the
    model's tokenizer exactly as :func:`validate_file` does; each is capped at
    ``max_tokens_per_example`` (longer examples are truncated, and billed truncated).
    ``epochs="auto"`` follows :func:`auto_epochs`. Unknown, non-fine-tunable and retired base
    models are refused (:func:`check_base_model`); the local backend's models cost 0.
    """
    prices = prices if prices is not None else PriceTable.load()
    price = check_base_model(model, prices, today=today)
    if isinstance(source, (str, Path)):
        report = validate_file(source, model=model, max_tokens_per_example=max_tokens_per_example,
                               min_examples=0)
    else:
        report = validate_examples(source, model=model,
                                   max_tokens_per_example=max_tokens_per_example, min_examples=0)
    n = len(report.tokens_per_example)
    if n == 0:
        raise TrainingDataError(f"{report.source}: no usable examples to estimate")
    if epochs == "auto":
        n_epochs, is_auto = auto_epochs(n), True
    else:
        if not isinstance(epochs, int) or isinstance(epochs, bool) or not 1 <= epochs <= 50:
            raise ConfigError(f"epochs must be 'auto' or an integer from 1 to 50, got {epochs!r}")
        n_epochs, is_auto = epochs, False
    per_epoch = report.billed_tokens_per_epoch
    billed = per_epoch * n_epochs
    rate = price.training if price is not None and price.training is not None else 0.0
    return TrainingEstimate(
        model=model,
        n_examples=n,
        epochs=n_epochs,
        epochs_auto=is_auto,
        tokens_per_epoch=per_epoch,
        billed_tokens=billed,
        rate_per_million=rate,
        cost_usd=billed * rate / 1_000_000,
        max_tokens_per_example=max_tokens_per_example,
        n_over_limit=report.n_over_limit,
        shutdown=price.shutdown if price is not None else None,
    )
