"""The model registry: named models with numbered versions, gated promotion and rollback.

A strategy asks for ``registry:generator`` (the promoted version of ``generator``) or
``registry:generator@3`` and gets a concrete model id from :meth:`ModelRegistry.resolve`; a
retrained model becomes the answer to that name only after it has been evaluated on held-out
data and *promoted* through a quality gate, and a bad promotion is undone with
:meth:`ModelRegistry.rollback` — the history of promotions is kept.

The registry is one JSON file. Writers take an exclusive lock and replace the file atomically;
readers never lock and always see a complete file.

:func:`evaluate_model` produces the held-out metrics the gate checks: exact match and token F1
against the training file's assistant messages (:mod:`ragft.metrics`), plus label
accuracy for routers.

A version can record the *corpus* it was trained against (:class:`CorpusIdentity`: a
fingerprint of the knowledge base's document ids and content hashes). :func:`check_corpus`
compares it with the index a strategy is about to use and warns
(:class:`CorpusMismatchWarning`) when they differ: a fine-tuned model (a router, a generator,
a LoRA adapter) learned one set of documents and would silently serve another. Every backend
records and checks identities through these two names.
"""

from __future__ import annotations

import builtins
import hashlib
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ragft.metrics import exact_match, normalize_answer, token_f1
from ragft.errors import RegistryError
from ragft.serialize import from_record, to_record
from ragft.storage import atomic_write_json, locked, read_json
from ragft.models.base import ChatModel
from ragft.models.local_ft import LOCAL_FT_PREFIX
from ragft.prompts import ABSTAIN_TEXT

__all__ = [
    "REGISTRY_PREFIX",
    "CorpusIdentity",
    "CorpusMismatchWarning",
    "Gate",
    "GateResult",
    "ModelRegistry",
    "ModelVersion",
    "VersionStatus",
    "check_corpus",
    "evaluate_model",
]

REGISTRY_PREFIX = "registry:"

#: ``candidate``: registered, never promoted. ``promoted``: what ``registry:NAME`` resolves to.
#: ``archived``: was promoted, replaced by a newer promotion. ``rolled_back``: was promoted
#: and withdrawn by a rollback.
VersionStatus = Literal["candidate", "promoted", "archived", "rolled_back"]


class CorpusMismatchWarning(UserWarning):
    """A registered model is used against another corpus than the one it was trained on."""


@dataclass(frozen=True, slots=True)
class CorpusIdentity:
    """Which documents a knowledge base held: a SHA-256 over its sorted ``(document id,
    content hash)`` pairs, and how many there were (for a readable warning)."""

    fingerprint: str
    documents: int

    @classmethod
    def of(cls, documents: Mapping[str, str]) -> CorpusIdentity:
        """The identity of ``documents`` (document id -> content hash); order does not matter."""
        digest = hashlib.sha256()
        for doc_id, content_hash in sorted(documents.items()):
            digest.update(f"{doc_id}\x00{content_hash}\n".encode())
        return cls(digest.hexdigest(), len(documents))

    def describe(self) -> str:
        """``"58 documents (fingerprint 1a2b3c4d5e6f)"``."""
        plural = "" if self.documents == 1 else "s"
        return f"{self.documents} document{plural} (fingerprint {self.fingerprint[:12]})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"fingerprint": self.fingerprint, "documents": self.documents}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> CorpusIdentity | None:
        """Inverse of :meth:`to_dict`; ``None`` for a version registered without one."""
        if not data:
            return None
        return cls(str(data["fingerprint"]), int(data["documents"]))


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One registered version of a named model.

    A LoRA version also records where its adapter is (``adapter_path``: the directory with
    the adapter files and their ``lora.json`` manifest), the base model file or directory it
    applies to (``base_model_path``: pointed at, never copied) and its ``hyperparameters``.
    """

    name: str
    version: int
    model_id: str
    base_model: str
    purpose: str
    job_id: str | None = None
    training_file_sha256: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    created_at: float = 0.0
    status: VersionStatus = "candidate"
    backend: str | None = None
    corpus: CorpusIdentity | None = None
    adapter_path: str | None = None
    base_model_path: str | None = None
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """``registry:NAME@VERSION``."""
        return f"{REGISTRY_PREFIX}{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``corpus`` only when recorded: older records keep their shape)."""
        record = to_record(self)
        for name in ("corpus", "adapter_path", "base_model_path", "hyperparameters"):
            if not record[name]:  # added later: written only when set, old records unchanged
                del record[name]
        return record

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelVersion:
        """Inverse of :meth:`to_dict` (unknown keys ignored)."""
        return from_record(cls, data)


@dataclass(frozen=True, slots=True)
class Gate:
    """A promotion condition: the version's held-out ``metric`` must be >= ``min_value``."""

    metric: str
    min_value: float

    def __post_init__(self) -> None:
        if not self.metric:
            raise ValueError("a gate needs a metric name")


@dataclass(frozen=True, slots=True)
class GateResult:
    """The outcome of checking a :class:`Gate` against a version's metrics."""

    passed: bool
    metric: str
    value: float | None
    min_value: float

    def __str__(self) -> str:
        shown = "missing" if self.value is None else f"{self.value:.4f}"
        verdict = "passes" if self.passed else "fails"
        return f"{self.metric} = {shown} {verdict} the gate (>= {self.min_value:.4f})"


def _empty() -> dict[str, Any]:
    return {"format": 1, "models": {}}


class ModelRegistry:
    """Named, versioned models in one JSON file (``cfg.home_path / "registry.json"``)."""

    def __init__(self, path: str | Path, *, clock: Any = time.time):
        self.path = Path(path)
        self.clock = clock

    # -- storage -------------------------------------------------------------------------
    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            return _empty()
        try:
            data = read_json(self.path)
        except ValueError as exc:
            raise RegistryError(
                f"model registry {self.path} is not valid JSON ({exc}); restore it from a backup"
            ) from exc
        if not isinstance(data, dict) or "models" not in data:
            raise RegistryError(f"model registry {self.path} has an unexpected layout")
        return data

    def _entry(self, data: Mapping[str, Any], name: str) -> dict[str, Any]:
        try:
            return data["models"][name]
        except KeyError:
            known = ", ".join(sorted(data["models"])) or "none"
            raise RegistryError(
                f"no model named {name!r} in the registry (known: {known}); register one with "
                "`ragft models register`"
            ) from None

    @staticmethod
    def _version(entry: Mapping[str, Any], name: str, version: int) -> dict[str, Any]:
        for v in entry["versions"]:
            if v["version"] == version:
                return v
        have = ", ".join(str(v["version"]) for v in entry["versions"]) or "none"
        raise RegistryError(f"model {name!r} has no version {version} (versions: {have})")

    # -- writing -------------------------------------------------------------------------
    def register(
        self,
        name: str,
        *,
        model_id: str,
        base_model: str,
        purpose: str,
        job_id: str | None = None,
        training_file_sha256: str | None = None,
        metrics: Mapping[str, float] | None = None,
        backend: str | None = None,
        corpus: CorpusIdentity | None = None,
        adapter_path: str | None = None,
        base_model_path: str | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Add a new version of ``name`` (numbered 1, 2, ...) as a candidate.

        ``corpus`` is the knowledge base the model was trained against, when there is one;
        :func:`check_corpus` compares it with the index the model is later used with.
        ``adapter_path``, ``base_model_path`` and ``hyperparameters`` describe a LoRA version.
        """
        if not name or any(c in name for c in ":@/ "):
            raise RegistryError(f"model name {name!r} must be non-empty without ':', '@', '/' "
                                "or spaces")
        with locked(self.path):
            data = self._read()
            entry = data["models"].setdefault(name, {"versions": [], "promoted": None,
                                                     "history": []})
            number = max((v["version"] for v in entry["versions"]), default=0) + 1
            version = ModelVersion(
                name=name,
                version=number,
                model_id=model_id,
                base_model=base_model,
                purpose=purpose,
                job_id=job_id,
                training_file_sha256=training_file_sha256,
                metrics={k: float(v) for k, v in (metrics or {}).items()},
                created_at=float(self.clock()),
                backend=backend,
                corpus=corpus,
                adapter_path=adapter_path,
                base_model_path=base_model_path,
                hyperparameters=dict(hyperparameters or {}),
            )
            entry["versions"].append(version.to_dict())
            atomic_write_json(self.path, data)
        return version

    def set_metrics(self, name: str, version: int, metrics: Mapping[str, float]) -> ModelVersion:
        """Merge held-out ``metrics`` into a version's record."""
        with locked(self.path):
            data = self._read()
            record = self._version(self._entry(data, name), name, version)
            record["metrics"] = {**record.get("metrics", {}),
                                 **{k: float(v) for k, v in metrics.items()}}
            atomic_write_json(self.path, data)
        return ModelVersion.from_dict(record)

    def evaluate_gate(
        self,
        name: str,
        version: int,
        metrics: Mapping[str, float] | None = None,
        *,
        metric: str,
        min_value: float,
    ) -> GateResult:
        """Check ``metric >= min_value`` for a version (storing ``metrics`` first, if given)."""
        record = self.set_metrics(name, version, metrics) if metrics else self.get(name, version)
        value = record.metrics.get(metric)
        return GateResult(value is not None and value >= min_value, metric, value, min_value)

    def promote(self, name: str, version: int, *, gate: Gate | None = None) -> ModelVersion:
        """Make ``version`` what ``registry:NAME`` resolves to.

        With a ``gate``, refuses (:class:`~ragft.errors.RegistryError` naming the metric, its
        value and the threshold) unless the version's stored held-out metric passes it. The
        previously promoted version becomes ``archived`` and stays in the history, so
        :meth:`rollback` can return to it.
        """
        with locked(self.path):
            data = self._read()
            entry = self._entry(data, name)
            record = self._version(entry, name, version)
            if gate is not None:
                value = record.get("metrics", {}).get(gate.metric)
                if value is None:
                    have = ", ".join(sorted(record.get("metrics", {}))) or "none"
                    raise RegistryError(
                        f"cannot promote {name}@{version}: it has no {gate.metric!r} metric "
                        f"(has: {have}); evaluate it on held-out data first"
                    )
                if value < gate.min_value:
                    raise RegistryError(
                        f"refusing to promote {name}@{version}: held-out {gate.metric} = "
                        f"{value:.4f} is below the gate's minimum {gate.min_value:.4f}"
                    )
            current = entry.get("promoted")
            if current == version:
                return ModelVersion.from_dict(record)
            if current is not None:
                self._version(entry, name, current)["status"] = "archived"
            record["status"] = "promoted"
            entry["promoted"] = version
            entry["history"].append({"action": "promote", "version": version,
                                     "previous": current, "at": float(self.clock()),
                                     "gate": None if gate is None else
                                     {"metric": gate.metric, "min_value": gate.min_value}})
            atomic_write_json(self.path, data)
        return ModelVersion.from_dict(record)

    def rollback(self, name: str) -> ModelVersion:
        """Return ``name`` to the version promoted before the current one.

        The withdrawn version is marked ``rolled_back`` and skipped by later rollbacks; the
        history records the rollback. Raises when there is nothing to roll back to.
        """
        with locked(self.path):
            data = self._read()
            entry = self._entry(data, name)
            current = entry.get("promoted")
            if current is None:
                raise RegistryError(f"model {name!r} has no promoted version to roll back")
            # Replay the history as a stack: a promotion pushes, a rollback pops. What lies
            # under the current version is what was live before it.
            stack: list[int] = []
            for h in entry["history"]:
                if h["action"] == "promote" and (not stack or stack[-1] != h["version"]):
                    stack.append(h["version"])
                elif h["action"] == "rollback" and stack:
                    stack.pop()
            below = [v for v in stack[:-1] if v != current]
            target = below[-1] if below else None
            if target is None:
                raise RegistryError(
                    f"model {name!r}: no earlier promoted version to roll back to from "
                    f"version {current}"
                )
            self._version(entry, name, current)["status"] = "rolled_back"
            record = self._version(entry, name, target)
            record["status"] = "promoted"
            entry["promoted"] = target
            entry["history"].append({"action": "rollback", "version": current,
                                     "to": target, "at": float(self.clock())})
            atomic_write_json(self.path, data)
        return ModelVersion.from_dict(record)

    # -- reading -------------------------------------------------------------------------
    def get(self, name: str, version: int | None = None) -> ModelVersion:
        """A version of ``name``; ``None`` means the promoted one."""
        data = self._read()
        entry = self._entry(data, name)
        if version is None:
            version = entry.get("promoted")
            if version is None:
                raise RegistryError(
                    f"model {name!r} has no promoted version; promote one with "
                    f"`ragft models promote {name} VERSION`"
                )
        return ModelVersion.from_dict(self._version(entry, name, version))

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, oldest first."""
        entry = self._entry(self._read(), name)
        return [ModelVersion.from_dict(v) for v in entry["versions"]]

    def history(self, name: str) -> list[dict[str, Any]]:
        """Promotions and rollbacks of ``name``, oldest first."""
        return [dict(h) for h in self._entry(self._read(), name)["history"]]

    def list(self) -> builtins.list[ModelVersion]:
        """Every version of every model, by name then version."""
        data = self._read()
        return [
            ModelVersion.from_dict(v)
            for name in sorted(data["models"])
            for v in data["models"][name]["versions"]
        ]

    def names(self) -> builtins.list[str]:
        """Registered model names."""
        return sorted(self._read()["models"])

    def resolve(self, ref: str) -> str:
        """The model id behind ``registry:NAME`` (promoted) or ``registry:NAME@N``.

        Anything not starting with ``registry:`` is already a model id and is returned as is.
        """
        version = self.version_for(ref)
        return ref if version is None else version.model_id

    def version_for(self, ref: str) -> ModelVersion | None:
        """The version ``registry:NAME[@N]`` names (``None`` for a plain model id)."""
        if not ref.startswith(REGISTRY_PREFIX):
            return None
        spec = ref[len(REGISTRY_PREFIX):]
        name, _, number = spec.partition("@")
        if not name:
            raise RegistryError(f"bad registry reference {ref!r}; use registry:NAME[@VERSION]")
        version: int | None = None
        if number:
            try:
                version = int(number)
            except ValueError:
                raise RegistryError(f"bad version in {ref!r}: {number!r} is not a number") \
                    from None
        return self.get(name, version)


# --------------------------------------------------------------------------- corpus identity


def check_corpus(version: ModelVersion, current: CorpusIdentity | None, *,
                 stacklevel: int = 2) -> bool:
    """Whether ``version`` was trained against the corpus ``current`` identifies.

    Warns with :class:`CorpusMismatchWarning` (and returns ``False``) when both identities are
    known and differ. A version registered without one, or no index to compare with, is
    assumed to match: there is nothing to say.
    """
    if version.corpus is None or current is None or version.corpus == current:
        return True
    warnings.warn(
        f"model {version.name}@{version.version} ({version.model_id}) was trained against "
        f"a corpus of {version.corpus.describe()}, but the index it is used with holds "
        f"{current.describe()}; its answers may refer to documents that changed or are "
        f"missing. Retrain it on the current corpus (and register the new version), or "
        f"point the config at the index it was trained for",
        CorpusMismatchWarning,
        stacklevel=stacklevel + 1,
    )
    return False


# --------------------------------------------------------------------------- evaluation


def _split(example: Mapping[str, Any]) -> tuple[list[dict[str, Any]], str]:
    messages = list(example.get("messages") or ())
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") == "assistant":
            return [dict(m) for m in messages[:i]], str(messages[i].get("content") or "")
    raise RegistryError("evaluation example has no assistant message to compare against")


def evaluate_model(
    model: ChatModel,
    examples: Iterable[Mapping[str, Any]],
    *,
    purpose: str | None = None,
    labels: Sequence[str] | None = None,
) -> dict[str, float]:
    """Held-out quality of ``model`` on chat examples (the final assistant message is gold).

    Each example's messages up to its last assistant message are sent; the reply is scored
    with :func:`~ragft.metrics.exact_match` and :func:`~ragft.metrics.token_f1`.
    Returns ``{"n", "exact_match", "f1", "abstain_rate"}``, ``answered_f1`` (mean F1 over the
    replies that were not :data:`~ragft.models.local.ABSTAIN_TEXT` — the precision a cascade
    relies on) and ``mean_confidence`` when known, plus, for
    routers (``purpose="router"``, or a ``local-ft:router:`` model), ``accuracy`` — the
    normalised label equals the gold label — and ``valid_label_rate`` when ``labels`` is given.
    """
    is_router = purpose == "router" or model.name.startswith(f"{LOCAL_FT_PREFIX}router:")
    n = 0
    em = f1 = abstained = 0.0
    confidences: list[float] = []
    answered_f1: list[float] = []
    valid_labels = 0
    allowed = {normalize_answer(label) for label in labels} if labels else None
    for example in examples:
        prompt, gold = _split(example)
        completion = model.complete(prompt, temperature=0.0)
        n += 1
        em += exact_match(completion.text, gold)
        f1 += token_f1(completion.text, gold)
        did_abstain = completion.text.strip() == ABSTAIN_TEXT
        abstained += did_abstain
        if not did_abstain:
            answered_f1.append(token_f1(completion.text, gold))
        if completion.confidence is not None:
            confidences.append(completion.confidence)
        if allowed is not None and normalize_answer(completion.text) in allowed:
            valid_labels += 1
    if n == 0:
        raise RegistryError("evaluate_model needs at least one held-out example")
    result = {
        "n": float(n),
        "exact_match": em / n,
        "f1": f1 / n,
        "abstain_rate": abstained / n,
    }
    if answered_f1:
        # Precision when the model does answer: what a cascade relies on.
        result["answered_f1"] = sum(answered_f1) / len(answered_f1)
    if confidences:
        result["mean_confidence"] = sum(confidences) / len(confidences)
    if is_router:
        result["accuracy"] = em / n
    if allowed is not None:
        result["valid_label_rate"] = valid_labels / n
    return result
