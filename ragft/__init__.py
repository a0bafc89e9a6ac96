"""ragft: question answering over your own documents with RAG, fine-tuned models or both,
and the measurements (quality, latency, cost) to choose between them.

The top level is deliberately small: build a strategy from a config and ask it questions.
Everything else lives in its subpackage (``ragft.rag``, ``ragft.finetune``, ``ragft.eval`` ...).

>>> import ragft
>>> strategy = ragft.from_config("examples/configs/rag.toml")   # doctest: +SKIP
>>> strategy.answer("What is the meal per diem?").text          # doctest: +SKIP
"""

from ragft.answer import Answer, CallRecord, Source, Usage
from ragft.config import RagftConfig, load_config
from ragft.errors import RagftError
from ragft.route import Route
from ragft.strategies import Strategy, available_strategies, from_config, register_strategy

__all__ = [
    "Answer",
    "CallRecord",
    "RagftConfig",
    "RagftError",
    "Route",
    "Source",
    "Strategy",
    "Usage",
    "available_strategies",
    "from_config",
    "load_config",
    "register_strategy",
]
