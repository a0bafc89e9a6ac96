"""Pattern 3 - a router: a trained classifier labels each query and sends it to RAG, the
fine-tuned model, the base model or a polite refusal (see configs/router.toml).

    python examples/router.py
"""

from _setup import ready

from ragft.strategies import from_config

cfg = ready("router.toml", need_finetuned=True)
router = from_config(cfg)
for question in [
    "What is the Business plan API rate limit?",      # factual -> rag
    "How do I rotate an API key?",                    # procedural -> fine-tuned
    "Write a haiku about Mondays",                    # creative -> base model
    "What is the population of Iceland?",             # out of scope -> refuse
]:
    a = router.answer(question)
    print(f"Q: {question}\n   route: {a.route}\nA: {a.text}\n")
