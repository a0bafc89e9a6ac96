"""``ragft finetune`` and ``ragft models`` end to end on the offline backend, with a temporary
home directory per test."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

from ragft.cli import finetune as finetune_cli
from ragft.cli import models as models_cli
from ragft.errors import RagftError

ROUTES = (
    [{"query": f"write a poem about the {w}", "label": "creative"} for w in
     ("sea", "moon", "forest", "city", "rain", "winter", "river", "mountain", "garden", "sky")]
    + [{"query": f"how do i reset my {w} password step by step", "label": "procedural"} for w in
       ("email", "laptop", "vpn", "okta", "slack", "wifi", "jira", "github", "zoom", "badge")]
    + [{"query": f"what is the price limit for {w} expenses", "label": "factual"} for w in
       ("hotel", "meal", "taxi", "flight", "train", "parking", "mileage", "phone", "internet",
        "conference")]
)


class CLI:
    """Runs ``ragft finetune|models ...`` like ``ragft.cli.main`` does (errors -> exit 2)."""

    def __init__(self, config: Path, capsys: pytest.CaptureFixture[str]):
        self.config = config
        self.capsys = capsys
        parser = argparse.ArgumentParser(prog="ragft")
        sub = parser.add_subparsers(dest="command")
        finetune_cli.register(sub)
        models_cli.register(sub)
        self.parser = parser

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        args = self.parser.parse_args([*argv, "--config", str(self.config)])
        try:
            code = int(args.func(args) or 0)
        except RagftError as exc:
            print(f"ragft: error: {exc}", file=sys.stderr)
            code = 2
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> CLI:
    for var in ("RAGFT_HOME", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    config = tmp_path / "ragft.toml"
    config.write_text('home = "home"\n[backend]\nprovider = "local"\n'
                      '[models]\nembedding = "local/hashing-256"\n')
    return CLI(config, capsys)


@pytest.fixture
def routes_file(tmp_path: Path) -> Path:
    path = tmp_path / "routes.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROUTES))
    return path


def test_prepare_with_split(cli: CLI, tmp_path: Path, routes_file: Path) -> None:
    code, out, _ = cli("finetune", "prepare", "--purpose", "router", "--input", str(routes_file),
                       "--out", str(tmp_path / "ft" / "router.jsonl"), "--split",
                       "--validation", "0.15", "--test", "0.2")
    assert code == 0
    counts = {}
    for part in ("train", "validation", "test"):
        lines = (tmp_path / "ft" / f"router.{part}.jsonl").read_text().splitlines()
        counts[part] = len(lines)
        assert f"wrote {len(lines)} {part} examples" in out
    assert sum(counts.values()) == 30 and counts["train"] > counts["test"] > 0
    first = json.loads((tmp_path / "ft" / "router.train.jsonl").read_text().splitlines()[0])
    # The router prompt is the one the strategy sends; it does not list the labels.
    from ragft.prompts import ROUTER_SYSTEM

    assert first["messages"][0]["content"] == ROUTER_SYSTEM


def test_prepare_generator_without_split(cli: CLI, tmp_path: Path) -> None:
    src = tmp_path / "qa.jsonl"
    src.write_text(json.dumps({"question": "Q?", "answer": "A."}) + "\n")
    code, out, _ = cli("finetune", "prepare", "--purpose", "generator", "--input", str(src),
                       "--out", str(tmp_path / "gen.jsonl"))
    assert code == 0 and "wrote 1 generator examples" in out
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "Q?"}) + "\n")
    code, _, err = cli("finetune", "prepare", "--purpose", "generator", "--input", str(bad),
                       "--out", str(tmp_path / "x.jsonl"))
    assert code == 2 and "'answer' is missing or empty" in err


def test_validate_reports_line_numbers_and_exit_code(cli: CLI, tmp_path: Path,
                                                     routes_file: Path) -> None:
    out_file = tmp_path / "router.jsonl"
    cli("finetune", "prepare", "--purpose", "router", "--input", str(routes_file), "--out",
        str(out_file))
    code, out, _ = cli("finetune", "validate", str(out_file))
    assert code == 0 and "30 examples" in out and "no problems found" in out
    lines = out_file.read_text().splitlines()
    lines[1] = '{"messages": [{"role": "user", "content": "hi"}]}'
    out_file.write_text("\n".join(lines) + "\n")
    code, out, _ = cli("finetune", "validate", str(out_file))
    assert code == 1 and "line 2: assistant message missing" in out
    code, out, _ = cli("finetune", "validate", str(out_file), "--json")
    assert json.loads(out)["problems"][0]["line"] == 2


def test_estimate(cli: CLI, tmp_path: Path, routes_file: Path) -> None:
    out_file = tmp_path / "router.jsonl"
    cli("finetune", "prepare", "--purpose", "router", "--input", str(routes_file), "--out",
        str(out_file))
    code, out, _ = cli("finetune", "estimate", str(out_file), "--model", "gpt-4o-mini",
                       "--json")
    data = json.loads(out)
    assert code == 0 and data["n_examples"] == 30 and data["epochs"] == 4  # ceil(100/30)
    assert data["billed_tokens"] == data["tokens_per_epoch"] * 4
    assert data["cost_usd"] == pytest.approx(data["billed_tokens"] * 3.0 / 1e6)
    code, _, err = cli("finetune", "estimate", str(out_file), "--model", "gpt-4.1-nano")
    assert code == 2 and "shut down on 2026-10-23" in err


def test_local_train_register_evaluate_promote_rollback(cli: CLI, tmp_path: Path,
                                                        routes_file: Path) -> None:
    base = tmp_path / "router.jsonl"
    cli("finetune", "prepare", "--purpose", "router", "--input", str(routes_file), "--out",
        str(base), "--split", "--validation", "0.15", "--test", "0.2")
    train = str(tmp_path / "router.train.jsonl")
    test = str(tmp_path / "router.test.jsonl")
    code, out, err = cli("finetune", "start", train, "--model", "local", "--suffix", "v1",
                         "--register", "router", "--wait")
    assert code == 0, err
    assert "Step 1/9: l2 0.01, train loss" in err  # live progress on stderr: one step per L2 tried
    assert "succeeded" in out and "registered router version 1" in out
    job_id = out.split(":")[0].strip()
    assert job_id.startswith("ftjob-local-")
    assert (tmp_path / "home" / "models").is_dir() and (tmp_path / "home" / "registry.json").is_file()

    # Same inputs again: the finished job is reported, nothing is retrained.
    code, out, err = cli("finetune", "start", train, "--model", "local", "--suffix", "v1")
    assert code == 0 and out.startswith(job_id) and "Step" not in err

    code, out, _ = cli("finetune", "list")
    assert job_id in out and "succeeded" in out
    code, out, _ = cli("finetune", "status", job_id)
    assert "succeeded" in out and "valid_accuracy" in out
    code, out, _ = cli("finetune", "events", job_id)
    assert "Step 2/9: l2 0.003, train loss" in out and "The job has successfully completed" in out
    code, out, _ = cli("finetune", "cancel", job_id)
    assert code == 0 and "succeeded" in out  # finished jobs stay finished
    assert f"nothing to cancel: job {job_id} already succeeded" in out

    code, out, _ = cli("models", "evaluate", "router", "1", test,
                       "--labels", "creative,factual,procedural")
    assert code == 0 and "accuracy=" in out
    # Evaluation calls go through the meter: one ledger line per held-out example.
    ledger = [json.loads(x) for x in (tmp_path / "home" / "ledger.jsonl").read_text().splitlines()]
    evaluated = [r for r in ledger if r["purpose"] == "evaluate"]
    assert len(evaluated) == len(Path(test).read_text().splitlines())
    assert all(r["usage"]["model"] == f"local-ft:router:v1:{job_id}" for r in evaluated)
    code, out, err = cli("models", "promote", "router", "1", "--gate-metric", "accuracy",
                         "--min", "1.01")
    assert code == 2 and "refusing to promote router@1: held-out accuracy" in err
    assert "below the gate's minimum 1.0100" in err
    code, out, _ = cli("models", "promote", "router", "1", "--gate-metric", "accuracy",
                       "--min", "0.5")
    assert code == 0 and "promoted router@1" in out

    # Version 2 (another suffix), registered from its job and promoted without a gate.
    code, out, _ = cli("finetune", "start", train, "--model", "local", "--suffix", "v2",
                       "--l2", "0.1")
    job2 = out.split(":")[0].strip()
    code, out, _ = cli("models", "register", "router", "--job", job2, "--metric", "f1=0.9")
    assert code == 0 and "registered router version 2" in out
    code, out, err = cli("models", "promote", "router", "2")
    assert code == 0 and "without a quality gate" in err
    code, out, _ = cli("models", "resolve", "registry:router")
    assert out.strip() == f"local-ft:router:v2:{job2}"
    code, out, _ = cli("models", "list")
    assert "* router@2" in out and "archived" in out
    code, out, _ = cli("models", "rollback", "router")
    assert code == 0 and "rolled back router to version 1" in out
    code, out, _ = cli("models", "resolve", "registry:router")
    assert out.strip() == f"local-ft:router:v1:{job_id}"
    code, out, _ = cli("models", "resolve", "router")  # the bare registered name works too
    assert out.strip() == f"local-ft:router:v1:{job_id}"
    code, out, _ = cli("models", "resolve", "router@2")
    assert out.strip() == f"local-ft:router:v2:{job2}"


def test_openai_retired_model_fails_before_any_network(cli: CLI, tmp_path: Path,
                                                       routes_file: Path) -> None:
    out_file = tmp_path / "router.jsonl"
    cli("finetune", "prepare", "--purpose", "router", "--input", str(routes_file), "--out",
        str(out_file))
    code, _, err = cli("finetune", "start", str(out_file), "--model", "gpt-4.1-nano",
                       "--suffix", "x", "--backend", "openai")
    assert code == 2 and "gpt-4.1-nano" in err and "shut down" in err


def test_errors_for_unknown_things(cli: CLI) -> None:
    code, _, err = cli("finetune", "status", "ftjob-local-doesnotexist")
    assert code == 2 and "no local fine-tuning job" in err
    code, _, err = cli("models", "promote", "nothing", "1")
    assert code == 2 and "no model named 'nothing'" in err
    code, _, err = cli("models", "register", "x", "--model-id", "m", "--metric", "f1")
    assert code == 2 and "expected NAME=NUMBER" in err
    code, out, _ = cli("finetune", "list")
    assert "no fine-tuning jobs yet" in out


def test_out_of_range_options_are_errors_not_tracebacks(cli: CLI, tmp_path: Path,
                                                        routes_file: Path) -> None:
    # Library checks of option values raise RagftError (a ValueError too), so the CLI edge
    # turns them into one line and exit code 2.
    code, _, err = cli("finetune", "prepare", "--purpose", "router", "--input", str(routes_file),
                       "--out", str(tmp_path / "r.jsonl"), "--split", "--validation", "0.7",
                       "--test", "0.5")
    assert code == 2 and "sum below 1" in err
    out_file = tmp_path / "router.jsonl"
    cli("finetune", "prepare", "--purpose", "router", "--input", str(routes_file), "--out",
        str(out_file))
    code, _, err = cli("finetune", "estimate", str(out_file), "--model", "gpt-4o-mini",
                       "--epochs", "51")
    assert code == 2 and "from 1 to 50" in err


def test_register_on_a_resumed_start_does_not_add_a_duplicate_version(
    cli: CLI, tmp_path: Path, routes_file: Path
) -> None:
    train = tmp_path / "router.jsonl"
    cli("finetune", "prepare", "--purpose", "router", "--input", str(routes_file), "--out",
        str(train))
    argv = ("finetune", "start", str(train), "--model", "local", "--suffix", "v1",
            "--register", "router")
    code, out, _ = cli(*argv)
    assert code == 0 and "registered router version 1" in out
    # The README's resume path: the same command again reports the finished job; the model it
    # made is already registered, so no second version of the same model id appears.
    code, out, _ = cli(*argv)
    assert code == 0 and "already registered as router version 1" in out
    code, out, _ = cli("models", "list")
    assert "router@1" in out and "router@2" not in out


def test_status_of_something_that_is_not_a_job_id_says_so(cli: CLI) -> None:
    code, _, err = cli("finetune", "status", "nonsense")
    assert code == 2 and "is not a fine-tuning job id" in err and "OPENAI_API_KEY" not in err


def test_estimate_warns_when_the_file_has_validation_problems(cli: CLI, tmp_path: Path) -> None:
    lines = [json.dumps({"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]})
             for i in range(12)]
    lines.append(json.dumps({"messages": [{"role": "user", "content": "no answer"}]}))
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    code, out, err = cli("finetune", "estimate", str(path), "--model", "gpt-4o-mini")
    assert code == 0 and "1 validation problem" in err and "ragft finetune validate" in err


def test_a_registered_backend_becomes_a_backend_choice(cli: CLI, tmp_path: Path, routes_file: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from ragft.finetune import backends
    from ragft.finetune.backends.local import LocalFineTuneBackend

    monkeypatch.setattr(backends, "_SPECS", dict(backends._SPECS))
    backends.register_backend(backends.BackendSpec(
        name="offline2", job_prefix="ftjob-offline2-", description="test", in_process=True,
        build=lambda ctx: LocalFineTuneBackend(ctx.models_dir, ctx.embedder(),
                                               on_event=ctx.on_event)))
    train = tmp_path / "router.jsonl"
    cli("finetune", "prepare", "--purpose", "router", "--input", str(routes_file), "--out",
        str(train))
    run = CLI(cli.config, capsys)  # a parser built after the registration
    code, out, err = run("finetune", "start", str(train), "--model", "local", "--suffix", "p",
                         "--backend", "offline2")
    assert code == 0, err
    assert "succeeded" in out and "training locally" in err
    assert any((tmp_path / "home" / "jobs" / "offline2").glob("*.json"))


def test_start_l2_is_checked_before_any_work(cli: CLI, tmp_path: Path, routes_file: Path) -> None:
    base = tmp_path / "router.jsonl"
    cli("finetune", "prepare", "--purpose", "router", "--input", str(routes_file), "--out",
        str(base))
    code, _, err = cli("finetune", "start", str(base), "--model", "local", "--suffix", "x",
                       "--l2", "strong")
    assert code == 2 and "l2 must be 'auto' or a positive number" in err
    code, _, err = cli("finetune", "start", str(base), "--model", "gpt-4o-mini", "--suffix", "x",
                       "--backend", "openai", "--l2", "1e-4")
    assert code == 2 and "the openai backend has no such hyperparameter" in err
    code, out, err = cli("finetune", "start", str(base), "--model", "local", "--suffix", "x",
                         "--l2", "1e-4", "--json")
    assert code == 0, err
    job = json.loads(out)["job"]
    assert job["status"]["metrics"]["l2"] == 1e-4 and job["hyperparameters"] == {"l2": 1e-4}


def test_prepare_rag_generator_from_squad_retrieves_at_build_time(cli: CLI, tmp_path: Path) -> None:
    from ragft.cli import index as index_cli

    squad = tmp_path / "squad.json"
    articles = [("Normans", "The Normans gave their name to Normandy in the 10th century.",
                 "When did the Normans name Normandy?", "10th century"),
                ("Sky", "Sky launched in 1989 in the United Kingdom.", "When did Sky launch?", "1989")]
    squad.write_text(json.dumps({"data": [
        {"title": t, "paragraphs": [{"context": c, "qas": [
            {"id": t + "1", "question": q, "is_impossible": False, "answers": [{"text": a, "answer_start": 0}]},
            {"id": t + "2", "question": "Who painted the " + t + " moon?", "is_impossible": True, "answers": []}]}]}
        for t, c, q, a in articles]}))
    docs = tmp_path / "docs"
    (docs / "Normans").mkdir(parents=True)
    (docs / "Normans" / "p00.txt").write_text(articles[0][1] + "\n")
    cli.config.write_text(cli.config.read_text() + f'[index]\ncorpus = "{docs}"\n[retrieval]\ntop_k = 1\n')
    parser = argparse.ArgumentParser(prog="ragft")
    index_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["index", str(docs), "--config", str(cli.config)])
    assert args.func(args) == 0
    out_file = tmp_path / "p1.jsonl"
    code, out, err = cli("finetune", "prepare", "--purpose", "rag_generator", "--input", str(squad),
                         "--squad-test", "Sky", "--out", str(out_file))
    assert code == 0, err
    assert "held out ['Sky']" in err and "1 cited answers, 1 abstentions" in err
    examples = [json.loads(x) for x in out_file.read_text().splitlines()]
    assert [e["messages"][2]["content"] for e in examples] == [
        "10th century [1]", "I don't know: the provided documents do not answer this question."]
    assert all("Sky launched" not in e["messages"][1]["content"] for e in examples)
    assert 'source="Normans/p00.txt"' in examples[0]["messages"][1]["content"]
