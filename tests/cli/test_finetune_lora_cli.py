"""``ragft finetune start --backend lora`` end to end on a tiny Llama: a real background
training process, followed, metered (with a GPU price per hour), registered with its adapter,
base model and hyperparameters."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

pytest.importorskip("peft")

from ragft.components import build_meter  # noqa: E402
from ragft.config import load_config  # noqa: E402

from ..finetune.lora.conftest import qa_examples, tiny_llama, write_jsonl  # noqa: E402,F401
from .test_finetune_cli import CLI as _FinetuneCLI  # noqa: E402


class CLI(_FinetuneCLI):
    """``ragft finetune|models|cost ...`` in-process."""

    def __init__(self, config: Path, capsys: pytest.CaptureFixture[str]):
        from ragft.cli import cost as cost_cli
        from ragft.cli import finetune as finetune_cli
        from ragft.cli import models as models_cli

        super().__init__(config, capsys)
        parser = argparse.ArgumentParser(prog="ragft")
        sub = parser.add_subparsers(dest="command")
        for module in (finetune_cli, models_cli, cost_cli):
            module.register(sub)
        self.parser = parser


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> CLI:
    for var in ("RAGFT_HOME", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "docs").mkdir()
    config = tmp_path / "ragft.toml"
    config.write_text('home = "home"\n[backend]\nprovider = "local"\n[index]\ncorpus = "docs"\n'
                      '[prices]\ngpu_usd_per_hour = 3.6\n')
    return CLI(config, capsys)


@pytest.mark.slow
def test_start_wait_register_list_events_status(cli: CLI, tiny_llama: Path, tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", qa_examples(12))
    code, out, err = cli("finetune", "start", str(train), "--backend", "lora", "--model",
                         str(tiny_llama), "--suffix", "badges", "--epochs", "2", "--hp", "rank=4",
                         "--hp", "learning_rate=0.01", "--hp", "target_modules=q_proj,v_proj",
                         "--wait", "--register", "gen")
    assert code == 0, err
    assert "Step 1/6: training loss" in err and "Checkpoint saved after epoch 2" in err
    assert ": succeeded (base local/" in out and "registered gen version 1" in out
    job_id = out.split(":", 1)[0].strip()
    assert job_id.startswith("ftjob-lora-")

    code, out, _ = cli("finetune", "list")
    assert code == 0 and job_id in out and " lora " in out and "succeeded" in out
    code, out, _ = cli("finetune", "events", job_id)
    assert "Step 6/6: training loss" in out and "The job has successfully completed" in out
    code, out, _ = cli("finetune", "status", job_id, "--json")
    status = json.loads(out)
    assert status["hyperparameters"]["rank"] == 4
    assert status["hyperparameters"]["target_modules"] == ["q_proj", "v_proj"]
    seconds = status["metrics"]["compute_seconds"]

    cfg = load_config(cli.config)
    record = next(r for r in build_meter(cfg).ledger.read() if r.purpose == "fine-tune")
    assert record.usage.training_tokens == status["trained_tokens"]
    assert record.cost_usd == pytest.approx(seconds / 3600 * 3.6)

    # The measured throughput and the GPU price flow into `cost estimate` and `cost compare`.
    speed = record.usage.training_tokens / record.usage.compute_seconds
    code, out, err = cli("cost", "estimate", str(train), "--backend", "lora", "--epochs", "2",
                         "--json")
    assert code == 0, err
    est = json.loads(out)
    assert est["details"]["tokens_per_second"] == pytest.approx(speed)
    assert est["cost_usd"] == pytest.approx(est["tokens"] / speed / 3600 * 3.6)
    code, out, err = cli("cost", "compare", "--strategy", "ft_rag=0.001", "--strategy",
                         "rag=0.002", "--training-job", f"ft_rag={job_id}", "--json")
    assert code == 0, err
    assert json.loads(out)["strategies"]["ft_rag"]["setup_cost"] == pytest.approx(record.cost_usd)

    registry = json.loads((cfg.home_path / "registry.json").read_text())
    version = registry["models"]["gen"]["versions"][0]
    assert Path(version["adapter_path"], "adapter_model.safetensors").is_file()
    assert version["base_model_path"] == str(tiny_llama.resolve())
    assert version["hyperparameters"]["rank"] == 4
    assert version["model_id"] == f"lora:badges:{job_id}"
