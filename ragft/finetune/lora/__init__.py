"""LoRA supervised fine-tuning of open-weights causal LMs (``transformers`` + ``peft``).

* :mod:`~ragft.finetune.lora.hyperparameters` — the validated settings;
* :mod:`~ragft.finetune.lora.base_models` — which base model, its files, loading it offline;
* :mod:`~ragft.finetune.lora.chat_encoding` — chat JSONL → tokens with loss on answers only;
* :mod:`~ragft.finetune.lora.checkpoints` — atomic per-epoch checkpoints;
* :mod:`~ragft.finetune.lora.trainer` — the training loop (events, cancel, resume).

torch, transformers and peft are the ``ragft[train]`` extra; nothing here imports them until
a model is loaded or trained.
"""
