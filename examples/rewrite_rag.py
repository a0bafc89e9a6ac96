"""Pattern 2 - a fine-tuned query rewriter in front of retrieval. Casual questions are rewritten
into the documents' vocabulary; the answer is still generated for the original question.

    python examples/rewrite_rag.py
"""

from _setup import ready

from ragft.strategies import from_config

cfg = ready("rewrite_rag.toml", need_finetuned=True)
strategy = from_config(cfg)
for question in ["cab money back?", "locked out after too many logins", "food allowance on trips"]:
    a = strategy.answer(question)
    print(f"Q: {question}\n   route: {a.route}\nA: {a.text}\n")
