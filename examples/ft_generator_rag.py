"""Pattern 1 - fine-tuned generator over retrieved context: retrieval brings current facts and
citations, the fine-tuned model brings the house answer style.

    python examples/ft_generator_rag.py
"""

from _setup import ready

from ragft.strategies import from_config

cfg = ready("ft_rag.toml", need_finetuned=True)
strategy = from_config(cfg)
for question in ["How do I request a new laptop?", "What is the meal per diem?"]:
    a = strategy.answer(question)
    print(f"Q: {question}\nA: {a.text}\n   sources: {[s.document for s in a.sources]}\n   route: {a.route}\n")
