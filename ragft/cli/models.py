"""``ragft models``: the model registry — list, register, evaluate, promote (gated), roll back.

Strategies refer to ``registry:NAME`` (the promoted version) in the config; these commands
decide what that resolves to. The registry is ``<home>/registry.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ragft.config import RagftConfig, load_config
from ragft.errors import RegistryError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``models`` command group."""
    p = subparsers.add_parser(
        "models",
        help="manage fine-tuned model versions (registry, promotion, rollback)",
        description="List, register, evaluate, promote and roll back fine-tuned model versions.",
    )
    sub = p.add_subparsers(dest="models_command", metavar="SUBCOMMAND", required=True)

    def add(name: str, help_text: str, func: Any) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.add_argument("--config", "-c", help="TOML config file (default: built-in defaults)")
        sp.set_defaults(func=func)
        return sp

    sp = add("list", "list registered models and their versions", _list)
    sp.add_argument("name", nargs="?", help="only this model")
    sp.add_argument("--json", action="store_true")

    sp = add("register", "register a fine-tuned model id (or a finished job) as a new version",
             _register)
    sp.add_argument("name")
    src = sp.add_mutually_exclusive_group(required=True)
    src.add_argument("--model-id", help="e.g. ft:gpt-4o-mini-2024-07-18:org:x:id")
    src.add_argument("--job", help="a succeeded job from `ragft finetune list`")
    sp.add_argument("--base-model", help="base model (default: from the job, else unknown)")
    sp.add_argument("--purpose", choices=("generator", "rewriter", "router", "adapter"))
    sp.add_argument("--metric", action="append", default=[], metavar="NAME=VALUE",
                    help="held-out metric to record (repeatable)")

    sp = add("evaluate", "score a version on held-out chat JSONL and store the metrics", _evaluate)
    sp.add_argument("name")
    sp.add_argument("version", type=int)
    sp.add_argument("file", help="held-out examples (e.g. the .test.jsonl from `finetune "
                    "prepare --split`)")
    sp.add_argument("--labels", help="router labels, comma-separated (adds valid_label_rate)")

    sp = add("promote", "make a version what registry:NAME resolves to (after a gate)", _promote)
    sp.add_argument("name")
    sp.add_argument("version", type=int)
    sp.add_argument("--min-f1", type=float, help="gate: held-out f1 must be at least this")
    sp.add_argument("--gate-metric", help="gate on another stored metric (e.g. accuracy)")
    sp.add_argument("--min", type=float, dest="min_value", help="threshold for --gate-metric")

    sp = add("rollback", "return NAME to the previously promoted version", _rollback)
    sp.add_argument("name")

    sp = add("resolve", "show the model id behind registry:NAME[@VERSION]", _resolve)
    sp.add_argument("ref")


def _registry(cfg: RagftConfig) -> Any:
    from ragft.components import REGISTRY_FILE
    from ragft.finetune.registry import ModelRegistry

    return ModelRegistry(cfg.home_path / REGISTRY_FILE)


def _list(args: argparse.Namespace) -> int:
    registry = _registry(load_config(args.config))
    versions = registry.versions(args.name) if args.name else registry.list()
    if args.json:
        print(json.dumps([v.to_dict() for v in versions], indent=2))
        return 0
    if not versions:
        print("no registered models; register one with `ragft finetune start ... --register "
              "NAME` or `ragft models register`")
        return 0
    for v in versions:
        marker = "*" if v.status == "promoted" else " "
        metrics = ", ".join(
            f"{k}={int(val)}" if float(val).is_integer() and k in ("n", "examples") else f"{k}={val:.3f}"
            for k, val in sorted(v.metrics.items())
        )
        print(f"{marker} {v.name}@{v.version:<3d} {v.status:11s} {v.purpose:9s} {v.model_id}"
              + (f"  [{metrics}]" if metrics else ""))
    return 0


def _parse_metrics(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            out[name] = float(value)
        except ValueError:
            raise RegistryError(f"--metric {item!r}: expected NAME=NUMBER, e.g. f1=0.71") from None
    return out


def _register(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    registry = _registry(cfg)
    metrics = _parse_metrics(args.metric)
    if args.job:
        from ragft.components import backend_of_job, build_job_manager, index_corpus_identity

        job = build_job_manager(cfg, backend_of_job(args.job)).get(args.job)
        if job.status is None or job.status.status != "succeeded":
            raise RegistryError(f"job {args.job} has not succeeded (state: "
                                f"{job.status.status if job.status else job.step}); "
                                "`ragft finetune status JOB --wait` first")
        version = registry.register(
            args.name, model_id=str(job.status.fine_tuned_model),
            base_model=args.base_model or job.status.model,
            purpose=args.purpose or job.purpose or "generator", job_id=job.job_id,
            training_file_sha256=job.training_sha256 or None,
            metrics={**job.status.metrics, **metrics}, backend=job.backend,
            corpus=index_corpus_identity(cfg))
    else:
        version = registry.register(
            args.name, model_id=args.model_id, base_model=args.base_model or "unknown",
            purpose=args.purpose or "generator", metrics=metrics)
    print(f"registered {version.name} version {version.version}: {version.model_id}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from ragft.components import Components, build_meter
    from ragft.finetune.data import read_jsonl
    from ragft.finetune.registry import evaluate_model

    cfg = load_config(args.config)
    registry = _registry(cfg)
    version = registry.get(args.name, args.version)
    labels = [x.strip() for x in args.labels.split(",")] if args.labels else None
    meter = build_meter(cfg)
    # Built like any model of a run (registered builder, environment) and metered to the ledger.
    with Components(cfg, meter) as parts:
        model = meter.chat_model(parts.chat(version.model_id)).with_purpose("evaluate")
        metrics = evaluate_model(model, read_jsonl(args.file), purpose=version.purpose,
                                 labels=labels)
    registry.set_metrics(args.name, args.version, metrics)
    print(f"{args.name}@{args.version} on {args.file}: "
          + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    return 0


def _promote(args: argparse.Namespace) -> int:
    from ragft.finetune.registry import Gate

    registry = _registry(load_config(args.config))
    gate = None
    if args.min_f1 is not None:
        gate = Gate("f1", args.min_f1)
    if args.gate_metric:
        if args.min_value is None:
            raise RegistryError("--gate-metric needs --min VALUE")
        gate = Gate(args.gate_metric, args.min_value)
    version = registry.promote(args.name, args.version, gate=gate)
    note = f" (gate: {gate.metric} >= {gate.min_value})" if gate else " (no gate)"
    print(f"promoted {version.name}@{version.version}{note}: registry:{version.name} -> "
          f"{version.model_id}")
    if gate is None:
        print("note: promoted without a quality gate; pass --min-f1 to require held-out quality",
              file=sys.stderr)
    return 0


def _rollback(args: argparse.Namespace) -> int:
    version = _registry(load_config(args.config)).rollback(args.name)
    print(f"rolled back {version.name} to version {version.version}: {version.model_id}")
    return 0


def _resolve(args: argparse.Namespace) -> int:
    registry = _registry(load_config(args.config))
    ref = args.ref
    # `ragft models resolve generator` means the registered name, not a literal model id.
    if not ref.startswith("registry:") and ref.split("@")[0] in registry.names():
        ref = "registry:" + ref
    print(registry.resolve(ref))
    return 0
