"""The fine-tuned model alone, no retrieval: fast and cheap, but it only knows what it was
trained on, and it cannot cite. Compare its confidence on trained vs unseen questions.

    python examples/finetuned_only.py
"""

from _setup import ready

from ragft.strategies import from_config

cfg = ready("finetuned.toml", need_finetuned=True)
ft = from_config(cfg)
for question in [
    "How do I get a new laptop?",          # close to a trained question
    "What is the meal per diem?",          # a fact it was not trained on
    "Who won the 1998 World Cup?",         # out of scope
]:
    a = ft.answer(question)
    print(f"Q: {question}\nA: {a.text}\n   confidence {a.confidence:.2f}  abstained={a.abstained}  "
          f"route: {a.route}\n")
