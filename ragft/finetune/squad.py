"""SQuAD 2.0 files (such as ``../shared/datasets/squad2-sample``) as a corpus, questions and
training pairs, split by article.

SQuAD 2.0 JSON is ``data[].title`` / ``paragraphs[].context`` / ``qas[] = {id, question,
answers[{text, answer_start}], is_impossible}``. Splitting by *article* (not by question)
keeps every paragraph of a test article out of training, so a score on the test side measures
reading, not recall of trained text.

:func:`write_squad_corpus` turns one side of the split into what ragft already reads: one text
document per paragraph (``<Title>/p07.txt``) to index, and a ``questions.jsonl`` in the layout
of :mod:`ragft.eval.questions`, where SQuAD's unanswerable questions become ``out_of_scope``
(their right answer is an abstention) and each answerable one names its paragraph as source.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragft.errors import TrainingDataError
from ragft.storage import atomic_write_text

__all__ = [
    "SquadArticle",
    "SquadQuestion",
    "SquadSplit",
    "load_squad",
    "paragraph_path",
    "question_record",
    "split_by_article",
    "write_squad_corpus",
]


@dataclass(frozen=True, slots=True)
class SquadQuestion:
    """One question with its gold answers (empty when unanswerable) and its paragraph."""

    id: str
    question: str
    answers: tuple[str, ...]
    article: str
    paragraph: int
    context: str

    @property
    def answerable(self) -> bool:
        """False for SQuAD 2.0's ``is_impossible`` questions."""
        return bool(self.answers)

    @property
    def document(self) -> str:
        """The corpus path of its paragraph, as :func:`write_squad_corpus` names it."""
        return paragraph_path(self.article, self.paragraph)


@dataclass(frozen=True, slots=True)
class SquadArticle:
    """One article: its title, paragraphs and questions."""

    title: str
    paragraphs: tuple[str, ...]
    questions: tuple[SquadQuestion, ...]


@dataclass(frozen=True, slots=True)
class SquadSplit:
    """Articles for training and for testing; no article is on both sides."""

    train: tuple[SquadArticle, ...]
    test: tuple[SquadArticle, ...]

    def questions(self, side: str) -> list[SquadQuestion]:
        """Every question of ``side`` ("train" or "test"), in file order."""
        articles = self.train if side == "train" else self.test if side == "test" else None
        if articles is None:
            raise ValueError(f"side must be 'train' or 'test', not {side!r}")
        return [q for a in articles for q in a.questions]


def _slug(title: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", title).strip("_") or "article"


def paragraph_path(title: str, index: int) -> str:
    """Corpus-relative path of paragraph ``index`` of article ``title``."""
    return f"{_slug(title)}/p{index:02d}.txt"


def load_squad(path: str | Path) -> list[SquadArticle]:
    """Read a SQuAD 2.0 JSON file. Raises :class:`TrainingDataError` naming what is malformed."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TrainingDataError(f"cannot read SQuAD file {path}: {exc}") from exc
    articles: list[SquadArticle] = []
    try:
        for article in raw["data"]:
            title = str(article["title"])
            paragraphs: list[str] = []
            questions: list[SquadQuestion] = []
            for p_index, paragraph in enumerate(article["paragraphs"]):
                context = str(paragraph["context"])
                paragraphs.append(context)
                for qa in paragraph["qas"]:
                    golds = () if qa.get("is_impossible") else tuple(
                        dict.fromkeys(str(a["text"]).strip() for a in qa["answers"] if str(a["text"]).strip())
                    )
                    questions.append(
                        SquadQuestion(str(qa["id"]), str(qa["question"]).strip(), golds, title, p_index, context)
                    )
            articles.append(SquadArticle(title, tuple(paragraphs), tuple(questions)))
    except (KeyError, TypeError) as exc:
        raise TrainingDataError(
            f"{path} is not in SQuAD 2.0 layout (data[].title, paragraphs[].context, "
            f"paragraphs[].qas[]): missing {exc}"
        ) from exc
    if not articles:
        raise TrainingDataError(f"{path} holds no articles")
    return articles


def split_by_article(articles: Sequence[SquadArticle], test_titles: Iterable[str]) -> SquadSplit:
    """Put the articles named in ``test_titles`` on the test side and the rest on the train
    side. An unknown title is an error (a typo would otherwise silently train on everything)."""
    wanted = list(dict.fromkeys(test_titles))
    titles = [a.title for a in articles]
    unknown = [t for t in wanted if t not in titles]
    if unknown:
        raise TrainingDataError(f"no article titled {unknown}; the file has {titles}")
    if not wanted or len(wanted) == len(titles):
        raise TrainingDataError("name at least one test article and leave at least one for training")
    test = tuple(a for a in articles if a.title in wanted)
    train = tuple(a for a in articles if a.title not in wanted)
    return SquadSplit(train=train, test=test)


def question_record(q: SquadQuestion) -> dict[str, Any]:
    """``q`` in the layout of ``corpus/questions.jsonl`` (see :mod:`ragft.eval.questions`)."""
    if not q.answerable:
        return {"id": q.id, "question": q.question, "answer": "", "sources": [], "kind": "out_of_scope"}
    return {
        "id": q.id,
        "question": q.question,
        "answer": q.answers[0],
        "aliases": list(q.answers[1:]),
        "sources": [q.document],
        "kind": "factual",
    }


def write_squad_corpus(
    articles: Sequence[SquadArticle],
    out_dir: str | Path,
    *,
    questions: Sequence[SquadQuestion] | None = None,
) -> tuple[Path, Path]:
    """Write ``articles`` as ``out_dir/docs/<Title>/pNN.txt`` and their questions (or the
    ``questions`` given, e.g. a sample) as ``out_dir/questions.jsonl``; returns both paths."""
    out_dir = Path(out_dir)
    docs = out_dir / "docs"
    for article in articles:
        for index, text in enumerate(article.paragraphs):
            atomic_write_text(docs / paragraph_path(article.title, index), text.strip() + "\n")
    chosen = list(questions) if questions is not None else [q for a in articles for q in a.questions]
    lines = [json.dumps(question_record(q), ensure_ascii=False) for q in chosen]
    qpath = out_dir / "questions.jsonl"
    atomic_write_text(qpath, "".join(line + "\n" for line in lines))
    return docs, qpath
