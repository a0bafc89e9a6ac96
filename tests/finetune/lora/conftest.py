"""A tiny randomly initialised Llama and a tokenizer trained here with ``tokenizers``.

Built once per session in a few seconds on CPU, saved as a Hugging Face model directory, so
the LoRA trainer, backend and CLI load it exactly as they load a real base model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("transformers")

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

COLOURS = ["red", "blue", "green", "amber", "violet", "silver", "orange", "teal", "black",
           "white", "pink", "gold"]
ANIMALS = ["fox", "owl", "cat", "bear", "wolf", "hare", "crow", "seal", "lynx", "moth",
           "newt", "mole"]


def qa_examples(n: int = 12) -> list[dict[str, Any]]:
    """``n`` question/answer chats: the colour of each animal's badge."""
    return [
        {"messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": f"What colour is the {ANIMALS[i]} badge?"},
            {"role": "assistant", "content": f"The {ANIMALS[i]} badge is {COLOURS[i]}."},
        ]}
        for i in range(n)
    ]


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    """One JSON value (or raw string) per line."""
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama (hidden 64) with a byte-level BPE tokenizer and a ChatML template."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    directory = tmp_path_factory.mktemp("tiny-llama")
    specials = ["<pad>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [json.dumps(ex) for ex in qa_examples()] + [
        "system user assistant Answer briefly. What colour is the badge? The badge is"]
    tok.train_from_iterator(corpus * 4, trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>",
                                   bos_token="<|im_start|>", eos_token="<|im_end|>")
    fast.chat_template = CHATML
    fast.save_pretrained(directory)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(fast), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=256, pad_token_id=fast.pad_token_id,
                         bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
                         tie_word_embeddings=False, initializer_range=0.2)
    LlamaForCausalLM(config).save_pretrained(directory)
    return directory
