"""Fine-tuning: training data (:mod:`.data`), jobs over a backend (:mod:`.jobs`, OpenAI or the
offline :mod:`.local` backend) and the model registry (:mod:`.registry`).

Import from the submodules; this package re-exports nothing so that importing
``ragft.finetune`` stays cheap (no SDK, no numpy training code) until a submodule is used.
"""
