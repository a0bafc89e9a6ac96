"""Fine-tuning: training data, jobs over pluggable backends, trainers, and the model registry.

Layout (a reader finds each part in the file named for it):

* :mod:`.data` — build, split, validate and price chat training JSONL;
* :mod:`.jobs` — the values backends return, the :class:`~ragft.finetune.jobs.FineTuneBackend`
  protocol and the resumable :class:`~ragft.finetune.jobs.JobManager`;
* :mod:`.backends` — one module per backend (``openai``, ``local``) and the registry that
  picks one by name or job id;
* :mod:`.trainers` — the local backend's trainers, one module per purpose;
* :mod:`.learners` — the numpy learners those trainers fit;
* :mod:`.registry` — named, versioned, promotable fine-tuned models.

Import from the submodules; this package re-exports nothing so that importing
``ragft.finetune`` stays cheap (no SDK, no numpy training code) until a submodule is used.
"""
