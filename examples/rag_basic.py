"""Plain RAG over the sample corpus: hybrid retrieval, a generator over fenced context, citations.

    python examples/rag_basic.py ["your question"]

Offline by default (MiniLM embeddings + the extractive reader). With OPENAI_API_KEY set the
same config uses text-embedding-3-small and gpt-4.1-mini.
"""

import sys

from _setup import ready

from ragft.strategies import from_config

cfg = ready("rag.toml")
rag = from_config(cfg)
for question in sys.argv[1:] or [
    "What is the meal per diem?",
    "Which error code means the API rate limit was exceeded?",
    "What is the CEO's salary?",  # not in the documents: RAG should say it does not know
]:
    answer = rag.answer(question)
    print(f"Q: {question}\nA: {answer.text}")
    for s in answer.sources:
        print(f"   source: {s.document} (chunk {s.chunk_id}, score {s.score:.3f})")
    print(f"   route: {answer.route}\n   cost: ${answer.cost_usd:.6f} in {len(answer.calls)} calls, "
          f"{answer.latency_s:.2f} s\n")
