"""The official ``openai`` SDK against ``ragft serve``: every strategy is a model.

    python examples/serve_client.py                      # starts a server here, asks each model
    python examples/serve_client.py --base-url http://127.0.0.1:8000/v1 --api-key KEY

With no ``--base-url`` the script indexes the sample corpus, trains the local fine-tuned models
if needed (once, ~20 s), and runs ``ragft serve`` in a background thread on a free port with a
throwaway key, exactly as ``RAGFT_API_KEYS=KEY ragft serve --config examples/configs/router.toml``
would in another terminal.
"""

import argparse
import os
import secrets
from contextlib import nullcontext

from _setup import CONFIGS, ready
from openai import OpenAI

from ragft.config import load_config
from ragft.serve import BackgroundServer

QUESTIONS = {
    "rag": "What is the meal per diem?",
    "ft_rag": "How many weeks of parental leave do new parents get?",
    "finetuned": "How do I get a new laptop?",
    "rewrite_rag": "laptop broke what now",
    "router": "How do I rotate an API key?",
    "cascade": "What is the meal per diem?",
    "base": "Write a haiku about expense reports.",
}

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--base-url", help="a running server's /v1 URL (default: start one here)")
parser.add_argument("--api-key", default="", help="its API key (with --base-url)")
args = parser.parse_args()

if args.base_url:
    server = nullcontext()
    base_url, key = args.base_url, args.api_key or "none"
else:
    ready("router.toml", need_finetuned=True)  # index + trained local models
    key = secrets.token_urlsafe(24)
    cfg = load_config(CONFIGS / "router.toml", env={**os.environ, "RAGFT_API_KEYS": key})
    server = BackgroundServer(cfg)
    base_url = None

with server as running:
    client = OpenAI(base_url=base_url or running.base_url, api_key=key)
    models = [m.id for m in client.models.list()]
    print(f"models: {', '.join(models)}\n")
    for model in models:
        question = QUESTIONS.get(model, "What is the meal per diem?")
        completion = client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}])
        extra = completion.model_extra["ragft"]
        print(f"[{model}] Q: {question}\n  A: {completion.choices[0].message.content}")
        for source in extra["sources"][:2]:
            print(f"  source: {source['document']}  \"{' '.join(source['snippet'].split())[:80]}\"")
        print(f"  route: {extra['route']['text']}\n  usage: {completion.usage.prompt_tokens} prompt + "
              f"{completion.usage.completion_tokens} completion tokens in {len(extra['calls'])} calls, "
              f"${extra['cost_usd']:.6f}\n")

    print("[rag, streamed]")
    stream = client.chat.completions.create(
        model="rag",
        messages=[{"role": "user", "content": "How much can I spend on a hotel per night in London?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            print(chunk.choices[0].delta.content, end="", flush=True)
        if chunk.usage:
            print(f"\n  usage (final chunk): {chunk.usage.total_tokens} tokens")
