"""``ragft models``: register, list, gate, promote, resolve and roll back versions through the
real entry point, with a temporary home per test."""

from __future__ import annotations

import json

import pytest

from ragft.cli import main


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RAGFT_HOME", str(tmp_path / "home"))

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_an_empty_registry_says_how_to_register(cli) -> None:
    code, out, _ = cli("models", "list")
    assert code == 0 and "no registered models" in out and "ragft models register" in out


def test_versions_are_gated_promoted_resolved_and_rolled_back(cli, tmp_path) -> None:
    code, out, _ = cli("models", "register", "generator", "--model-id", "ft:gpt-4.1-mini:org:a:1",
                       "--base-model", "gpt-4.1-mini", "--metric", "f1=0.62")
    assert code == 0 and "registered generator version 1: ft:gpt-4.1-mini:org:a:1" in out
    code, _, err = cli("models", "promote", "generator", "1", "--min-f1", "0.7")
    assert code == 2 and "below the gate's minimum 0.7000" in err
    code, out, err = cli("models", "promote", "generator", "1", "--min-f1", "0.6")
    assert code == 0 and "registry:generator -> ft:gpt-4.1-mini:org:a:1" in out and not err
    cli("models", "register", "generator", "--model-id", "ft:gpt-4.1-mini:org:a:2", "--metric", "f1=0.7")
    code, out, err = cli("models", "promote", "generator", "2")
    assert code == 0 and "without a quality gate" in err
    assert cli("models", "resolve", "generator")[1].strip() == "ft:gpt-4.1-mini:org:a:2"
    assert cli("models", "resolve", "registry:generator@1")[1].strip() == "ft:gpt-4.1-mini:org:a:1"

    code, out, _ = cli("models", "list")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2
    assert lines[1].startswith("* generator@2") and "promoted" in lines[1] and "[f1=0.700]" in lines[1]
    assert lines[0].startswith("  generator@1") and "archived" in lines[0]
    listed = json.loads(cli("models", "list", "generator", "--json")[1])
    assert [(v["version"], v["status"], v["metrics"]) for v in listed] == [
        (1, "archived", {"f1": 0.62}), (2, "promoted", {"f1": 0.7})]

    code, out, _ = cli("models", "rollback", "generator")
    assert code == 0 and "rolled back generator to version 1" in out
    assert cli("models", "resolve", "generator")[1].strip() == "ft:gpt-4.1-mini:org:a:1"
    assert (tmp_path / "home" / "registry.json").is_file()


@pytest.mark.parametrize(("argv", "message"), [
    (("models", "register", "g", "--model-id", "m", "--metric", "f1"), "expected NAME=NUMBER"),
    (("models", "promote", "g", "1", "--gate-metric", "accuracy"), "--gate-metric needs --min"),
    (("models", "resolve", "registry:nothing"), "nothing"),
    (("models", "register", "bad name", "--model-id", "m"), "must be non-empty without"),
])
def test_mistakes_are_errors_that_say_what_to_fix(cli, argv, message) -> None:
    code, out, err = cli(*argv)
    assert code == 2 and message in err and "Traceback" not in err
