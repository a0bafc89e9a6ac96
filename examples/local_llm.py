"""The OpenAI code path against a real local LLM: a llama.cpp server (xllamacpp) serving
SmolLM2-135M-Instruct on 127.0.0.1, driven through the official openai SDK.

    python examples/local_llm.py

Nothing leaves the machine. Retrieval uses the local MiniLM index; generation goes through
ragft's OpenAI backend to the server, with real `usage` (cached tokens included) metered per
call. SmolLM2-135M is tiny: fine for exercising the plumbing, weak at grounded answers — compare
its answers with the extractive reader's (`ragft ask`). Any OpenAI-compatible server (vLLM,
Ollama) works the same way via `[backend] base_url`.
"""

from _setup import ready

from ragft.cli._output import format_answer
from ragft.config import load_config
from ragft.models.llamacpp import LlamaCppServer
from ragft.strategies import from_config

base = ready("rag.toml")  # builds the local index this example retrieves from
with LlamaCppServer() as server:
    print(f"llama.cpp server: {server.base_url} serving {server.model}\n")
    cfg = load_config(
        base.path("../../examples/configs/rag.toml"),
        overrides={
            "backend.provider": "openai",
            "backend.base_url": server.base_url,
            "models.chat": server.model,
            # Keep the local embeddings the index was built with.
            "models.embedding": base.embedding_model,
            # A model on your own machine costs nothing per token, but is still counted.
            "prices.free_prefixes": [server.model],
            "strategy.max_tokens": 60,
        },
    )
    rag = from_config(cfg)
    for question in ["What is the meal per diem?", "How many PTO days do employees get?"]:
        print(f"Question: {question}")
        print(format_answer(rag.answer(question)), "\n")
