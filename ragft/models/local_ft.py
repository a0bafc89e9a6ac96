"""Inference for models trained offline by :mod:`ragft.finetune.backends.local` (ids ``local-ft:...``).

A trained model is an *artifact directory* under ``models_dir`` holding ``model.json``
(purpose, ids, the embedder it was trained with, metrics, SHA-256 of every file) and its
numeric state in ``weights.npz``/``data.json``. This module only reads artifacts, so the model
layer stays independent of the fine-tuning layer that writes them.

* generator — nearest-neighbour memory over the training questions: answers with the stored
  answer of the closest training question; its confidence is a logistic calibration of the
  similarity (fitted on held-out data at training time), and below 0.5 it abstains with
  :data:`~ragft.models.local.ABSTAIN_TEXT`. It answers paraphrases of what it was trained on
  and nothing else — which is what fine-tuning on Q/A pairs teaches a small model, made
  explicit.
* rewriter — query + expansion terms learned from (query → rewrite) pairs.
* router — multinomial logistic regression on embeddings; the label is the completion text
  and its probability the ``score``.
* adapter — a d×d linear map applied to *query* embeddings only (:class:`AdaptedEmbedder`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragft.errors import ModelError, ModelNotFoundError
from ragft.tokens import estimate_chat_usage
from ragft.models.base import ChatModel, Completion, Embedder, Embeddings, EmbedKind, Message
from ragft.models.context import last_user_message
from ragft.prompts import ABSTAIN_TEXT
from ragft.storage import file_sha256
from ragft.textutil import content_words

__all__ = [
    "ARTIFACT_FORMAT",
    "LOCAL_FT_PREFIX",
    "AdaptedEmbedder",
    "LocalGeneratorModel",
    "LocalRewriterModel",
    "LocalRouterModel",
    "artifact_dir",
    "load_local_model",
    "parse_model_id",
    "read_artifact",
    "rewrite_query",
]

LOCAL_FT_PREFIX = "local-ft:"
#: Version of the artifact layout; bumped when it changes incompatibly.
ARTIFACT_FORMAT = 1


def parse_model_id(model_id: str) -> tuple[str, str, str]:
    """``(purpose, suffix, job_id)`` of ``local-ft:<purpose>:<suffix>:<job id>``."""
    parts = model_id.split(":")
    if len(parts) != 4 or parts[0] + ":" != LOCAL_FT_PREFIX or not all(parts[1:]):
        raise ModelNotFoundError(
            f"{model_id!r} is not a local fine-tuned model id "
            f"(expected {LOCAL_FT_PREFIX}<purpose>:<suffix>:<job id>)",
            model=model_id,
        )
    return parts[1], parts[2], parts[3]


def artifact_dir(models_dir: str | Path, model_id: str) -> Path:
    """Directory holding ``model_id``'s artifact (colons are not portable in file names)."""
    parse_model_id(model_id)
    return Path(models_dir) / model_id.replace(":", "__")


def read_artifact(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, Any]]:
    """``(manifest, arrays, data)`` of an artifact directory, verified against its hashes.

    Raises :class:`~ragft.errors.ModelNotFoundError` when it does not exist and
    :class:`~ragft.errors.ModelError` when it is incomplete or corrupt.
    """
    path = Path(path)
    manifest_path = path / "model.json"
    if not manifest_path.is_file():
        raise ModelNotFoundError(
            f"no local fine-tuned model at {path}: train it with `ragft finetune start FILE "
            "--backend local` or check the models directory",
            model=path.name.replace("__", ":"),
        )
    try:
        manifest = json.loads(manifest_path.read_text("utf-8"))
        files: Mapping[str, str] = manifest["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"model artifact {path} has a corrupt model.json ({exc}); retrain it") \
            from exc
    if manifest.get("format") != ARTIFACT_FORMAT:
        raise ModelError(
            f"model artifact {path} has format {manifest.get('format')!r}, this ragft reads "
            f"format {ARTIFACT_FORMAT}; retrain the model"
        )
    for name, digest in files.items():
        file = path / name
        if not file.is_file():
            raise ModelError(f"model artifact {path} is missing {name}; retrain it")
        if file_sha256(file) != digest:
            raise ModelError(
                f"model artifact file {file} is corrupt (SHA-256 mismatch); retrain it"
            )
    arrays: dict[str, np.ndarray] = {}
    if "weights.npz" in files:
        with np.load(path / "weights.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    data: dict[str, Any] = {}
    if "data.json" in files:
        data = json.loads((path / "data.json").read_text("utf-8"))
    return manifest, arrays, data


def _embed_one(embedder: Embedder, text: str) -> np.ndarray:
    return embedder.embed([text], kind="query").vectors[0]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, x))))


class _LocalChatModel:
    #: Each answers its one trained way whatever the prompt asks
    #: (see :func:`~ragft.models.base.follows_prompts`).
    follows_prompts = False

    def __init__(self, name: str, embedder: Embedder, manifest: Mapping[str, Any]):
        self._name = name
        self.embedder = embedder
        self.manifest = dict(manifest)

    @property
    def name(self) -> str:
        """The ``local-ft:...`` model id (free in the price table)."""
        return self._name

    @property
    def metrics(self) -> dict[str, float]:
        """Held-out figures recorded at training time."""
        return dict(self.manifest.get("metrics", {}))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r})"


class LocalGeneratorModel(_LocalChatModel):
    """Answers from a nearest-neighbour memory of training questions, or abstains.

    ``feature = s1 + (s1 - s2)``: the best cosine similarity plus its margin over the second
    best — a paraphrase matches one trained question clearly better than the others. The
    confidence is ``sigmoid(a·feature + b)`` with ``a, b`` calibrated on held-out questions.
    """

    def __init__(
        self,
        name: str,
        embedder: Embedder,
        question_vectors: np.ndarray,
        questions: Sequence[str],
        answers: Sequence[str],
        *,
        slope: float,
        intercept: float,
        threshold: float = 0.5,
        manifest: Mapping[str, Any] | None = None,
    ):
        super().__init__(name, embedder, manifest or {})
        self.question_vectors = np.asarray(question_vectors, dtype=np.float32)
        self.questions = list(questions)
        self.answers = list(answers)
        self.slope = float(slope)
        self.intercept = float(intercept)
        self.threshold = float(threshold)

    def nearest(self, question: str) -> tuple[int, float]:
        """Index of the closest training question and the calibrated confidence."""
        sims = self.question_vectors @ _embed_one(self.embedder, question)
        order = np.argsort(-sims)
        s1 = float(sims[order[0]])
        s2 = float(sims[order[1]]) if len(order) > 1 else 0.0
        return int(order[0]), _sigmoid(self.slope * (2 * s1 - s2) + self.intercept)

    def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float = 0.0,
        logprobs: bool = False,
    ) -> Completion:
        """Answer the last user message from memory, or abstain when it is not close enough."""
        question = last_user_message(messages)
        index, confidence = self.nearest(question)
        text = self.answers[index] if confidence >= self.threshold else ABSTAIN_TEXT
        usage = estimate_chat_usage(self.name, messages, text)
        finish = "length" if max_tokens is not None and usage.output_tokens > max_tokens else "stop"
        return Completion(text=text, usage=usage, model=self.name, finish_reason=finish,
                          score=round(confidence, 4))


class LocalRewriterModel(_LocalChatModel):
    """Rewrites a search query as its kept words plus learned expansion terms.

    A candidate term's score mixes (``alpha``) the strongest association P(term | query word)
    learned from the pairs with a similarity-weighted vote of the nearest training queries'
    rewrites (so unseen wordings still borrow expansions); terms scoring at least
    ``threshold`` are added, best first, up to ``max_terms``. Query words the training
    rewrites usually dropped ("ok", "fancy") are dropped too; unknown words are kept.
    """

    def __init__(
        self,
        name: str,
        embedder: Embedder,
        query_vectors: np.ndarray,
        rewrite_terms: Sequence[Sequence[str]],
        associations: Mapping[str, Mapping[str, float]],
        keep: Mapping[str, float],
        *,
        alpha: float,
        threshold: float,
        max_terms: int = 12,
        neighbours: int = 5,
        manifest: Mapping[str, Any] | None = None,
    ):
        super().__init__(name, embedder, manifest or {})
        self.query_vectors = np.asarray(query_vectors, dtype=np.float32)
        self.rewrite_terms = [list(t) for t in rewrite_terms]
        self.associations = {k: dict(v) for k, v in associations.items()}
        self.keep = dict(keep)
        self.alpha = float(alpha)
        self.threshold = float(threshold)
        self.max_terms = int(max_terms)
        self.neighbours = int(neighbours)

    def rewrite(self, query: str, *, exclude: int | None = None) -> tuple[str, float]:
        """The rewritten query and the best candidate's score (``exclude``: a memory row to
        ignore, used for leave-one-out tuning)."""
        return rewrite_query(
            query,
            _embed_one(self.embedder, query),
            self.query_vectors,
            self.rewrite_terms,
            self.associations,
            self.keep,
            alpha=self.alpha,
            threshold=self.threshold,
            max_terms=self.max_terms,
            neighbours=self.neighbours,
            exclude=exclude,
        )

    def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float = 0.0,
        logprobs: bool = False,
    ) -> Completion:
        """Rewrite the last user message."""
        text, score = self.rewrite(last_user_message(messages))
        return Completion(text=text, usage=estimate_chat_usage(self.name, messages, text), model=self.name,
                          score=round(score, 4))


def rewrite_query(
    query: str,
    query_vector: np.ndarray,
    memory_vectors: np.ndarray,
    rewrite_terms: Sequence[Sequence[str]],
    associations: Mapping[str, Mapping[str, float]],
    keep: Mapping[str, float],
    *,
    alpha: float,
    threshold: float,
    max_terms: int,
    neighbours: int,
    exclude: int | None = None,
) -> tuple[str, float]:
    """The rewriter's pure scoring function (shared by training-time tuning and inference)."""
    q_terms = list(dict.fromkeys(content_words(query)))
    kept = [t for t in q_terms if keep.get(t, 1.0) >= 0.5]
    scores: dict[str, float] = {}
    for t in q_terms:
        for u, p in associations.get(t, {}).items():
            scores[u] = max(scores.get(u, 0.0), alpha * p)
    if len(memory_vectors):
        sims = memory_vectors @ query_vector
        if exclude is not None:
            sims = sims.copy()
            sims[exclude] = -np.inf
        top = np.argsort(-sims)[:neighbours]
        weights = np.clip(sims[top], 0.0, None) ** 3  # sharpen: the closest queries dominate
        total = float(weights.sum())
        if total > 0:
            vote: dict[str, float] = {}
            for row, w in zip(top, weights, strict=True):
                for u in rewrite_terms[int(row)]:
                    vote[u] = vote.get(u, 0.0) + float(w) / total
            for u, v in vote.items():
                scores[u] = scores.get(u, 0.0) + (1 - alpha) * v
    chosen = [u for u, s in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
              if s >= threshold and u not in kept][:max_terms]
    best = max(scores.values(), default=0.0)
    terms = kept + chosen
    return (" ".join(terms) if terms else query.strip()), min(1.0, best)


class LocalRouterModel(_LocalChatModel):
    """Softmax classifier over embeddings: ``text`` is the label, ``score`` its probability;
    ``min_score`` is the threshold stored at training time."""

    def __init__(
        self,
        name: str,
        embedder: Embedder,
        weights: np.ndarray,
        bias: np.ndarray,
        labels: Sequence[str],
        *,
        manifest: Mapping[str, Any] | None = None,
    ):
        super().__init__(name, embedder, manifest or {})
        self.weights = np.asarray(weights, dtype=np.float64)
        self.bias = np.asarray(bias, dtype=np.float64)
        self.labels = list(labels)
        stored = self.manifest.get("min_score")
        #: The routing threshold chosen on validation data at training time (``None`` for a
        #: model trained before thresholds were stored).
        self.min_score: float | None = None if stored is None else float(stored)

    def probabilities(self, text: str) -> dict[str, float]:
        """Probability of every label for ``text``."""
        logits = _embed_one(self.embedder, text).astype(np.float64) @ self.weights + self.bias
        logits -= logits.max()
        p = np.exp(logits)
        p /= p.sum()
        return {label: float(v) for label, v in zip(self.labels, p, strict=True)}

    def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float = 0.0,
        logprobs: bool = False,
    ) -> Completion:
        """Classify the last user message."""
        probs = self.probabilities(last_user_message(messages))
        label = max(probs, key=lambda k: probs[k])
        return Completion(text=label, usage=estimate_chat_usage(self.name, messages, label), model=self.name,
                          score=round(probs[label], 4))


class AdaptedEmbedder:
    """An :class:`~ragft.models.base.Embedder` that applies a trained linear adapter to queries.

    ``kind="query"`` vectors become ``normalize(W @ v)``; ``kind="document"`` vectors are the
    inner embedder's, untouched — so an index built with the inner embedder stays valid and
    ``name`` (used for index compatibility and pricing) is the inner embedder's. The adapter
    in use is :attr:`adapter_id`.
    """

    def __init__(self, embedder: Embedder, adapter_path: str | Path):
        manifest, arrays, _ = read_artifact(adapter_path)
        if manifest.get("purpose") != "adapter" or "adapter" not in arrays:
            raise ModelError(f"{adapter_path} is a {manifest.get('purpose')!r} model, not an "
                             "embedding adapter")
        _check_embedder(manifest, embedder, Path(adapter_path))
        self.inner = embedder
        self.adapter_id = str(manifest.get("model_id", Path(adapter_path).name))
        self.matrix = arrays["adapter"].astype(np.float32)
        if self.matrix.shape != (embedder.dimension, embedder.dimension):
            raise ModelError(f"adapter {adapter_path} has shape {self.matrix.shape}, expected "
                             f"{embedder.dimension}x{embedder.dimension}; retrain it")
        self.metrics = dict(manifest.get("metrics", {}))

    @property
    def name(self) -> str:
        """The inner embedder's id (document vectors are unchanged)."""
        return self.inner.name

    @property
    def dimension(self) -> int:
        """Vector size (unchanged by the adapter)."""
        return self.inner.dimension

    def embed(self, texts: Sequence[str], *, kind: EmbedKind = "document") -> Embeddings:
        """Embed; queries go through the adapter and are re-normalised."""
        result = self.inner.embed(texts, kind=kind)
        if kind != "query" or not len(texts):
            return result
        adapted = result.vectors @ self.matrix.T
        norms = np.linalg.norm(adapted, axis=1, keepdims=True)
        return Embeddings((adapted / np.clip(norms, 1e-12, None)).astype(np.float32), result.usage)


def _check_embedder(manifest: Mapping[str, Any], embedder: Embedder, path: Path) -> None:
    trained = manifest.get("embedder", {})
    if trained.get("name") != embedder.name or trained.get("dimension") != embedder.dimension:
        raise ModelError(
            f"model {path.name} was trained with embedder {trained.get('name')!r} "
            f"({trained.get('dimension')}-d) but {embedder.name!r} ({embedder.dimension}-d) was "
            "given; load it with the same embedder or retrain"
        )


def load_local_model(model_id: str, models_dir: str | Path, embedder: Embedder) -> ChatModel:
    """Load a ``local-ft:`` generator, rewriter or router as a :class:`ChatModel`.

    ``embedder`` must be the one the model was trained with (checked). Embedding adapters are
    not chat models: wrap an embedder with :class:`AdaptedEmbedder` instead.
    """
    purpose, _, _ = parse_model_id(model_id)
    path = artifact_dir(models_dir, model_id)
    manifest, arrays, data = read_artifact(path)
    _check_embedder(manifest, embedder, path)
    try:
        if purpose == "generator":
            cal = manifest["calibration"]
            return LocalGeneratorModel(
                model_id, embedder, arrays["questions"], data["questions"], data["answers"],
                slope=cal["slope"], intercept=cal["intercept"],
                threshold=cal.get("threshold", 0.5), manifest=manifest,
            )
        if purpose == "rewriter":
            params = manifest["params"]
            return LocalRewriterModel(
                model_id, embedder, arrays["queries"], data["rewrite_terms"],
                data["associations"], data["keep"], alpha=params["alpha"],
                threshold=params["threshold"], max_terms=params["max_terms"],
                neighbours=params["neighbours"], manifest=manifest,
            )
        if purpose == "router":
            return LocalRouterModel(model_id, embedder, arrays["weights"], arrays["bias"],
                                    data["labels"], manifest=manifest)
    except KeyError as exc:
        raise ModelError(f"model artifact {path} lacks {exc}; retrain it") from exc
    if purpose == "adapter":
        raise ModelError(f"{model_id} is an embedding adapter, not a chat model: use "
                         f"AdaptedEmbedder(embedder, {str(path)!r})")
    raise ModelError(f"{model_id}: unknown local fine-tune purpose {purpose!r}")
