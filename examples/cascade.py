"""Pattern 4 - a cascade: the fine-tuned model answers when it is confident; otherwise the query
escalates to RAG. Then the threshold is calibrated from labelled questions instead of guessed.

    python examples/cascade.py
"""

import json

from _setup import ready

from ragft.metrics import token_f1
from ragft.strategies import calibrate_threshold, from_config

cfg = ready("cascade.toml", need_finetuned=True)
cascade = from_config(cfg)
for question in ["How do I get a new laptop?", "What is the meal per diem?"]:
    a = cascade.answer(question)
    print(f"Q: {question}\n   route: {a.route}\nA: {a.text}\n   calls: {[c.usage.model for c in a.calls]}\n")

# Calibrate: run the fine-tuned model and RAG alone on labelled questions, then pick the
# lowest threshold whose kept answers reach the target quality.
questions = [json.loads(line) for line in (cfg.path("../../corpus/questions.jsonl")).read_text().splitlines()]
questions = [q for q in questions if q["kind"] in ("procedural", "factual")][:40]
first, fallback = cascade.first, cascade.fallback
conf, ft_ok, rag_ok = [], [], []
for q in questions:
    a, b = first.answer(q["question"]), fallback.answer(q["question"])
    conf.append(a.confidence)
    ft_ok.append(not a.abstained and token_f1(a.text, q["answer"]) >= 0.4)
    rag_ok.append(not b.abstained and token_f1(b.text, q["answer"]) >= 0.4)
choice = calibrate_threshold(conf, ft_ok, fallback_correct=rag_ok, target_accuracy=0.8)
print(f"calibrated threshold {choice.threshold:.2f}: {choice.reason}")
print("threshold  fallback  kept-accuracy  overall-accuracy")
for p in choice.curve[:: max(1, len(choice.curve) // 10)]:
    kept = "-" if p.accepted_accuracy is None else f"{p.accepted_accuracy:.2f}"
    print(f"   {p.threshold:5.2f}     {p.fallback_rate:5.0%}        {kept:>5}           {p.overall_accuracy:.2f}")
