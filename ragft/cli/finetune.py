"""``ragft finetune``: prepare, validate, price, start and follow fine-tuning jobs.

State lives under the config's home directory: ``jobs/<backend>/`` (one JSON file per job,
so a re-run of ``start`` resumes instead of paying twice), ``models/`` (local artifacts) and
``registry.json`` (``--register``). The backend is ``--backend`` or the config's provider.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ragft.components import (
    JOBS_DIR,
    REGISTRY_FILE,
    backend_of_job,
    build_job_manager,
    finetune_backend_context,
    index_corpus_identity,
)
from ragft.config import RagftConfig, load_config
from ragft.errors import FineTuneError
from ragft.finetune.backends import BackendContext, backend_names, backend_spec
from ragft.finetune.data import PURPOSES
from ragft.finetune.jobs import FineTuneBackend, JobEvent, JobManager, JobStatus, TrackedJob

__all__ = [
    "backend_context",
    "backend_of_job",
    "build_backend",
    "build_manager",
    "register",
]


def register(subparsers: Any) -> None:
    """Add the ``finetune`` command group."""
    p = subparsers.add_parser(
        "finetune",
        help="prepare data and run fine-tuning jobs (OpenAI or offline)",
        description="Build, check and price chat fine-tuning data; start jobs on OpenAI or the "
        "offline local backend, follow them, and register the results.",
    )
    sub = p.add_subparsers(dest="finetune_command", metavar="SUBCOMMAND", required=True)

    def add(name: str, help_text: str, func: Any) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.add_argument("--config", "-c", help="TOML config file (default: built-in defaults)")
        sp.set_defaults(func=func)
        return sp

    sp = add("prepare", "turn Q/A, rewrite or label pairs into chat fine-tuning JSONL", _prepare)
    sp.add_argument("--purpose", required=True,
                    choices=("generator", "rag_generator", "rewriter", "router"),
                    help="generator: closed-book answers; rag_generator: the RAG prompt with "
                    "context retrieved now from the config's index -> a cited answer or the "
                    "abstention sentence (pattern 1); rewriter; router")
    sp.add_argument("--input", required=True, help='JSONL of {"question","answer"} ("" answer: '
                    'unanswerable), {"query","rewrite"} or {"query","label"}; or a SQuAD 2.0 '
                    "JSON file with --squad-test")
    sp.add_argument("--squad-test", metavar="TITLES", help="--input is SQuAD 2.0 JSON: build from "
                    "every article except these (comma-separated titles), which stay held out")
    sp.add_argument("--out", required=True, help="output JSONL (with --split: OUT's stem + "
                    ".train/.validation/.test.jsonl)")
    sp.add_argument("--split", action="store_true", help="also write hash-based splits")
    sp.add_argument("--validation", type=float, default=0.1, help="validation fraction")
    sp.add_argument("--test", type=float, default=0.1, help="test fraction")
    sp.add_argument("--seed", type=int, default=0, help="split seed (default: %(default)s)")
    sp.add_argument("--labels", help="router labels, comma-separated (default: those in the data)")
    sp.add_argument("--system", help="system prompt (default: the purpose's built-in prompt)")

    sp = add("validate", "check a training file line by line (cookbook checks)", _validate)
    sp.add_argument("file")
    sp.add_argument("--model", default="gpt-4o-mini", help="tokenizer to count with "
                    "(default: %(default)s)")
    sp.add_argument("--max-tokens", type=int, default=65_536, help="per-example token limit")
    sp.add_argument("--json", action="store_true", help="print the report as JSON")

    sp = add("estimate", "billed training tokens and cost before starting", _estimate)
    sp.add_argument("file")
    sp.add_argument("--model", required=True, help="base model, e.g. gpt-4o-mini")
    sp.add_argument("--epochs", default="auto", help="number of epochs or 'auto' (default)")
    sp.add_argument("--max-tokens", type=int, default=65_536, help="per-example token limit")
    sp.add_argument("--json", action="store_true")

    sp = add("start", "start (or resume) a fine-tuning job", _start)
    sp.add_argument("file", help="training JSONL")
    sp.add_argument("--model", required=True, help="base model: `local` for --backend local; "
                    "`smollm2`, a Hugging Face model directory or a .gguf file for --backend lora")
    sp.add_argument("--suffix", required=True, help="name part of the resulting model id")
    sp.add_argument("--validation-file", help="held-out JSONL reported during training")
    sp.add_argument("--backend", choices=backend_names(), help="default: config provider")
    sp.add_argument("--epochs", default="auto", help="number of epochs or 'auto' (default)")
    sp.add_argument("--seed", type=int, help="training seed")
    sp.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE",
                    help="a training hyperparameter (repeatable), e.g. --hp rank=8 "
                    "--hp learning_rate=3e-4 --hp target_modules=q_proj,v_proj (lora backend: "
                    "epochs, learning_rate, rank, alpha, dropout, target_modules, max_length, "
                    "batch_size, gradient_accumulation, warmup_ratio, max_steps, gradient_checkpointing, "
                    "device)")
    sp.add_argument("--l2", help="local router: L2 regularisation strength, e.g. 1e-4 "
                    "(default 'auto': chosen on validation data)")
    sp.add_argument("--purpose", choices=PURPOSES,
                    help="what the model is for (default: detected from the file)")
    sp.add_argument("--wait", action="store_true", help="follow the job until it ends")
    sp.add_argument("--timeout", type=float, help="seconds to follow before giving up")
    sp.add_argument("--register", metavar="NAME", help="on success, register the model as NAME")
    sp.add_argument("--json", action="store_true", help="print the final job as JSON")

    sp = add("status", "show a job's state", _status)
    sp.add_argument("job")
    sp.add_argument("--wait", action="store_true", help="follow until the job ends")
    sp.add_argument("--timeout", type=float)
    sp.add_argument("--json", action="store_true")

    sp = add("events", "show a job's recent events", _events)
    sp.add_argument("job")
    sp.add_argument("--limit", type=int, default=100)

    sp = add("cancel", "cancel a job", _cancel)
    sp.add_argument("job")

    sp = add("list", "list the jobs started from this home directory", _list)
    sp.add_argument("--json", action="store_true")


# --------------------------------------------------------------------------- wiring


def _progress(event: JobEvent) -> None:
    print(f"  {event.message}", file=sys.stderr, flush=True)


def backend_context(cfg: RagftConfig, *, live: bool = False) -> BackendContext:
    """:func:`~ragft.components.finetune_backend_context`, printing progress when ``live``."""
    return finetune_backend_context(cfg, on_event=_progress if live else None)


def build_backend(cfg: RagftConfig, name: str, *, live: bool = False) -> FineTuneBackend:
    """The backend registered as ``name`` (see :mod:`ragft.finetune.backends`), wired from
    the config."""
    return backend_spec(name).build(backend_context(cfg, live=live))


def build_manager(cfg: RagftConfig, backend_name: str, *, live: bool = False) -> JobManager:
    """:func:`~ragft.components.build_job_manager`, printing progress when ``live``."""
    return build_job_manager(cfg, backend_name, on_event=_progress if live else None)


def _hp_value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if "," in text:
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


def _parse_hp_options(options: list[str]) -> dict[str, Any]:
    """``["rank=8", "target_modules=q_proj,v_proj"]`` -> ``{"rank": 8, "target_modules":
    ["q_proj", "v_proj"]}`` (numbers parsed; a comma makes a list)."""
    out: dict[str, Any] = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise FineTuneError(f"--hp {option!r}: expected KEY=VALUE, e.g. --hp rank=8")
        if key.strip() in ("epochs", "n_epochs", "seed"):
            raise FineTuneError(f"--hp {key.strip()}: use --{key.strip().replace('n_', '')} instead")
        out[key.strip()] = _hp_value(value.strip())
    return out


def _epochs(value: str) -> int | str:
    if value == "auto":
        return "auto"
    try:
        n = int(value)
    except ValueError:
        raise FineTuneError(f"--epochs must be a number or 'auto', got {value!r}") from None
    if n < 1:
        raise FineTuneError("--epochs must be at least 1")
    return n


def _print_status(status: JobStatus) -> None:
    line = f"{status.id}: {status.status} (base {status.model})"
    if status.fine_tuned_model:
        line += f" -> {status.fine_tuned_model}"
    print(line)
    if status.trained_tokens:
        print(f"  trained tokens: {status.trained_tokens:,}")
    for key, value in sorted(status.metrics.items()):
        print(f"  {key}: {value:.4f}")
    if status.error:
        print(f"  error: {status.error}")


# --------------------------------------------------------------------------- commands


def _prepare_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    from ragft.finetune import data

    if not args.squad_test:
        return data.read_jsonl(args.input)
    from ragft.finetune.squad import load_squad, question_record, split_by_article

    split = split_by_article(load_squad(args.input), [t.strip() for t in args.squad_test.split(",")])
    print(f"SQuAD: training side {[a.title for a in split.train]}, held out {[a.title for a in split.test]}",
          file=sys.stderr)
    return [question_record(q) for q in split.questions("train")]


def _resolved_or(parts: Any, ref: str, fallback: str) -> str:
    from ragft.errors import RegistryError

    try:
        return str(parts.resolve(ref))
    except RegistryError:
        return fallback


def _rag_generator(args: argparse.Namespace, rows: list[dict[str, Any]], system_kw: dict[str, Any]) -> Any:
    from ragft.components import Components, build_meter
    from ragft.finetune.rag_examples import rag_generator_examples

    cfg = load_config(args.config)
    parts = Components(cfg, build_meter(cfg, ledger=False))
    examples, stats = rag_generator_examples(
        rows,
        parts.retriever(),
        top_k=cfg.retrieval.top_k,
        context_tokens=cfg.retrieval.context_tokens,
        # ft_rag counts passage tokens with its generator's id: the fine-tuned model's when it
        # is registered already, else the base chat model's (only the tokenizer family matters).
        token_model=_resolved_or(parts, cfg.models.finetuned, cfg.chat_model),
        **system_kw,
    )
    print(f"retrieved from {cfg.index_path} (top_k {cfg.retrieval.top_k}): {stats.summary()}",
          file=sys.stderr)
    return examples


def _prepare(args: argparse.Namespace) -> int:
    from ragft.finetune import data

    rows = _prepare_rows(args)
    system_kw: dict[str, Any] = {} if args.system is None else {"system": args.system}
    if args.purpose == "generator":
        if args.squad_test:  # closed book learns facts: SQuAD's unanswerable rows have none
            rows = [r for r in rows if str(r.get("answer") or "").strip()]
        examples = data.generator_examples(rows, **system_kw)
    elif args.purpose == "rag_generator":
        examples = _rag_generator(args, rows, system_kw)
    elif args.purpose == "rewriter":
        examples = data.rewriter_examples(rows, **system_kw)
    else:
        labels = [x.strip() for x in args.labels.split(",")] if args.labels else sorted(
            {str(r.get("label")) for r in rows})
        examples = data.router_examples(rows, labels, **system_kw)
    out = Path(args.out)
    if not args.split:
        data.write_jsonl(examples, out)
        print(f"wrote {len(examples)} {args.purpose} examples to {out}")
        return 0
    parts = data.split_examples(examples, validation=args.validation, test=args.test,
                                seed=args.seed)
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    for part, items in (("train", parts.train), ("validation", parts.validation),
                        ("test", parts.test)):
        path = data.write_jsonl(items, out.with_name(f"{stem}.{part}.jsonl"))
        print(f"wrote {len(items)} {part} examples to {path}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from ragft.finetune.data import validate_file

    report = validate_file(args.file, model=args.model, max_tokens_per_example=args.max_tokens)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.summary())
    return 0 if report.ok else 1


def _estimate(args: argparse.Namespace) -> int:
    from ragft.components import build_meter
    from ragft.finetune.data import estimate_training, validate_file

    cfg = load_config(args.config)
    est = estimate_training(args.file, model=args.model, epochs=_epochs(args.epochs),  # type: ignore[arg-type]
                            prices=build_meter(cfg, ledger=False).prices,
                            max_tokens_per_example=args.max_tokens)
    print(json.dumps(est.to_dict(), indent=2) if args.json else est.summary())
    # A price for a file the provider would reject is misleading: say so next to it.
    report = validate_file(args.file, model=args.model, max_tokens_per_example=args.max_tokens)
    if report.problems:
        print(f"ragft: warning: {args.file} has {len(report.problems)} validation problem(s); "
              f"the estimate covers only the usable examples. Run `ragft finetune validate "
              f"{args.file}` for the list.", file=sys.stderr)
    return 0


def _local_hyperparameters(args: argparse.Namespace, backend: str) -> dict[str, Any]:
    """``--l2`` as a job hyperparameter: the local router's regularisation (checked by its
    trainer); other backends have no such knob, so it is refused before anything is sent."""
    if args.l2 is None:
        return {}
    if backend != "local":
        raise FineTuneError(f"--l2 sets the local router's regularisation; the {backend} "
                            "backend has no such hyperparameter (drop --l2)")
    from ragft.finetune.trainers.router import parse_l2

    l2 = parse_l2(args.l2)
    return {"l2": "auto" if l2 is None else l2}


def _start(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    backend = args.backend or cfg.provider
    spec = backend_spec(backend)
    epochs = _epochs(args.epochs)
    hyperparameters = _local_hyperparameters(args, backend)
    if spec.priced:
        from ragft.components import build_meter
        from ragft.finetune.data import estimate_training

        # Price it before anything is uploaded: the user sees the bill a re-run would resume.
        est = estimate_training(args.file, model=args.model, epochs=epochs,  # type: ignore[arg-type]
                                prices=build_meter(cfg, ledger=False).prices)
        print(f"estimate: {est.summary()}", file=sys.stderr)
    manager = build_manager(cfg, backend, live=True)
    if spec.in_process:
        print("training locally...", file=sys.stderr)
    hyperparameters = {**hyperparameters, **_parse_hp_options(args.hp)}
    if not spec.in_process:
        print(f"starting a {backend} job (data checked first)...", file=sys.stderr)
    job = manager.start(args.file, model=args.model, suffix=args.suffix,
                        validation_file=args.validation_file, epochs=epochs,  # type: ignore[arg-type]
                        seed=args.seed, purpose=args.purpose, hyperparameters=hyperparameters)
    if job.attempts:
        print(f"previous attempt(s) {', '.join(job.attempts)} ended without a model; "
              f"started {job.job_id}", file=sys.stderr)
    status = job.status
    assert status is not None and job.job_id is not None
    if args.wait or spec.in_process:
        # An in-process backend showed its progress live already.
        status = manager.follow(job.job_id, timeout=args.timeout,
                                on_event=None if spec.in_process else _progress)
    if args.json:
        print(json.dumps({"job": manager.get(job.job_id).to_dict()}, indent=2))
    else:
        _print_status(status)
        if not status.terminal:
            print(f"follow it with: ragft finetune status {job.job_id} --wait")
    if args.register and status.status == "succeeded":
        _register_result(cfg, args.register, manager.get(job.job_id), status)
    return 0


def _register_result(cfg: RagftConfig, name: str, job: TrackedJob, status: JobStatus) -> None:
    from ragft.finetune.registry import ModelRegistry

    registry = ModelRegistry(cfg.home_path / REGISTRY_FILE)
    # A re-run of the same `start` resumes the finished job: its model is registered already.
    if name in registry.names():
        for existing in registry.versions(name):
            if existing.model_id == status.fine_tuned_model:
                print(f"{existing.model_id} is already registered as {name} version "
                      f"{existing.version}")
                return
    lora: dict[str, Any] = {}
    if str(status.fine_tuned_model).startswith("lora:"):
        from ragft.components import MODELS_DIR
        from ragft.finetune.backends.lora import lora_adapter_dir
        from ragft.finetune.lora.artifacts import read_artifact

        artifact = read_artifact(lora_adapter_dir(cfg.home_path / MODELS_DIR,
                                                  str(status.fine_tuned_model)))
        lora = {"adapter_path": str(artifact.directory),
                "base_model_path": str(artifact.base.path),
                "hyperparameters": artifact.hyperparameters}
    version = registry.register(
        name,
        model_id=str(status.fine_tuned_model),
        base_model=status.model,
        purpose=job.purpose or "generator",
        job_id=status.id,
        training_file_sha256=job.training_sha256 or None,
        metrics=status.metrics,
        backend=job.backend,
        corpus=index_corpus_identity(cfg),  # the knowledge base it was trained beside
        **lora,
    )
    print(f"registered {name} version {version.version} ({version.model_id}); promote it with "
          f"`ragft models promote {name} {version.version}`")


def _status(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    manager = build_manager(cfg, backend_of_job(args.job))
    if args.wait:
        status = manager.follow(args.job, timeout=args.timeout, on_event=_progress)
    else:
        status = manager.status(args.job)
    if args.json:
        print(json.dumps(status.to_dict(), indent=2))
    else:
        _print_status(status)
    return 0


def _events(args: argparse.Namespace) -> int:
    import datetime as dt

    cfg = load_config(args.config)
    for event in build_manager(cfg, backend_of_job(args.job)).events(args.job, limit=args.limit):
        when = dt.datetime.fromtimestamp(event.created_at).strftime("%Y-%m-%d %H:%M:%S")
        print(f"{when}  {event.level:5s}  {event.message}")
    return 0


def _cancel(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    manager = build_manager(cfg, backend_of_job(args.job))
    # A job that has ended cannot be cancelled; say so rather than send a request that
    # fails (OpenAI) or reads as if this call had stopped something.
    status = manager.status(args.job)
    if status.terminal:
        _print_status(status)
        print(f"nothing to cancel: job {status.id} already {status.status}")
        return 0
    _print_status(manager.cancel(args.job))
    return 0


def _list(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    jobs: list[TrackedJob] = []
    root = cfg.home_path / JOBS_DIR
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if folder.is_dir():
            # Reading stored records needs no backend (and no API key or model load).
            jobs.extend(JobManager(_NoBackend(folder.name), folder).list_jobs())  # type: ignore[arg-type]
    jobs.sort(key=lambda j: j.created_at)
    if args.json:
        print(json.dumps([j.to_dict() for j in jobs], indent=2))
        return 0
    if not jobs:
        print("no fine-tuning jobs yet; start one with `ragft finetune start FILE ...`")
        return 0
    for j in jobs:
        state = j.status.status if j.status else f"({j.step})"
        model = j.fine_tuned_model or "-"
        print(f"{j.job_id or '(not created)':32s} {j.backend:6s} {state:16s} {j.model:24s} "
              f"{j.suffix:12s} {model}")
    return 0


class _NoBackend:
    """Stands in for a backend when only stored job records are read."""

    def __init__(self, name: str):
        self.name = name
