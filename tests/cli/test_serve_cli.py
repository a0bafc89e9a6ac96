"""``ragft serve`` argument checks (the server itself runs in tests/serve/test_shutdown.py)."""

from __future__ import annotations

import pytest

from ragft.cli import main


def test_serve_is_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "RAGFT_API_KEYS" in out and "--strategies" in out


@pytest.mark.parametrize("args, message", [
    (["--port", "70000"], "--port"),
    (["--workers", "0"], "serve.workers"),
])
def test_bad_options_are_errors_before_anything_starts(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("RAGFT_HOME", str(tmp_path / "home"))
    assert main(["serve", *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "home").exists()


def test_an_unusable_index_fails_before_a_port_is_bound(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "a.md").write_text("# A\n\nThe meal per diem is $75 per day.\n", "utf-8")
    config = tmp_path / "c.toml"
    config.write_text(f'home = "{tmp_path / "home"}"\n[index]\ncorpus = "{corpus}"\n'
                      '[models]\nembedding = "local/hashing-64"\n', "utf-8")
    assert main(["index", "--config", str(config), "-q"]) == 0
    chunks = tmp_path / "home" / "index" / "vectors" / "chunks.jsonl"
    chunks.write_bytes(chunks.read_bytes()[:-5])
    capsys.readouterr()
    assert main(["serve", "--config", str(config), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "corrupt" in err or "truncated" in err
    assert "Traceback" not in err
